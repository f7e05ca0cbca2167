"""MariaDB restarts while appends run: no acknowledged write is lost or doubled.

Runs against a private server (see ``mysqlserver.py``), never the shared one, because it
restarts it. The same store object must work again afterwards: its pool drops the broken
connections and opens new ones. The private server also has TLS, so the ``ssl-mode`` forms
that need a server certificate are checked here too.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from mofa.persistence import StoreConnectionError, open_store
from mofa.persistence.backends.mysql import MySqlStore
from tests.reliability._harness import (
    append_through_restart,
    check_exactly_once,
    fail_while_down_then_recover,
    outage_in_child,
)
from tests.reliability.mysqlserver import PrivateMariaDB, private_mariadb

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

WRITERS = 4


@pytest.fixture(scope="module")
def server() -> Iterator[PrivateMariaDB]:
    with private_mariadb() as running:
        yield running


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_restart_while_appending(server: PrivateMariaDB, kill: bool) -> None:
    database = server.create_database(f"faults_{int(kill)}_{secrets.token_hex(3)}")
    store = await MySqlStore.connect(server.url(database), pool_size=WRITERS)
    try:
        await store.create_session("s")
        outcome = await append_through_restart(store, lambda: server.restart(kill), writers=WRITERS)
        for error in outcome.failed.values():
            assert "MySQL at 127.0.0.1" in str(error)
            assert "pw:with" not in str(error)
        await check_exactly_once(store, outcome, WRITERS)
    finally:
        await store.close()


async def test_calls_while_the_server_is_down_fail_clearly_then_recover(
    server: PrivateMariaDB,
) -> None:
    database = server.create_database(f"faults_down_{secrets.token_hex(3)}")
    store = await MySqlStore.connect(server.url(database))
    try:
        error = await fail_while_down_then_recover(store, server.shut_down, server.start_again)
        assert "is the server running" in str(error)
        assert f"127.0.0.1:{server.port}" in str(error)
    finally:
        await store.close()


# -------------------------------------------------------------- TLS (the private server has it)


@pytest.mark.parametrize("mode", ["REQUIRED", "PREFERRED", "VERIFY_CA", "VERIFY_IDENTITY"])
async def test_tls_modes(server: PrivateMariaDB, mode: str) -> None:
    assert server.tls, "openssl could not make the private server's certificate"
    database = server.create_database(f"tls_{secrets.token_hex(3)}")
    query = f"ssl-mode={mode}"
    if mode.startswith("VERIFY"):
        query += f"&ssl-ca={server.certificate}"
    before = _tls_handshakes(server)
    async with await open_store(server.url(database, query)) as store:
        assert isinstance(store, MySqlStore)
        await store.create_session("s")
        await store.append_message("s", "user", "over TLS")
    assert _tls_handshakes(server) > before, "the store's connections did not use TLS"


def _tls_handshakes(server: PrivateMariaDB) -> int:
    return int(
        server.sql(
            "SELECT variable_value FROM information_schema.global_status "
            "WHERE variable_name = 'Ssl_finished_accepts'"
        )
    )


async def test_verify_ca_rejects_an_unknown_certificate(server: PrivateMariaDB) -> None:
    database = server.create_database(f"tls_{secrets.token_hex(3)}")
    # Without ssl-ca the system trust store is used, which does not know the self-signed cert.
    with pytest.raises(StoreConnectionError, match="TLS handshake failed"):
        await open_store(server.url(database, "ssl-mode=VERIFY_CA"))


# -------------------------------------------------- lock conflicts are retried inside the store


async def test_lock_wait_timeout_is_retried_inside_the_store(server: PrivateMariaDB) -> None:
    """An append that waits longer than innodb_lock_wait_timeout (error 1205) is retried.

    Another connection holds the session's row lock three times longer than the server lets
    a statement wait; the append must still succeed once the lock is released.
    """
    import asyncmy

    database = server.create_database(f"locks_{secrets.token_hex(3)}")
    server.sql("SET GLOBAL innodb_lock_wait_timeout = 1")
    try:
        store = await MySqlStore.connect(server.url(database))
        try:
            await store.create_session("s")
            holder = await asyncmy.connect(
                unix_socket=str(server.socket), user="root", database=database
            )
            try:
                async with holder.cursor() as cursor:
                    await cursor.execute("START TRANSACTION")
                    await cursor.execute("SELECT * FROM sessions WHERE session_id = 's' FOR UPDATE")
                    await cursor.fetchall()
                    append = asyncio.create_task(store.append_message("s", "user", "waited"))
                    await asyncio.sleep(3)
                    assert not append.done(), "the append did not wait for the row lock"
                    await cursor.execute("COMMIT")
            finally:
                holder.close()
            message = await append
            assert message.seq == 1
            assert [m.content for m in await store.list_messages("s")] == ["waited"]
            [(waits,)] = [
                tuple(line.split("\t")[1:])
                for line in server.sql(
                    "SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_waits'"
                ).splitlines()
            ]
            assert int(waits) >= 2, "the append was not retried after a lock-wait timeout"
        finally:
            await store.close()
    finally:
        server.sql("SET GLOBAL innodb_lock_wait_timeout = 50")


def test_an_outage_is_one_warning_in_the_log_and_nothing_on_stderr(
    server: PrivateMariaDB,
) -> None:
    """Like PostgreSQL's: asyncmy prints nothing itself, and the store logs the outage once
    (WARNING), tracebacks at DEBUG, its end at INFO."""
    database = server.create_database(f"faults_quiet_{secrets.token_hex(3)}")
    seen = outage_in_child(server.url(database), server.shut_down, server.start_again)
    assert seen.stderr == ""
    assert seen.failures == 16
    [warning] = seen.at("WARNING")
    assert warning.startswith(f"MySQL at 127.0.0.1:{server.port} is unreachable: ")
    assert "pw:with" not in warning
    assert seen.at("ERROR") == []
    assert seen.at("INFO") == [f"MySQL at 127.0.0.1:{server.port} answers again"]
    tracebacks = [record for record in seen.records if record[3]]
    assert tracebacks
    assert {record[1] for record in tracebacks} == {"DEBUG"}
    # Besides the backend's outage records, only the registry's DEBUG line on opening.
    assert {record[0] for record in seen.records if record[1] != "DEBUG"} == {
        "mofa.persistence.backends.mysql"
    }
