"""Throwaway databases on the real PostgreSQL and MariaDB/MySQL servers.

URLs come from ``MOFA_TEST_POSTGRES_URL`` / ``MOFA_TEST_MYSQL_URL`` (an admin connection),
defaulting to the local servers. When a server does not answer, its tests skip with the reason,
unless ``MOFA_TEST_REQUIRE_SERVERS=1`` (set by CI), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "MOFA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MYSQL_ADMIN_URL = os.environ.get("MOFA_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REQUIRE_SERVERS = os.environ.get("MOFA_TEST_REQUIRE_SERVERS") == "1"

_unreachable: dict[str, str] = {}


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database (same credentials, host and query)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def server_unavailable(kind: str, reason: str) -> None:
    """Skip (or, under MOFA_TEST_REQUIRE_SERVERS=1, fail) because a server is missing."""
    message = (
        f"{kind} server not reachable ({reason}); start it or set MOFA_TEST_{kind.upper()}_URL"
    )
    if REQUIRE_SERVERS:
        pytest.fail(message + " — MOFA_TEST_REQUIRE_SERVERS=1 requires it", pytrace=False)
    pytest.skip(message)


async def _pg_admin(sql: str, url: str = POSTGRES_ADMIN_URL) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _mysql_admin(sql: str, url: str = MYSQL_ADMIN_URL) -> None:
    import asyncmy

    parts = urlsplit(url)
    connection = await asyncmy.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        connect_timeout=5,
        autocommit=True,
    )
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(sql)
    finally:
        connection.close()


def _blocking(coroutine_factory: object) -> None:
    """Run a coroutine to completion from sync code, even inside a running event loop.

    Session fixtures are first requested from async fixtures (``empty_url``), where
    ``asyncio.run`` refuses to start; a short-lived thread has no loop of its own.
    """
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine_factory())  # type: ignore[operator]
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _run(kind: str, coroutine_factory: object) -> None:
    if kind in _unreachable:
        server_unavailable(kind, _unreachable[kind])
    try:
        _blocking(coroutine_factory)
    except (OSError, ConnectionError, TimeoutError) as exc:
        _unreachable[kind] = f"{type(exc).__name__}: {exc}"
        server_unavailable(kind, _unreachable[kind])


@contextmanager
def postgres_database(prefix: str = "mofa_test") -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its URL and drops it afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    _run("postgres", lambda: _pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(POSTGRES_ADMIN_URL, name)
    finally:
        _blocking(lambda: _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def mysql_database(prefix: str = "mofa_test") -> Iterator[str]:
    """A new, empty MySQL/MariaDB database; yields its URL and drops it afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    _run(
        "mysql",
        lambda: _mysql_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
    )
    try:
        yield with_database(MYSQL_ADMIN_URL, name)
    finally:
        _blocking(lambda: _mysql_admin(f"DROP DATABASE IF EXISTS `{name}`"))
