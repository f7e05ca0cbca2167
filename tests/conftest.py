"""Fixtures shared by every test.

``store`` is the conformance fixture: a test that takes only ``store`` runs on every backend.
Select one with a mark: ``pytest -m sqlite``, ``-m postgres``, ``-m "not mysql"``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mofa.persistence import BaseStore, open_store, schema
from tests.servers import drop_mofa_tables, mysql_database, postgres_database

#: Every backend; the conformance suite runs on each one.
BACKENDS = ["memory", "sqlite", "files", "postgres", "mysql"]
#: Backends whose data outlives a process (several processes can share one).
DURABLE_BACKENDS = [name for name in BACKENDS if name != "memory"]


def all_versions(dialect: str) -> tuple[int, ...]:
    """What opening a store applies to an empty database of ``dialect``: every migration."""
    return tuple(migration.version for migration in schema.migrations(dialect))


def recorded_versions(dialect: str) -> list[tuple[int, str]]:
    """The (version, name) rows of mofa_schema_migrations once every migration ran."""
    return [(migration.version, migration.name) for migration in schema.migrations(dialect)]


def _params(names: list[str]) -> list[object]:
    return [pytest.param(name, marks=getattr(pytest.mark, name), id=name) for name in names]


@pytest.fixture(autouse=True, scope="session")
def _data_dir_out_of_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default file store (agent.yml without a database, the CLI without a URL) lives in
    a temporary directory for the whole run, never in the home directory of whoever runs
    the tests; tests of the default location set their own environment."""
    saved = os.environ.get("MOFA_DATA_DIR")
    os.environ["MOFA_DATA_DIR"] = str(tmp_path_factory.mktemp("mofa-data"))
    yield
    if saved is None:
        del os.environ["MOFA_DATA_DIR"]
    else:
        os.environ["MOFA_DATA_DIR"] = saved


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


def url_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL for a database of ``backend`` (the server ones are shared by the whole run)."""
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


async def _empty(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """``url_for``, with a server database emptied of every mofa table."""
    url = url_for(backend, tmp_path, request)
    if backend in ("postgres", "mysql"):
        await drop_mofa_tables(backend, url)
    return url


@pytest.fixture
async def empty_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of an empty database of the current backend."""
    return await _empty(backend, tmp_path, request)


@pytest.fixture
async def durable_url(durable_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Like ``empty_url``, for backends that several processes can share."""
    return await _empty(durable_backend, tmp_path, request)


@pytest.fixture
async def store(empty_url: str) -> AsyncIterator[BaseStore]:
    """An open store on an empty database of the current backend."""
    opened = await open_store(empty_url)
    try:
        yield opened
    finally:
        await opened.close()
