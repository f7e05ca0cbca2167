"""Fixtures shared by every test.

``store`` is the conformance fixture: a test that takes only ``store`` runs on every backend.
Select one with a mark: ``pytest -m sqlite``, ``-m postgres``, ``-m "not mysql"``. The
conformance suite (``tests/conformance``) also runs on ``pgbouncer``: the PostgreSQL store
through a private PgBouncer in transaction mode (marks ``postgres`` and ``pgbouncer``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mofa.persistence import BaseStore, open_store, schema
from tests.partitioned import empty_partitioned, partition
from tests.pgbouncer import PgBouncer, pgbouncer
from tests.servers import drop_mofa_tables, mysql_database, postgres_database

#: Every backend; the conformance suite runs on each one.
BACKENDS = ["memory", "sqlite", "files", "postgres", "mysql"]
#: Backends whose data outlives a process (several processes can share one).
DURABLE_BACKENDS = [name for name in BACKENDS if name != "memory"]
#: The conformance suite's backends: every backend, and the PostgreSQL store through
#: PgBouncer in transaction mode (its URL goes through the pooler; the fixtures create the
#: schema on the direct URL first, as `mofa db init -u DIRECT_URL` would).
#: And on PostgreSQL with sessions, messages and agent_state hash-partitioned by session_id
#: (tests/partitioned.py: the key rule Citus enforces).
CONFORMANCE_BACKENDS = [*BACKENDS, "pgbouncer", "partitioned"]
CONFORMANCE_DURABLE_BACKENDS = [*DURABLE_BACKENDS, "pgbouncer", "partitioned"]


def all_versions(dialect: str) -> tuple[int, ...]:
    """What opening a store applies to an empty database of ``dialect``: every migration."""
    return tuple(migration.version for migration in schema.migrations(dialect))


def recorded_versions(dialect: str) -> list[tuple[int, str]]:
    """The (version, name) rows of mofa_schema_migrations once every migration ran."""
    return [(migration.version, migration.name) for migration in schema.migrations(dialect)]


def _params(names: list[str]) -> list[object]:
    return [pytest.param(name, marks=_marks(name), id=name) for name in names]


def _marks(name: str) -> list[pytest.MarkDecorator]:
    if name in ("pgbouncer", "partitioned"):  # PostgreSQL too: `-m postgres` selects them
        return [pytest.mark.postgres, getattr(pytest.mark, name)]
    return [getattr(pytest.mark, name)]


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


@pytest.fixture(scope="session")
def pgbouncer_server() -> Iterator[PgBouncer]:
    """One private PgBouncer (transaction mode) in front of the PostgreSQL server, for the run."""
    with pgbouncer() as bouncer:
        yield bouncer


def server_kind(backend: str) -> str:
    """The server a backend's database lives on ("postgres" for pgbouncer and partitioned)."""
    return "postgres" if backend in ("pgbouncer", "partitioned") else backend


def url_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL for a database of ``backend`` (the server ones are shared by the whole run)."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite://{tmp_path / 'mofa.db'}"
    if backend == "files":
        return f"file://{tmp_path / 'data'}"
    if backend in ("postgres", "partitioned"):
        return str(request.getfixturevalue("postgres_server_database"))
    if backend == "mysql":
        return str(request.getfixturevalue("mysql_server_database"))
    if backend == "pgbouncer":
        bouncer: PgBouncer = request.getfixturevalue("pgbouncer_server")
        return bouncer.url(str(request.getfixturevalue("postgres_server_database")))
    raise AssertionError(backend)


async def _empty(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """``url_for``, with a server database emptied of every mofa table.

    pgbouncer: the schema is then created through the direct URL (migrations are refused
    through a transaction pooler), so the database is empty of data, not of tables.
    partitioned: the schema is created, then its three tables partitioned.
    """
    url = url_for(backend, tmp_path, request)
    if backend in ("postgres", "mysql"):
        await drop_mofa_tables(backend, url)
    if backend == "pgbouncer":
        direct = url_for("postgres", tmp_path, request)
        await drop_mofa_tables("postgres", direct)
        await (await open_store(direct)).close()
    if backend == "partitioned" and not await _empty_partitioned(url):
        await drop_mofa_tables("postgres", url)
        await (await open_store(url)).close()
        await partition(url)
    return url


async def _empty_partitioned(url: str) -> bool:
    """Empty an already partitioned database (faster than building it again), if it is one."""
    try:
        return await empty_partitioned(url, schema.latest_version("postgres"))
    except Exception:  # no mofa_schema_migrations yet, or a test left something else
        return False


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
