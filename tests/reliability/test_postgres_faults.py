"""PostgreSQL restarts while appends run: no acknowledged write is lost or doubled.

Runs against a private server (see ``pgserver.py``), never the shared one, because it
restarts it. The same store object must work again afterwards: its pool reconnects.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from mofa.persistence.backends.postgres import PostgresStore
from tests.reliability._harness import (
    append_through_restart,
    check_exactly_once,
    fail_while_down_then_recover,
)
from tests.reliability.pgserver import PrivatePostgres, private_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WRITERS = 4


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    with private_postgres() as running:
        yield running


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_restart_while_appending(server: PrivatePostgres, mode: str) -> None:
    database = server.create_database(f"faults_{mode}_{secrets.token_hex(3)}")
    store = await PostgresStore.connect(server.url(database), pool_max_size=WRITERS)
    try:
        await store.create_session("s")
        # The SAME store works again: acknowledged appends resume without re-creating it.
        outcome = await append_through_restart(store, lambda: server.restart(mode), writers=WRITERS)
        for error in outcome.failed.values():
            assert "PostgreSQL" in str(error)
        await check_exactly_once(store, outcome, WRITERS)
    finally:
        await store.close()


async def test_calls_while_the_server_is_down_fail_clearly_then_recover(
    server: PrivatePostgres,
) -> None:
    database = server.create_database(f"faults_down_{secrets.token_hex(3)}")
    store = await PostgresStore.connect(server.url(database))
    try:
        error = await fail_while_down_then_recover(store, server.shut_down, server.start_again)
        assert "PostgreSQL" in str(error)
        assert "127.0.0.1" in str(error)
    finally:
        await store.close()
