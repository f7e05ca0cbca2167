"""Creating or upgrading the schema on connect: the catalog queries under the shared
migration (``_sql._migrate``), run on the worker thread."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from mofa.persistence.backends._sql import migrate as migrate_with
from mofa.persistence.backends._sql import read_version, run_to_end

__all__ = ["migrate", "place", "schema_version"]

_TABLE_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
#: mofa's tables that exist already (before the first migration), with their columns.
_EXISTING_COLUMNS = (
    "SELECT m.name, c.name, c.type FROM sqlite_master AS m, pragma_table_info(m.name) AS c "
    "WHERE m.type IN ('table', 'view') AND m.name IN ({marks})"
)
#: Schema objects named like mofa's indexes, with the table of each (an index's name belongs
#: to the whole file).
_EXISTING_INDEXES = (
    "SELECT name, CASE type WHEN 'index' THEN tbl_name ELSE '' END FROM sqlite_master "
    "WHERE name IN ({marks})"
)


class _Session:
    """The shared migration's view of the worker's connection. Its methods never wait, so
    :func:`run_to_end` runs the shared coroutine on the worker thread, with no event loop."""

    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self.connection = connection
        self.where = place(path)

    async def table_exists(self, name: str) -> bool:
        return self.connection.execute(_TABLE_EXISTS, (name,)).fetchone() is not None

    async def scalar(self, sql: str) -> Any:
        return self.connection.execute(sql).fetchone()[0]

    async def existing_columns(self, tables: list[str]) -> Sequence[Sequence[str]]:
        marks = ", ".join("?" * len(tables))
        return self.connection.execute(_EXISTING_COLUMNS.format(marks=marks), tables).fetchall()

    async def existing_indexes(self, names: list[str]) -> Sequence[Sequence[str]]:
        marks = ", ".join("?" * len(names))
        return self.connection.execute(_EXISTING_INDEXES.format(marks=marks), names).fetchall()

    async def execute(self, statement: str) -> None:
        # One statement at a time: executescript() would commit and break the transaction.
        self.connection.execute(statement)

    # The online runner's side (see ``_sql._online``): SQLite's migrations have no online
    # step, and the caller's BEGIN IMMEDIATE already holds the whole upgrade.

    def transaction(self) -> AbstractAsyncContextManager[object]:
        return contextlib.nullcontext()

    async def execute_online(self, statement: str, lock_wait: float | None) -> None:
        self.connection.execute(statement)

    async def index_valid(self, name: str) -> bool | None:
        return None


def schema_version(connection: sqlite3.Connection) -> int:
    """The database's schema version (0: no schema yet)."""
    return run_to_end(read_version(_Session(connection, "")))


def place(path: str) -> str:
    """The database as schema errors name it."""
    return f"SQLite database {path!r}"


def migrate(connection: sqlite3.Connection, path: str) -> tuple[int, ...]:
    """Bring the schema to the latest version (inside the caller's BEGIN IMMEDIATE, so of
    several processes connecting at once one upgrades and the others then see it done)."""
    return run_to_end(migrate_with(_Session(connection, path), create_schema=True))
