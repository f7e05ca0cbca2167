"""A database that already holds tables with mofa's names, on SQLite, PostgreSQL and MariaDB.

The migrations use CREATE TABLE IF NOT EXISTS, so a table made by hand from the documented
schema is adopted. A table of the same name made by some other program must be refused before
anything is changed (MySQL cannot roll DDL back), with one sentence naming the table.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mofa.persistence import SchemaError, open_store, schema
from tests._cli import assert_one_error_line, mofa
from tests.cli.test_db import exercise_store, sqlite_tables
from tests.cli.test_db_servers import table_set
from tests.conftest import _params, all_versions
from tests.servers import mysql_connection, server_database, server_rows

ALL_TYPES = _params(["sqlite", "postgres", "mysql"])
#: A session row written by another program, in SQL every dialect accepts.
BY_HAND_SESSION = (
    "INSERT INTO sessions (session_id, status, metadata, message_count, created_at, "
    "updated_at) VALUES ('by-hand', 'active', '{}', 0, "
    "'2026-01-02 03:04:05.000000', '2026-01-02 03:04:05.000000')"
)


@contextmanager
def empty_database(db_type: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty database of ``db_type`` (a new SQLite file each call); dropped after."""
    if db_type == "sqlite":
        yield f"sqlite://{tmp_path / f'{secrets.token_hex(4)}.db'}"
    else:
        with server_database(db_type, "mofa_existing") as url:
            yield url


def execute(db_type: str, url: str, statements: list[str]) -> None:
    """Run SQL as another program would, outside mofa, in order on one connection (MySQL's
    user variables last only as long as their connection)."""
    asyncio.run(_execute(db_type, url, statements))


async def _execute(db_type: str, url: str, statements: list[str]) -> None:
    if db_type == "sqlite":
        connection = sqlite3.connect(url.removeprefix("sqlite://"), isolation_level=None)
        try:
            for statement in statements:
                connection.execute(statement)
        finally:
            connection.close()
    elif db_type == "postgres":
        import asyncpg

        pg = await asyncpg.connect(url)
        try:
            for statement in statements:
                await pg.execute(statement)
        finally:
            await pg.close()
    else:
        async with mysql_connection(url) as connection, connection.cursor() as cursor:
            for statement in statements:
                await cursor.execute(statement)


def rows(db_type: str, url: str, query: str) -> list[tuple[Any, ...]]:
    if db_type == "sqlite":
        connection = sqlite3.connect(url.removeprefix("sqlite://"))
        try:
            return [tuple(row) for row in connection.execute(query)]
        finally:
            connection.close()
    return asyncio.run(server_rows(db_type, url, query))


def tables(db_type: str, url: str) -> set[str]:
    if db_type == "sqlite":
        return sqlite_tables(Path(url.removeprefix("sqlite://")))
    return table_set(db_type, url)


def columns(db_type: str, url: str) -> dict[str, tuple[str, ...]]:
    """Each table's columns in order, from the database's own catalog."""
    found: dict[str, tuple[str, ...]] = {}
    for table in schema.table_columns(db_type):
        if db_type == "sqlite":
            query = f"SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
        elif db_type == "postgres":
            query = (
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                f"'public' AND table_name = '{table}' ORDER BY ordinal_position"
            )
        else:
            query = (
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                f"DATABASE() AND table_name = '{table}' ORDER BY ordinal_position"
            )
        found[table] = tuple(row[0] for row in rows(db_type, url, query))
    return found


@pytest.mark.parametrize("db_type", ALL_TYPES)
def test_the_columns_read_from_the_schema_files_are_the_catalogs(
    db_type: str, tmp_path: Path
) -> None:
    with empty_database(db_type, tmp_path) as url:
        asyncio.run(exercise_store(url))
        assert columns(db_type, url) == schema.table_columns(db_type)


@pytest.mark.parametrize("db_type", ALL_TYPES)
def test_another_programs_table_is_refused_and_nothing_is_changed(
    db_type: str, tmp_path: Path
) -> None:
    with empty_database(db_type, tmp_path) as url:
        execute(
            db_type,
            url,
            [
                "CREATE TABLE sessions (id INTEGER PRIMARY KEY, name VARCHAR(50))",
                "INSERT INTO sessions (id, name) VALUES (7, 'theirs')",
            ],
        )

        result = mofa("db", "init", "-t", db_type, "-u", url)
        line = assert_one_error_line(result)
        assert "already has a table named sessions that mofa-sdk did not create" in line
        assert "session_id" in line  # the columns it lacks
        assert "✓" not in result.stdout

        with pytest.raises(SchemaError, match="table named sessions"):
            asyncio.run(open_store(url))

        assert tables(db_type, url) == {"sessions"}
        assert rows(db_type, url, "SELECT id, name FROM sessions") == [(7, "theirs")]


@pytest.mark.parametrize("db_type", ALL_TYPES)
def test_the_documented_schema_made_by_hand_is_adopted(db_type: str, tmp_path: Path) -> None:
    """Someone ran the tables of the docs themselves (no bookkeeping table): mofa uses them."""
    with empty_database(db_type, tmp_path) as url:
        execute(db_type, url, schema.migrations(db_type)[0].statements)
        execute(
            db_type,
            url,
            [BY_HAND_SESSION],
        )

        assert asyncio.run(exercise_store(url)) == all_versions(db_type)

        async def by_hand_session() -> Any:
            store = await open_store(url)
            try:
                return await store.get_session("by-hand")
            finally:
                await store.close()

        adopted = asyncio.run(by_hand_session())
        assert adopted is not None
        assert adopted.message_count == 0
        assert tables(db_type, url) == {*schema.table_names(db_type), schema.MIGRATIONS_TABLE}


#: mofa's type of agents.started_at on each dialect, and another that is not the same.
OTHER_STARTED_AT = {
    "postgres": ("TIMESTAMPTZ", "TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE"),
    "mysql": ("DATETIME(6)", "DATETIME", "DATETIME"),
    "sqlite": ("TEXT", "DATETIME", "NUMERIC"),
}


@pytest.mark.parametrize("db_type", ALL_TYPES)
def test_mofas_column_names_with_other_types_are_refused(db_type: str, tmp_path: Path) -> None:
    """The seeds' own agents table has mofa's column names but naive timestamps: adopting it
    made every create_session fail on PostgreSQL."""
    ours, theirs, shown = OTHER_STARTED_AT[db_type]
    create_agents = schema.migrations(db_type)[0].statements[0]
    assert f"started_at {ours} NOT NULL" in create_agents
    with empty_database(db_type, tmp_path) as url:
        execute(db_type, url, [create_agents.replace(f"started_at {ours}", f"started_at {theirs}")])

        result = mofa("db", "init", "-t", db_type, "-u", url)
        line = assert_one_error_line(result)
        assert "already has a table named agents that mofa-sdk did not create (its column " in line
        assert f"started_at is {shown}, not {ours}" in line
        assert tables(db_type, url) == {"agents"}


@pytest.mark.parametrize("db_type", _params(["sqlite", "postgres"]))
def test_an_index_name_kept_by_a_renamed_table_is_refused(db_type: str, tmp_path: Path) -> None:
    """A renamed table keeps its indexes, and index names belong to the whole schema (or
    file): CREATE INDEX IF NOT EXISTS then skipped mofa's index on the new messages table."""
    with empty_database(db_type, tmp_path) as url:
        execute(db_type, url, schema.migrations(db_type)[0].statements)
        execute(db_type, url, ["ALTER TABLE messages RENAME TO old_messages"])
        execute(db_type, url, ["ALTER TABLE sessions RENAME TO old_sessions"])

        result = mofa("db", "init", "-t", db_type, "-u", url)
        line = assert_one_error_line(result)
        assert (
            "already has a relation named idx_sessions_agent (on table old_sessions)" in (line)
            or "already has a relation named idx_messages_session (on table old_messages)" in line
        )
        assert "drop or rename it" in line
        assert schema.MIGRATIONS_TABLE not in tables(db_type, url)
