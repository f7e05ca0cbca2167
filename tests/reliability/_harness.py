"""Pieces the fault tests share: private servers' lifecycle and the restart harness.

A fault test restarts a PRIVATE server (never the shared one other tests use), appends from
several tasks while it does, and then checks that every acknowledged append is stored exactly
once and every failed one raised :class:`StoreConnectionError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from mofa.persistence import BaseStore, StoreConnectionError
from tests.servers import skip_or_fail


class ServerUnavailable(Exception):
    """The private server could not be started here."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_certificate(directory: Path) -> bool:
    """A self-signed certificate for 127.0.0.1: ``server.crt`` and ``server.key`` (mode 0600)
    in ``directory``; False when openssl is missing or fails."""
    if shutil.which("openssl") is None:
        return False
    completed = subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-x509",
            "-days",
            "2",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(directory / "server.key"),
            "-out",
            str(directory / "server.crt"),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        return False
    (directory / "server.key").chmod(0o600)
    return True


def log_tail(log: Path, lines: int = 5) -> str:
    """The last lines of a server log on one line, for an error message."""
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Server(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


_S = TypeVar("_S", bound=_Server)


@contextlib.contextmanager
def private_server(make: Callable[[], _S], kind: str) -> Iterator[_S]:
    """Run ``make()``'s server for the block; skip (fail under CI) if it cannot start."""
    try:
        server = make()
    except ServerUnavailable as exc:
        skip_or_fail(f"cannot start a private {kind} server: {exc}")
    try:
        server.start()
    except (ServerUnavailable, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        skip_or_fail(f"cannot start a private {kind} server: {exc}")
    try:
        yield server
    finally:
        server.stop()


class Outcome:
    """What the writers saw: acknowledged contents, connection failures, anything else."""

    def __init__(self) -> None:
        self.acknowledged: list[str] = []
        self.failed: dict[str, StoreConnectionError] = {}
        self.unexpected: dict[str, BaseException] = {}


async def _writer(store: BaseStore, task: int, outcome: Outcome, stop: asyncio.Event) -> None:
    number = 0
    while not stop.is_set():
        content = f"{task}:{number}"
        number += 1
        try:
            await store.append_message("s", "user", content)
        except StoreConnectionError as exc:
            outcome.failed[content] = exc
            await asyncio.sleep(0.02)  # the server is down: do not spin
        except Exception as exc:  # any other error class breaks the contract
            outcome.unexpected[content] = exc
            await asyncio.sleep(0.02)
        else:
            outcome.acknowledged.append(content)


async def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def append_through_restart(
    store: BaseStore,
    restart: Callable[[], None],
    *,
    writers: int,
    before: int = 200,
    after: int = 200,
) -> Outcome:
    """``writers`` tasks append to session "s"; ``restart`` runs (in a thread) once ``before``
    appends are acknowledged; they stop once ``after`` more are acknowledged on the SAME store.
    """
    outcome = Outcome()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_writer(store, task, outcome, stop)) for task in range(writers)]
    try:
        await _wait_for(lambda: len(outcome.acknowledged) >= before, "appends before restart")
        await asyncio.to_thread(restart)
        restarted_at = len(outcome.acknowledged)
        await _wait_for(
            lambda: len(outcome.acknowledged) >= restarted_at + after,
            "appends on the same store after the restart",
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert not outcome.unexpected, (
        "appends failed with errors other than StoreConnectionError: "
        f"{list(outcome.unexpected.items())[:3]}"
    )
    assert outcome.failed, "the restart interrupted no append, so this test proved nothing"
    return outcome


async def check_exactly_once(store: BaseStore, outcome: Outcome, writers: int) -> None:
    """Every acknowledged append is stored once, nothing else is, and the store still works."""
    history = await store.list_messages("s")
    stored = [message.content for message in history]
    assert [message.seq for message in history] == list(range(1, len(history) + 1))
    assert len(stored) == len(set(stored)), "an append was stored twice"
    lost = set(outcome.acknowledged) - set(stored)
    assert not lost, f"acknowledged appends lost: {sorted(lost)[:5]}"
    # A failed append may have committed just before its connection broke (its error says
    # so); it is then stored once. Nothing else is stored.
    assert set(stored) <= set(outcome.acknowledged) | set(outcome.failed)
    for task in range(writers):  # each writer's stored messages keep that writer's order
        numbers = [int(c.split(":")[1]) for c in stored if c.startswith(f"{task}:")]
        assert numbers == sorted(numbers)
    session = await store.get_session("s")
    assert session is not None
    assert session.message_count == len(stored)
    assert (await store.append_message("s", "assistant", "after")).seq == len(stored) + 1
    assert len(await store.list_recent_messages("s", limit=5)) == 5


async def fail_while_down_then_recover(
    store: BaseStore, shut_down: Callable[[], None], start_again: Callable[[], None]
) -> StoreConnectionError:
    """With the server down, calls on ``store`` raise StoreConnectionError; once it is back,
    the SAME store works again. Returns the append's error, for the caller to check."""
    await store.create_session("s")
    await asyncio.to_thread(shut_down)
    try:
        with pytest.raises(StoreConnectionError) as raised:
            await store.append_message("s", "user", "while down")
        with pytest.raises(StoreConnectionError):
            await store.list_messages("s")
    finally:
        await asyncio.to_thread(start_again)
    # No append happened while the server was down; the same store works again.
    message = await store.append_message("s", "user", "back")
    assert message.seq == 1
    assert [m.content for m in await store.list_messages("s")] == ["back"]
    return raised.value
