"""Pieces the fault tests share: private servers' lifecycle and the restart harness.

A fault test restarts a PRIVATE server (never the shared one other tests use), appends from
several tasks while it does, and then checks that every acknowledged append is stored exactly
once and every failed one raised :class:`StoreConnectionError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
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


# ------------------------------------------------------------------ an outage seen by a child

#: A program that configured no logging: it opens the store, makes calls while the server is
#: down (told on stdin), then one once it is back. It records the ``mofa`` log records it
#: makes (through the record factory: no handler is added, so none of them can print) and
#: prints them as JSON at the end; what it prints to stderr is the test's business.
_OUTAGE_CHILD = """\
import asyncio, gc, json, logging, sys

records = []
make_record = logging.getLogRecordFactory()

def recording(*args, **kwargs):
    record = make_record(*args, **kwargs)
    records.append(record)
    return record

logging.setLogRecordFactory(recording)
logging.getLogger("mofa").setLevel(logging.DEBUG)  # DEBUG records are made, not printed

from mofa.persistence import StoreConnectionError, open_store

async def main(url):
    store = await open_store(url)
    await store.create_session("s")
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the server is down now
    failures = 0
    for _ in range(8):
        for call in (
            lambda: store.append_message("s", "user", "while down"),
            lambda: store.list_messages("s"),
        ):
            try:
                await call()
            except StoreConnectionError:
                failures += 1
        await asyncio.sleep(0.25)
    print(failures, flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the server is back
    await store.append_message("s", "user", "back")
    await store.close()

asyncio.run(main(sys.argv[1]))
gc.collect()  # a task or future left holding an exception reports it when collected
print(json.dumps([
    [record.name, record.levelname, record.getMessage(), record.exc_info is not None]
    for record in records
    if record.name.startswith("mofa")
]), flush=True)
"""


class ChildOutage:
    """What a child process printed through an outage of its store's server."""

    def __init__(self, stderr: str, failures: int, records: list[list[object]]) -> None:
        self.stderr = stderr
        self.failures = failures
        #: ``[logger name, level name, message, has a traceback]`` of each ``mofa`` record.
        self.records = records

    def at(self, level: str) -> list[str]:
        return [str(message) for _name, name, message, _tb in self.records if name == level]


def outage_in_child(
    url: str, shut_down: Callable[[], None], start_again: Callable[[], None]
) -> ChildOutage:
    """Run :data:`_OUTAGE_CHILD` on ``url`` through ``shut_down`` … ``start_again``."""
    with tempfile.TemporaryFile("w+") as stderr:  # a file: a pipe could fill up and block it
        child = subprocess.Popen(
            [sys.executable, "-c", _OUTAGE_CHILD, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            started = child.stdout.readline()
            if started != "ready\n":
                child.wait(timeout=60)
                stderr.seek(0)
                raise AssertionError(f"the child did not start: {started!r} {stderr.read()}")
            shut_down()
            try:
                child.stdin.write("\n")
                child.stdin.flush()
                failures = int(child.stdout.readline())
            finally:
                start_again()
            child.stdin.write("\n")
            child.stdin.flush()
            output, _ = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 0, output
        stderr.seek(0)
        return ChildOutage(stderr.read(), failures, json.loads(output))
