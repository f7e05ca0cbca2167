"""Fixtures shared by every test.

``store`` is the conformance fixture: a test that takes only ``store`` runs on every backend.
Select one with a mark: ``pytest -m sqlite``, ``-m postgres``, ``-m "not mysql"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mofa.persistence import BaseStore, open_store
from tests.servers import mysql_database, postgres_database

#: Every backend; the conformance suite runs on each one.
BACKENDS = ["memory", "sqlite", "files", "postgres", "mysql"]
#: Backends whose data outlives a process (several processes can share one).
DURABLE_BACKENDS = [name for name in BACKENDS if name != "memory"]


def _params(names: list[str]) -> list[object]:
    return [pytest.param(name, marks=getattr(pytest.mark, name), id=name) for name in names]


@pytest.fixture(params=_params(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=_params(DURABLE_BACKENDS))
def durable_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def postgres_server_database() -> Iterator[str]:
    """One throwaway PostgreSQL database for the whole run (tables dropped between tests)."""
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def mysql_server_database() -> Iterator[str]:
    """One throwaway MySQL/MariaDB database for the whole run (tables dropped between tests)."""
    with mysql_database() as url:
        yield url


_TABLES = ("agent_state", "messages", "sessions", "agents", "mofa_schema_migrations")


async def _empty_postgres(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {', '.join(_TABLES)} CASCADE")
    finally:
        await connection.close()


async def _empty_mysql(url: str) -> None:
    from urllib.parse import urlsplit

    import asyncmy

    parts = urlsplit(url)
    connection = await asyncmy.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=parts.path.lstrip("/"),
        autocommit=True,
    )
    try:
        async with connection.cursor() as cursor:
            await cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            await cursor.execute(f"DROP TABLE IF EXISTS {', '.join(_TABLES)}")
    finally:
        connection.close()


def url_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL for an empty database of ``backend`` (server databases are emptied first)."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite://{tmp_path / 'mofa.db'}"
    if backend == "files":
        return f"file://{tmp_path / 'data'}"
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_server_database"))
    if backend == "mysql":
        return str(request.getfixturevalue("mysql_server_database"))
    raise AssertionError(backend)


@pytest.fixture
async def empty_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of an empty database of the current backend."""
    url = url_for(backend, tmp_path, request)
    if backend == "postgres":
        await _empty_postgres(url)
    elif backend == "mysql":
        await _empty_mysql(url)
    return url


@pytest.fixture
async def durable_url(durable_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Like ``empty_url``, for backends that several processes can share."""
    url = url_for(durable_backend, tmp_path, request)
    if durable_backend == "postgres":
        await _empty_postgres(url)
    elif durable_backend == "mysql":
        await _empty_mysql(url)
    return url


@pytest.fixture
async def store(empty_url: str) -> AsyncIterator[BaseStore]:
    """An open store on an empty database of the current backend."""
    opened = await open_store(empty_url)
    try:
        yield opened
    finally:
        await opened.close()
