"""PostgreSQL restarts while appends run: no acknowledged write is lost or doubled.

Runs against a private server (see ``pgserver.py``), never the shared one, because it
restarts it. The same store object must work again afterwards: its pool reconnects.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from mofa.persistence import StoreConnectionError
from mofa.persistence.backends.postgres import PostgresStore
from tests.reliability.pgserver import PrivatePostgres, private_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WRITERS = 4
#: Appends acknowledged before the restart, and again after it, before the writers stop.
BEFORE = 200
AFTER = 200


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    with private_postgres() as running:
        yield running


class _Outcome:
    def __init__(self) -> None:
        self.acknowledged: list[str] = []
        self.failed: dict[str, StoreConnectionError] = {}
        self.unexpected: dict[str, BaseException] = {}


async def _writer(store: PostgresStore, task: int, outcome: _Outcome, stop: asyncio.Event) -> None:
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


async def _wait_for(condition: object, what: str, timeout: float = 90) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_restart_while_appending(server: PrivatePostgres, mode: str) -> None:
    database = server.create_database(f"faults_{mode}_{secrets.token_hex(3)}")
    store = await PostgresStore.connect(server.url(database), pool_max_size=WRITERS)
    try:
        await store.create_session("s")
        outcome = _Outcome()
        stop = asyncio.Event()
        writers = [
            asyncio.create_task(_writer(store, task, outcome, stop)) for task in range(WRITERS)
        ]
        await _wait_for(lambda: len(outcome.acknowledged) >= BEFORE, "appends before restart")
        await asyncio.to_thread(server.restart, mode)
        restarted_at = len(outcome.acknowledged)
        # The SAME store works again: acknowledged appends resume without re-creating it.
        await _wait_for(
            lambda: len(outcome.acknowledged) >= restarted_at + AFTER, "appends after restart"
        )
        stop.set()
        await asyncio.gather(*writers)

        assert not outcome.unexpected, (
            f"appends failed with errors other than StoreConnectionError: "
            f"{list(outcome.unexpected.values())[:3]}"
        )
        assert outcome.failed, "the restart interrupted no append, so this test proved nothing"
        for error in outcome.failed.values():
            assert isinstance(error, StoreConnectionError)
            assert "PostgreSQL" in str(error)

        history = await store.list_messages("s")
        stored = [message.content for message in history]
        assert [message.seq for message in history] == list(range(1, len(history) + 1))
        assert len(stored) == len(set(stored)), "an append was stored twice"
        missing = set(outcome.acknowledged) - set(stored)
        assert not missing, f"acknowledged appends lost: {sorted(missing)[:5]}"
        strangers = set(stored) - set(outcome.acknowledged) - set(outcome.failed)
        assert not strangers
        # A failed append may have committed just before its connection broke (its error
        # says so); it is then stored once, never twice, and never silently lost when
        # acknowledged. Each writer's stored messages keep that writer's order.
        for task in range(WRITERS):
            numbers = [int(c.split(":")[1]) for c in stored if c.startswith(f"{task}:")]
            assert numbers == sorted(numbers)
        session = await store.get_session("s")
        assert session is not None
        assert session.message_count == len(stored)
        # Reads and the other calls work on the same store too.
        assert (await store.append_message("s", "assistant", "after")).seq == len(stored) + 1
        assert len(await store.list_recent_messages("s", limit=5)) == 5
    finally:
        await store.close()


async def test_calls_while_the_server_is_down_fail_clearly_then_recover(
    server: PrivatePostgres,
) -> None:
    database = server.create_database(f"faults_down_{secrets.token_hex(3)}")
    store = await PostgresStore.connect(server.url(database))
    try:
        await store.create_session("s")
        await asyncio.to_thread(server.shut_down, "fast")
        try:
            with pytest.raises(StoreConnectionError, match="PostgreSQL") as raised:
                await store.append_message("s", "user", "while down")
            assert "127.0.0.1" in str(raised.value)
            with pytest.raises(StoreConnectionError):
                await store.list_messages("s")
        finally:
            await asyncio.to_thread(server.start_again)
        # No append happened while the server was down; the same store works again.
        message = await store.append_message("s", "user", "back")
        assert message.seq == 1
        assert [m.content for m in await store.list_messages("s")] == ["back"]
    finally:
        await store.close()
