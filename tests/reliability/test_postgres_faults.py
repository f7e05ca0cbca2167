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
    outage_in_child,
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


def test_an_outage_is_one_warning_in_the_log_and_nothing_on_stderr(
    server: PrivatePostgres,
) -> None:
    """asyncpg's pool used to print a traceback to stderr for every attempt to reconnect, in
    a program that configured no logging; now the store logs the outage once (WARNING),
    tracebacks at DEBUG, its end at INFO, and nothing reaches stderr."""
    database = server.create_database(f"faults_quiet_{secrets.token_hex(3)}")
    seen = outage_in_child(server.url(database), server.shut_down, server.start_again)
    assert seen.stderr == ""
    assert seen.failures == 16
    [warning] = seen.at("WARNING")
    assert warning.startswith(f"PostgreSQL at 127.0.0.1:{server.port} is unreachable: ")
    assert warning.endswith("; calls fail until it answers again (each one tries to reconnect)")
    assert seen.at("ERROR") == []
    assert seen.at("INFO") == [f"PostgreSQL at 127.0.0.1:{server.port} answers again"]
    tracebacks = [record for record in seen.records if record[3]]
    assert tracebacks
    assert {record[1] for record in tracebacks} == {"DEBUG"}
    # Besides the backend's outage records, only the registry's DEBUG line on opening.
    assert {record[0] for record in seen.records if record[1] != "DEBUG"} == {
        "mofa.persistence.backends.postgres"
    }
