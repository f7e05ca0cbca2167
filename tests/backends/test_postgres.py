"""What the PostgreSQL store promises beyond the shared contract.

URL forms, the errors a user sees, round trips per call, the schema lock. Tests that need
real password checking (the shared server trusts 127.0.0.1) or SSL use a private server
(``tests/reliability/pgserver.py``); the rest use throwaway databases on the shared one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import asyncpg
import pytest

from mofa.persistence import (
    AuthenticationError,
    DatabaseNotFoundError,
    InvalidInputError,
    InvalidURLError,
    MissingDependencyError,
    NewMessage,
    PermissionDeniedError,
    QueryError,
    SchemaError,
    StoreConnectionError,
    open_store,
)
from mofa.persistence.backends.postgres import PostgresStore, _statements
from mofa.persistence.backends.postgres._pooler import Pooling
from mofa.persistence.schema import latest_version, table_names
from tests.reliability._harness import free_port
from tests.reliability.pgserver import PrivatePostgres, private_postgres
from tests.servers import (
    POSTGRES_ADMIN_URL,
    database_name,
    postgres_account,
    postgres_database,
    postgres_rows,
    require_server,
    server_unavailable,
    with_credentials,
    with_database,
)

pytestmark = pytest.mark.postgres

SECRET = "n0t-Shown@all/#?"  # a password that must never appear in an error message
LOCAL_SOCKET = Path("/var/run/postgresql/.s.PGSQL.5432")


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh, empty database on the shared server (dropped afterwards)."""
    with postgres_database("mofa_pgtest") as url:
        yield url


@pytest.fixture(scope="module")
def private() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest.fixture
def private_database(private: PrivatePostgres) -> str:
    return private.create_database(f"priv_{secrets.token_hex(4)}")


def _assert_no_secret(error: BaseException) -> None:
    text = str(error)
    assert SECRET not in text
    assert "n0t-Shown" not in text
    assert "n0t-Shown%40" not in text


# ------------------------------------------------------------------- URL forms


async def _round_trip(url: str) -> None:
    async with await open_store(url) as store:
        assert isinstance(store, PostgresStore)
        session = await store.create_session(agent_id="a")
        await store.append_message(session.session_id, "user", "hello")
        assert [m.content for m in await store.list_messages(session.session_id)] == ["hello"]


async def test_user_host_port_database_url(database_url: str) -> None:
    await _round_trip(database_url)


async def test_an_unencoded_at_sign_in_the_password_is_part_of_it(database_url: str) -> None:
    # The authority splits at its last '@' for us as for MySQL; asyncpg alone would take
    # "PW@127.0.0.1" for the host. (The server trusts local users: this checks the address.)
    parts = urlsplit(database_url)
    await _round_trip(
        f"postgresql://{parts.username}:Sekr1t@PW@{parts.hostname}:{parts.port or 5432}{parts.path}"
    )


async def test_postgres_scheme_alias(database_url: str) -> None:
    await _round_trip("postgres://" + database_url.split("://", 1)[1])


async def test_connect_accepts_a_string_as_in_the_seeds(database_url: str) -> None:
    async with await PostgresStore.connect(database_url) as store:
        assert store.backend == "postgres"
        assert await store.list_sessions() == []


@pytest.mark.parametrize("mode", ["disable", "prefer"])
async def test_sslmode_disable_and_prefer(database_url: str, mode: str) -> None:
    await _round_trip(f"{database_url}?sslmode={mode}")


async def _refuse_ssl(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A PostgreSQL server without SSL, as far as the SSLRequest goes: it answers "N"."""
    try:
        await reader.readexactly(8)  # length 8, then the SSLRequest code 80877103
        writer.write(b"N")
        await writer.drain()
        await reader.read()  # until the client gives up
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def test_sslmode_require_without_server_ssl_is_a_clear_error() -> None:
    listener = await asyncio.start_server(_refuse_ssl, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        with pytest.raises(StoreConnectionError) as raised:
            await open_store(f"postgresql://postgres@127.0.0.1:{port}/mofa?sslmode=require")
    finally:
        listener.close()
        await listener.wait_closed()
    assert "does not accept SSL" in str(raised.value)
    assert "sslmode=require" in str(raised.value)


async def test_unix_socket_url_of_the_seeds(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not LOCAL_SOCKET.exists():
        server_unavailable("postgres", f"no local server socket at {LOCAL_SOCKET}")
    database = database_name(database_url)
    # The seeds' form names no user: libpq (and asyncpg) then use PGUSER or the OS user.
    monkeypatch.setenv("PGUSER", urlsplit(POSTGRES_ADMIN_URL).username or "postgres")
    await _round_trip(f"postgresql:///{database}?host=/var/run/postgresql")


async def test_unix_socket_url_on_the_private_server(
    private: PrivatePostgres, private_database: str
) -> None:
    await _round_trip(
        f"postgresql://postgres@/{private_database}?host={private.socket_dir}&port={private.port}"
    )


async def test_password_checked_for_real_with_percent_encoding(
    private: PrivatePostgres, private_database: str
) -> None:
    private.psql(f"CREATE ROLE pw_user LOGIN PASSWORD '{SECRET}'")
    try:
        private.psql(f'GRANT ALL ON DATABASE "{private_database}" TO pw_user')
        private.psql("GRANT ALL ON SCHEMA public TO pw_user", database=private_database)
        # quote() in url() percent-encodes '@', '/', '#' and '?' of the password.
        await _round_trip(private.url(private_database, "pw_user", SECRET))
        # ?password= works too (and is masked like the user-info form).
        await _round_trip(
            private.url(private_database, "pw_user") + "?password=" + quote(SECRET, safe="")
        )
    finally:
        private.psql("DROP OWNED BY pw_user CASCADE", database=private_database)
        private.psql("DROP ROLE pw_user")


async def test_wrong_password_is_an_authentication_error(
    private: PrivatePostgres, private_database: str
) -> None:
    private.psql("CREATE ROLE pw_wrong LOGIN PASSWORD 'the-right-one'")
    try:
        with pytest.raises(AuthenticationError) as raised:
            await open_store(private.url(private_database, "pw_wrong", SECRET))
        message = str(raised.value)
        assert message == (
            f"Failed to connect to PostgreSQL at 127.0.0.1:{private.port}: password "
            "authentication failed for user 'pw_wrong' — check the user name and password "
            "in the URL."
        )
        _assert_no_secret(raised.value)
        with pytest.raises(AuthenticationError):  # ?password= form
            await open_store(private.url(private_database, "pw_wrong") + "?password=nope")
    finally:
        private.psql("DROP ROLE pw_wrong")


async def test_sslmode_require_with_server_ssl(
    private: PrivatePostgres, private_database: str
) -> None:
    url = private.url(private_database, query="sslmode=require&application_name=mofa_ssl_probe")
    async with await open_store(url) as store:
        await store.create_session("s")
        rows = await postgres_rows(
            private.url("postgres"),
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.application_name = 'mofa_ssl_probe'",
        )
        assert rows
        assert all(row[0] is True for row in rows)


# ---------------------------------------------------------------------- errors


async def test_connection_refused() -> None:
    port = free_port()
    with pytest.raises(StoreConnectionError) as raised:
        await open_store(f"postgresql://postgres:{quote(SECRET, safe='')}@127.0.0.1:{port}/mofa")
    assert str(raised.value) == (
        f"Failed to connect to PostgreSQL at 127.0.0.1:{port}: connection refused — is the "
        f"server running? Check with: pg_isready -h 127.0.0.1 -p {port}"
    )
    _assert_no_secret(raised.value)
    assert raised.value.__cause__ is not None


async def test_missing_database() -> None:
    require_server("postgres")
    name = f"mofa_missing_{secrets.token_hex(3)}"
    with pytest.raises(DatabaseNotFoundError) as raised:
        await open_store(with_database(POSTGRES_ADMIN_URL, name))
    assert f'database "{name}" does not exist — create it with: createdb {name}' in str(
        raised.value
    )


async def test_missing_database_on_another_port_names_host_and_port(
    private: PrivatePostgres,
) -> None:
    with pytest.raises(DatabaseNotFoundError) as raised:
        await open_store(private.url("mofa"))
    assert str(raised.value) == (
        f'Failed to connect to PostgreSQL at 127.0.0.1:{private.port}: database "mofa" does '
        f"not exist — create it with: createdb -h 127.0.0.1 -p {private.port} mofa"
    )


async def test_unknown_role_is_an_authentication_error(database_url: str) -> None:
    role = f"no_such_role_{secrets.token_hex(3)}"
    with pytest.raises(AuthenticationError, match="does not exist"):
        await open_store(with_credentials(database_url, role, None))


async def test_permission_denied_names_the_table_and_the_fix(database_url: str) -> None:
    async with await open_store(database_url):
        pass  # the schema exists, owned by the admin user
    connect = f'CONNECT ON DATABASE "{database_name(database_url)}"'
    grants = (connect, "SELECT ON mofa_schema_migrations")
    with postgres_account(*grants, url=database_url) as (role, password):
        async with await open_store(with_credentials(database_url, role, password)) as store:
            with pytest.raises(PermissionDeniedError) as raised:
                await store.upsert_agent("a")
        assert str(raised.value).startswith(
            "SQL error: permission denied for table agents — grant the privileges"
        )
        assert f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}" in (
            str(raised.value)
        )


async def test_a_missing_sequence_grant_is_named_with_the_grant_that_fixes_it(
    database_url: str,
) -> None:
    # Privileges on every table but not on the message id sequence, as a DBA who followed
    # the tables hint alone would leave them: appending fails on the sequence.
    async with await open_store(database_url) as store:
        await store.create_session("s")
    tables = "SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public"
    connect = f'CONNECT ON DATABASE "{database_name(database_url)}"'
    with postgres_account(connect, tables, url=database_url) as (role, password):
        async with await open_store(with_credentials(database_url, role, password)) as store:
            with pytest.raises(PermissionDeniedError) as raised:
                await store.append_message("s", "user", "hello")
        assert str(raised.value).startswith(
            "SQL error: permission denied for sequence messages_id_seq — grant"
        )
        assert f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}" in str(
            raised.value
        )
        await postgres_rows(
            database_url, f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"'
        )
        async with await open_store(with_credentials(database_url, role, password)) as store:
            assert (await store.append_message("s", "user", "hello")).seq == 1


async def test_broken_connection_mid_call_then_recovers(database_url: str) -> None:
    """A backend killed while an append waits on a row lock: a clear, honest error."""
    async with await open_store(database_url) as store:
        await store.create_session("s")
        locker = await asyncpg.connect(database_url)
        try:
            transaction = locker.transaction()
            await transaction.start()
            await locker.execute("SELECT 1 FROM sessions WHERE session_id = 's' FOR UPDATE")
            append = asyncio.create_task(store.append_message("s", "user", "blocked"))
            waiting: list[asyncpg.Record] = []
            for _ in range(500):
                waiting = await locker.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                if waiting:
                    break
                await asyncio.sleep(0.01)
            assert waiting, "the append never waited on the row lock"
            await locker.execute("SELECT pg_terminate_backend($1)", waiting[0][0])
            with pytest.raises(StoreConnectionError) as raised:
                await append
            assert "broke during the call" in str(raised.value)
            assert "may or may not have been stored" in str(raised.value)
            await transaction.rollback()
        finally:
            await locker.close()
        # The same store works again; the killed append was rolled back by the server.
        assert (await store.append_message("s", "user", "after")).seq == 1
        assert [m.content for m in await store.list_messages("s")] == ["after"]


async def test_other_sql_errors_are_query_errors(database_url: str) -> None:
    async with await open_store(database_url) as store:
        await store.create_session("s")
        await postgres_rows(database_url, "DROP TABLE messages")
        with pytest.raises(QueryError, match='relation "messages" does not exist'):
            await store.append_message("s", "user", "x")


async def test_bad_url_option_is_an_invalid_url_error(database_url: str) -> None:
    with pytest.raises(InvalidURLError) as raised:
        await open_store(f"{database_url.replace('@', f':{SECRET[:9]}@', 1)}?sslmode=sometimes")
    assert "****" in str(raised.value)
    _assert_no_secret(raised.value)


async def test_unknown_url_parameter_is_an_invalid_url_error(database_url: str) -> None:
    with pytest.raises(InvalidURLError, match="no_such_setting"):
        await open_store(f"{database_url}?no_such_setting=10")


@pytest.mark.parametrize(
    "port",
    [
        *["99999", "0", "abc", "", "54 32", "5432,x", "５４３２", "1000005432"],
        pytest.param("9" * 5000, id="5000-digits"),
    ],
)
async def test_bad_port_parameter_is_an_invalid_url_error(port: str) -> None:
    # Checked before connecting: nothing listens on the URL's socket directory.
    url = f"postgresql://postgres:{quote(SECRET, safe='')}@/mofa?host=/nonexistent&port={port}"
    with pytest.raises(InvalidURLError) as raised:
        await open_store(url)
    message = str(raised.value)
    assert message.startswith("The PostgreSQL URL 'postgresql://postgres:****@/mofa?host=")
    assert message.endswith(
        f"has port={port!r}, which is not a port number; write an integer from 1 to 65535 "
        "(or one per host, comma-separated), e.g. port=5432."
    )
    _assert_no_secret(raised.value)


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf", ""])
async def test_bad_connect_timeout_parameter_is_an_invalid_url_error(value: str) -> None:
    url = f"postgresql://postgres:{quote(SECRET, safe='')}@127.0.0.1:1/mofa?connect_timeout={value}"
    with pytest.raises(InvalidURLError) as raised:
        await open_store(url, connect_timeout=5)  # the option wins, but the URL must be right
    assert str(raised.value) == (
        f"The PostgreSQL URL 'postgresql://postgres:****@127.0.0.1:1/mofa?connect_timeout="
        f"{value}' has connect_timeout={value!r}, which is not a positive number of seconds; "
        "write e.g. connect_timeout=10, or pass connect_timeout= to open_store()."
    )
    _assert_no_secret(raised.value)


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server that accepts the connection and never answers."""
    try:
        await reader.read()  # until the client gives up
    except ConnectionError:
        pass
    finally:
        writer.close()


async def test_connect_timeout_parameter_and_option(database_url: str) -> None:
    await _round_trip(f"{database_url}?application_name=mofa_t&connect_timeout=5&sslmode=prefer")
    listener = await asyncio.start_server(_silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/mofa?sslmode=disable&connect_timeout="
    try:
        for query, option, limit in [("0.3", None, 5.0), ("60", 0.3, 5.0)]:
            started = asyncio.get_running_loop().time()
            with pytest.raises(
                StoreConnectionError,
                match=f"127.0.0.1:{port}: no answer within the connect timeout",
            ):
                await open_store(url + query, connect_timeout=option)
            assert asyncio.get_running_loop().time() - started < limit
    finally:
        listener.close()
        await listener.wait_closed()


async def test_port_parameter_is_used_as_libpq_does(database_url: str) -> None:
    parts = urlsplit(database_url)
    user, host, port = parts.username, parts.hostname, parts.port or 5432
    # The authority names a host but no port: asyncpg alone would ignore ?port=.
    await _round_trip(f"postgresql://{user}@{host}{parts.path}?port={port}")
    # ?port= wins over the authority's port, as in libpq.
    await _round_trip(f"postgresql://{user}@{host}:{free_port()}{parts.path}?port={port}")
    unused = free_port()
    with pytest.raises(StoreConnectionError) as raised:
        await open_store(f"postgresql://{user}@{host}{parts.path}?port={unused}")
    assert f"{host}:{unused}: connection refused" in str(raised.value)


async def test_missing_driver_names_the_extra(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(MissingDependencyError) as raised:
        await open_store(database_url)
    assert "pip install 'mofa-sdk[postgres]'" in str(raised.value)


# --------------------------------------------------------------------- schema


async def test_schema_created_once_and_recorded(database_url: str) -> None:
    async with await open_store(database_url) as store:
        assert store.applied_migrations == tuple(range(1, latest_version("postgres") + 1))
    async with await open_store(database_url) as store:
        assert store.applied_migrations == ()
    rows = await postgres_rows(database_url, "SELECT version FROM mofa_schema_migrations")
    assert [row[0] for row in rows] == list(range(1, latest_version("postgres") + 1))
    tables = await postgres_rows(
        database_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    assert set(table_names("postgres")) <= {row[0] for row in tables}


async def test_ids_too_long_together_for_an_index_entry_get_one_clear_error(
    database_url: str,
) -> None:
    # 255 CJK characters are 765 bytes; four of them pass the 2,704 bytes of a btree entry
    # (the agent, tenant, user index), which MySQL and SQLite do not limit.
    def cjk(offset: int) -> str:
        return "".join(chr(0x4E00 + (n * 7919 + offset) % 20000) for n in range(255))

    async with await open_store(database_url) as store:
        await store.upsert_agent(cjk(1))
        with pytest.raises(InvalidInputError) as raised:
            await store.create_session(cjk(2), agent_id=cjk(1), user_id=cjk(3), tenant_id=cjk(4))
        assert await store.get_session(cjk(2)) is None
        ascii_ids = ["x" * 255, "y" * 255, "z" * 255]  # 255 characters each, one byte apiece
        await store.upsert_agent(ascii_ids[0])
        await store.create_session(
            "w" * 255, agent_id=ascii_ids[0], user_id=ascii_ids[1], tenant_id=ascii_ids[2]
        )
    message = str(raised.value)
    assert message.startswith("The ids are too long together for PostgreSQL (index row size ")
    assert message.endswith(
        "use shorter ids (the agent, tenant, user and session ids of a session share index "
        "entries)."
    )


async def _plan(database_url: str, statement: str, *args: object) -> str:
    """PostgreSQL's plan for ``statement``, sequential scans off (the test tables are tiny,
    so the planner would otherwise scan them whatever the indexes)."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("SET enable_seqscan = off")
        return "\n".join(row[0] for row in await connection.fetch(f"EXPLAIN {statement}", *args))
    finally:
        await connection.close()


async def test_recent_messages_read_backwards_through_the_index(database_url: str) -> None:
    async with await open_store(database_url) as store:
        await store.create_session("s")
        await store.append_messages("s", [NewMessage("user", str(n)) for n in range(50)])
    plan = await _plan(
        database_url,
        "SELECT id, seq FROM messages WHERE session_id = 's' ORDER BY seq DESC LIMIT 20",
    )
    # Version 4 made the unique (session_id, seq) index the primary key, named messages_pkey.
    assert "Index Scan Backward using messages_pkey" in plan


async def test_save_state_finds_the_last_version_in_one_step_back_on_the_key(
    database_url: str,
) -> None:
    # Saving a state must not read the session's earlier versions (it did: a join and a
    # GROUP BY over all of them, 174 ms a save at 1,000,000 versions).
    async with await open_store(database_url) as store:
        await store.create_session("s")
        for n in range(3):
            await store.save_state("s", {"n": n})
    plan = await _plan(database_url, _statements.SAVE_STATE, "s", "{}", datetime.now(UTC))
    assert "Index Only Scan Backward using agent_state_pkey" in plan, plan
    assert "Join" not in plan, plan
    assert "GroupAggregate" not in plan, plan


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    ("same_metadata", "same_timestamp"),
    [(True, True), (True, False), (False, True), (False, False)],
)
async def test_batch_statement_variants_store_every_value(
    database_url: str, same_metadata: bool, same_timestamp: bool
) -> None:
    """Values all messages share are bound once; each variant stores exactly what was given."""
    base = datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    batch = [
        NewMessage(
            "user" if n % 2 else "assistant",
            f"m{n}",
            {"shared": True} if same_metadata else {"n": n},
            base if same_timestamp else base + timedelta(seconds=n),
        )
        for n in range(7)
    ]
    async with await open_store(database_url) as store:
        await store.create_session("s")
        stored = await store.append_messages("s", batch)
        loaded = await store.list_messages("s")
    assert loaded == stored
    assert [(m.seq, m.role.value, m.content, m.metadata, m.timestamp) for m in loaded] == [
        (n + 1, item.role, item.content, item.metadata, item.timestamp)
        for n, item in enumerate(batch)
    ]


class _CountingProxy:
    """A TCP relay between the store and the server that reads the frontend protocol.

    asyncpg ends every exchange with Sync ('S') in the extended protocol, or sends one
    simple Query ('Q'); each is answered by ReadyForQuery, which asyncpg waits for before
    it sends the next one. So Sync + Query messages = round trips to the server.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.messages: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def round_trips(self) -> int:
        return sum(1 for kind in self.messages if kind in ("S", "Q"))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        relay = asyncio.create_task(downstream())
        try:
            startup_length = int.from_bytes(await reader.readexactly(4), "big")
            up_writer.write(
                startup_length.to_bytes(4, "big") + await reader.readexactly(startup_length - 4)
            )
            while True:
                kind = await reader.readexactly(1)
                length = int.from_bytes(await reader.readexactly(4), "big")
                body = await reader.readexactly(length - 4)
                self.messages.append(kind.decode())
                up_writer.write(kind + length.to_bytes(4, "big") + body)
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_writer.close()
            relay.cancel()


@pytest.fixture
async def counted_store(database_url: str) -> AsyncIterator[tuple[PostgresStore, _CountingProxy]]:
    parts = urlsplit(database_url)
    proxy = _CountingProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    url = f"postgresql://{parts.username}@127.0.0.1:{proxy.port}{parts.path}?sslmode=disable"
    # One connection, so the prepared statements warmed up below are the ones measured.
    store = await PostgresStore.connect(url, pool_min_size=1, pool_max_size=1)
    try:
        yield store, proxy
    finally:
        await store.close()
        await proxy.close()


async def test_append_is_one_round_trip(
    counted_store: tuple[PostgresStore, _CountingProxy],
) -> None:
    store, proxy = counted_store
    await store.create_session("s")
    await store.append_message("s", "user", "warm-up: prepares the statement")
    proxy.messages.clear()
    message = await store.append_message("s", "assistant", "counted", metadata={"k": 1})
    assert message.seq == 2
    # Bind, Execute, Sync: one statement, one round trip, and no reset query on release.
    assert proxy.round_trips() == 1, proxy.messages
    assert "Q" not in proxy.messages


async def test_batch_of_fifty_is_one_round_trip(
    counted_store: tuple[PostgresStore, _CountingProxy],
) -> None:
    store, proxy = counted_store
    await store.create_session("s")
    batch = [NewMessage("user", f"m{n}", {"n": n}) for n in range(50)]
    await store.append_messages("s", batch)
    proxy.messages.clear()
    stored = await store.append_messages("s", batch)
    assert [m.seq for m in stored] == list(range(51, 101))
    assert proxy.round_trips() == 1, proxy.messages


async def test_reads_and_listing_are_one_round_trip_each(
    counted_store: tuple[PostgresStore, _CountingProxy],
) -> None:
    store, proxy = counted_store
    await store.create_session("s", user_id="u")
    await store.append_messages("s", [NewMessage("user", str(n)) for n in range(30)])
    for _ in range(2):  # the first pass prepares, the second is measured
        proxy.messages.clear()
        await store.list_recent_messages("s", limit=20)
        await store.list_sessions(user_id="u", limit=10)
        await store.get_session("s")
    assert proxy.round_trips() == 3, proxy.messages


async def test_several_processes_connecting_apply_the_schema_once(database_url: str) -> None:
    script = (
        "import asyncio, sys\n"
        "from mofa.persistence import open_store\n"
        "async def main():\n"
        "    store = await open_store(sys.argv[1])\n"
        "    print(len(store.applied_migrations))\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            database_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ},
        )
        for _ in range(4)
    ]
    outputs = [await process.communicate() for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    applied = sorted(int(out.decode().strip()) for out, _ in outputs)
    assert applied == [0, 0, 0, latest_version("postgres")]


# ------------------------------------------------------------------- options


async def test_pool_options(database_url: str) -> None:
    async with await open_store(database_url, pool_size=2, pool_min_size=2) as store:
        assert isinstance(store, PostgresStore)
        assert store._pool.get_max_size() == 2
        assert store._pool.get_size() == 2  # opened at once (asyncpg keeps no floor itself)
    with pytest.raises(InvalidInputError, match="Unknown PostgresStore option 'pool'"):
        await open_store(database_url, pool=3)
    with pytest.raises(InvalidInputError, match="pool_max_size"):
        await open_store(database_url, pool_min_size=5, pool_max_size=2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", "pool_size must be an integer >= 1, not '5'."),
        (0, "pool_size must be an integer >= 1, not 0."),
        (2, "pool_size (2) must be at least 1 and at least pool_min_size (3)."),
    ],
)
async def test_pool_size_is_named_as_written(value: object, expected: str) -> None:
    # Checked before connecting: nothing answers on port 1.
    with pytest.raises(InvalidInputError) as raised:
        await open_store("postgresql://postgres@127.0.0.1:1/mofa", pool_size=value, pool_min_size=3)
    assert str(raised.value) == expected


async def test_pool_size_and_pool_max_size_together_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="two names for one option"):
        await open_store("postgresql://postgres@127.0.0.1:1/mofa", pool_size=5, pool_max_size=5)


_DIRECT = Pooling(None, detected=False)  # no pooler: migrations run on the store's connection


class _OneConnection:
    """A pool of one given connection, for calling the schema step on it directly."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def acquire(self) -> asyncpg.Connection:
        return self.connection

    async def release(self, connection: asyncpg.Connection) -> None:
        pass


async def test_a_connect_that_waited_for_the_schema_lock_sees_the_schema_made_meanwhile(
    database_url: str,
) -> None:
    """The version is read from the catalog once the advisory lock is taken: an answer the
    connection got before another process created the schema (here from a
    ``create_schema=False`` check on the same connection) must not make it migrate again."""
    from mofa.persistence import schema
    from mofa.persistence._url import parse_url
    from mofa.persistence.backends.postgres import _schema

    other = await asyncpg.connect(database_url)
    waiting = await asyncpg.connect(database_url)
    try:
        # The waiting connection has looked for the bookkeeping table before: not there yet.
        with pytest.raises(SchemaError, match="no mofa-sdk schema"):
            await _schema.migrate(
                _OneConnection(waiting), parse_url(database_url), False, pooling=_DIRECT
            )
        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock($1)", _schema._SCHEMA_LOCK_KEY)
            step = asyncio.create_task(
                _schema.migrate(
                    _OneConnection(waiting), parse_url(database_url), True, pooling=_DIRECT
                )
            )
            await asyncio.sleep(0.2)  # it now waits for the lock
            assert not step.done()
            # The bookkeeping alone, at the latest version: enough to tell a second migration.
            await other.execute(schema.bootstrap_statement("postgres"))
            for migration in schema.migrations("postgres"):
                await other.execute(schema.record_statement("postgres", migration))
        assert await step == ()  # found the schema current: applied nothing
    finally:
        await other.close()
        await waiting.close()
