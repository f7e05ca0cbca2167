"""Throwaway databases and accounts on the real PostgreSQL and MariaDB/MySQL servers.

URLs come from ``MOFA_TEST_POSTGRES_URL`` / ``MOFA_TEST_MYSQL_URL`` (an admin connection),
defaulting to the local servers. When a server does not answer, its tests skip with the reason,
unless ``MOFA_TEST_REQUIRE_SERVERS=1`` (set by CI), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import selectors
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pytest

from mofa.persistence import schema

POSTGRES_ADMIN_URL = os.environ.get(
    "MOFA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MYSQL_ADMIN_URL = os.environ.get("MOFA_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REQUIRE_SERVERS = os.environ.get("MOFA_TEST_REQUIRE_SERVERS") == "1"
#: Every table a mofa store creates (dropped to empty a database between tests).
MOFA_TABLES = (*schema.table_names("postgres"), schema.MIGRATIONS_TABLE)

_unreachable: dict[str, str] = {}


# ------------------------------------------------------------------------------ URLs


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database (same credentials, host and query)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def with_credentials(url: str, user: str, password: str | None) -> str:
    """``url`` with another user (and password, percent-encoded) in it."""
    parts = urlsplit(url)
    userinfo = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    host = parts.hostname or ""
    netloc = f"{userinfo}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def statements_through(dialect: str, version: int) -> list[str]:
    """What made a database at schema ``version`` (the release of that version ran these)."""
    statements: list[str] = []
    for migration in schema.migrations(dialect)[:version]:
        statements += migration.statements
        if migration.version == 1:
            statements.append(schema.bootstrap_statement(dialect))
        statements.append(schema.record_statement(dialect, migration))
    return statements


def database_name(url: str) -> str:
    """The database a server URL names ("" when it names none)."""
    return urlsplit(url).path.lstrip("/")


#: The MySQL admin connection without a database (for CREATE DATABASE, CREATE USER, …).
MYSQL_SERVER_URL = with_database(MYSQL_ADMIN_URL, "")


# ------------------------------------------------------------------ skip, or fail in CI


def skip_or_fail(message: str) -> None:
    """Skip the test, or fail it under MOFA_TEST_REQUIRE_SERVERS=1 (CI must not skip)."""
    if REQUIRE_SERVERS:
        pytest.fail(message + " — MOFA_TEST_REQUIRE_SERVERS=1 requires it", pytrace=False)
    pytest.skip(message)


def server_unavailable(kind: str, reason: str) -> None:
    """Skip (or, under MOFA_TEST_REQUIRE_SERVERS=1, fail) because a server is missing."""
    skip_or_fail(
        f"{kind} server not reachable ({reason}); start it or set MOFA_TEST_{kind.upper()}_URL"
    )


# ------------------------------------------------------------------------- running SQL


async def postgres_rows(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Run one statement on the database of ``url``; return its rows."""
    import asyncpg

    connection = await asyncpg.connect(url, timeout=5)
    try:
        return [tuple(row) for row in await connection.fetch(sql, *args)]
    finally:
        await connection.close()


@asynccontextmanager
async def mysql_connection(url: str) -> AsyncIterator[Any]:
    """An autocommit asyncmy connection to the database of ``url`` (none if it names none)."""
    import asyncmy

    parts = urlsplit(url)
    connection = await asyncmy.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database_name(url) or None,
        connect_timeout=5,
        autocommit=True,
    )
    try:
        yield connection
    finally:
        connection.close()


async def mysql_rows(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Run one statement on the database of ``url``; return its rows.

    With ``args`` the statement takes ``%s`` placeholders (and a literal ``%`` is ``%%``).
    """
    async with mysql_connection(url) as connection, connection.cursor() as cursor:
        await cursor.execute(sql, args or None)
        return [tuple(row) for row in await cursor.fetchall()]


async def server_rows(kind: str, url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """``postgres_rows`` or ``mysql_rows``, by ``kind``."""
    run = postgres_rows if kind == "postgres" else mysql_rows
    return await run(url, sql, *args)


async def drop_mofa_tables(kind: str, url: str) -> None:
    """Empty the database of ``url`` of every mofa table."""
    tables = ", ".join(MOFA_TABLES)
    if kind == "postgres":
        await postgres_rows(url, f"DROP TABLE IF EXISTS {tables} CASCADE")
    else:
        async with mysql_connection(url) as connection, connection.cursor() as cursor:
            await cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            await cursor.execute(f"DROP TABLE IF EXISTS {tables}")


# ------------------------------------------------------------------ throwaway databases


def _blocking(coroutine_factory: Callable[[], Coroutine[Any, Any, object]]) -> None:
    """Run a coroutine to completion from sync code, even inside a running event loop.

    Session fixtures are first requested from async fixtures (``empty_url``), where
    ``asyncio.run`` refuses to start; a short-lived thread has no loop of its own.
    """
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine_factory())
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _run(kind: str, coroutine_factory: Callable[[], Coroutine[Any, Any, object]]) -> None:
    if kind in _unreachable:
        server_unavailable(kind, _unreachable[kind])
    try:
        _blocking(coroutine_factory)
    except Exception as exc:
        # asyncpg raises the socket's OSError itself; asyncmy wraps it (OperationalError
        # 2003, the OSError as its cause). Anything else is a real failure.
        reason = exc if isinstance(exc, OSError) else exc.__cause__
        if not isinstance(reason, OSError):
            raise
        _unreachable[kind] = f"{type(reason).__name__}: {reason}"
        server_unavailable(kind, _unreachable[kind])


def require_server(kind: str) -> None:
    """Skip (or, in CI, fail) the test now unless the ``kind`` server answers its admin URL.

    For tests that open a URL on the server without making a database or an account first
    (a missing database, an unknown user): their own error would otherwise be the
    unreachable server's.
    """
    if kind == "postgres":
        _run(kind, lambda: postgres_rows(POSTGRES_ADMIN_URL, "SELECT 1"))
    else:
        _run(kind, lambda: mysql_rows(MYSQL_SERVER_URL, "SELECT 1"))


@contextmanager
def postgres_database(prefix: str = "mofa_test") -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its URL and drops it afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    _run("postgres", lambda: postgres_rows(POSTGRES_ADMIN_URL, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(POSTGRES_ADMIN_URL, name)
    finally:
        _blocking(
            lambda: postgres_rows(
                POSTGRES_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            )
        )


@contextmanager
def mysql_database(prefix: str = "mofa_test") -> Iterator[str]:
    """A new, empty MySQL/MariaDB database; yields its URL and drops it afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    _run(
        "mysql",
        lambda: mysql_rows(
            MYSQL_SERVER_URL,
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        ),
    )
    try:
        yield with_database(MYSQL_ADMIN_URL, name)
    finally:
        _blocking(lambda: mysql_rows(MYSQL_SERVER_URL, f"DROP DATABASE IF EXISTS `{name}`"))


@contextmanager
def server_database(kind: str, prefix: str = "mofa_test") -> Iterator[str]:
    """``postgres_database`` or ``mysql_database``, by ``kind``."""
    factory = postgres_database if kind == "postgres" else mysql_database
    with factory(prefix) as url:
        yield url


# ------------------------------------------------------------------- throwaway accounts


def _new_account(password: str | None) -> tuple[str, str]:
    """A fresh account name, and ``password`` or a random one."""
    return f"mofa_user_{secrets.token_hex(4)}", password or f"pw_{secrets.token_hex(8)}"


@contextmanager
def postgres_account(
    *grants: str, url: str = POSTGRES_ADMIN_URL, password: str | None = None
) -> Iterator[tuple[str, str]]:
    """A new PostgreSQL login role with a random name and ``password`` (random if not given),
    granted each of ``grants`` (a ``PRIVILEGES ON OBJECTS`` clause) in the database of
    ``url``; yields (name, password).

    Afterwards what it owns or was granted in that database, then the role, are dropped. Grants
    a test gives it in another database must be gone by then: enter the account BEFORE that
    database, so the database is dropped first.
    """
    role, password = _new_account(password)
    secret = password.replace("'", "''")

    async def grant() -> None:
        for clause in grants:
            await postgres_rows(url, f'GRANT {clause} TO "{role}"')

    async def drop() -> None:
        await postgres_rows(url, f'DROP OWNED BY "{role}"')
        await postgres_rows(url, f'DROP ROLE "{role}"')

    _run(
        "postgres", lambda: postgres_rows(url, f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{secret}'")
    )
    try:
        _blocking(grant)
        yield role, password
    finally:
        _blocking(drop)


@contextmanager
def mysql_account(
    *grants: str, host: str = "%", password: str | None = None
) -> Iterator[tuple[str, str]]:
    """A new MariaDB/MySQL account ``name@host`` with a random name and ``password`` (random if
    not given), granted each of ``grants`` (a ``PRIVILEGES ON db.*`` clause; none: USAGE
    only); yields (name, password) and drops the account afterwards."""
    user, password = _new_account(password)
    account = f"'{user}'@'{host}'"

    async def create() -> None:
        # With arguments, a literal % in the statement is %%.
        escaped = account.replace("%", "%%")
        await mysql_rows(MYSQL_SERVER_URL, f"CREATE USER {escaped} IDENTIFIED BY %s", password)

    async def grant() -> None:
        for clause in grants:
            await mysql_rows(MYSQL_SERVER_URL, f"GRANT {clause} TO {account}")

    _run("mysql", create)
    try:
        _blocking(grant)
        yield user, password
    finally:
        _blocking(lambda: mysql_rows(MYSQL_SERVER_URL, f"DROP USER IF EXISTS {account}"))


# ------------------------------------------------------------------ a server that hangs


class SilentServer:
    """A TCP listener on 127.0.0.1 (an OS-chosen port) that accepts connections and never
    sends a byte: a server that hangs before its handshake. It runs in its own thread, so a
    client in this process's event loop or in a child process can be tested against it.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._accepted = 0
        self._open: set[socket.socket] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.05):
                    peer = key.fileobj
                    assert isinstance(peer, socket.socket)
                    if peer is self._listener:
                        connection, _ = peer.accept()
                        selector.register(connection, selectors.EVENT_READ)
                        with self._lock:
                            self._accepted += 1
                            self._open.add(connection)
                        continue
                    try:
                        closed = not peer.recv(65536)  # what the client sends is ignored
                    except OSError:
                        closed = True
                    if closed:  # the client hung up: so does this side
                        selector.unregister(peer)
                        peer.close()
                        with self._lock:
                            self._open.discard(peer)
        with self._lock:
            for connection in self._open:
                connection.close()
            self._open.clear()
        self._listener.close()

    @property
    def accepted(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return self._accepted

    def open_connections(self, settle: float = 2.0) -> int:
        """Connections clients still hold open, after waiting up to ``settle`` seconds for
        the count to reach zero (a client's close reaches this thread a moment later)."""
        deadline = time.monotonic() + settle
        while True:
            with self._lock:
                count = len(self._open)
            if count == 0 or time.monotonic() >= deadline:
                return count
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    """A :class:`SilentServer` for the duration of the block."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.stop()
