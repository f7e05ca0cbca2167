"""Creating or upgrading the schema on connect: the version, the catalog checks, the DDL."""

from __future__ import annotations

import sqlite3

from mofa.persistence import schema

__all__ = ["migrate", "place", "schema_version"]

_MIGRATIONS_TABLE_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
_SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM mofa_schema_migrations"
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


def schema_version(connection: sqlite3.Connection) -> int:
    """The database's schema version (0: no schema yet)."""
    exists = connection.execute(_MIGRATIONS_TABLE_EXISTS, (schema.MIGRATIONS_TABLE,)).fetchone()
    return int(connection.execute(_SCHEMA_VERSION).fetchone()[0]) if exists else 0


def place(path: str) -> str:
    """The database as schema errors name it."""
    return f"SQLite database {path!r}"


def migrate(connection: sqlite3.Connection, path: str) -> tuple[int, ...]:
    """Bring the schema to the latest version (inside the caller's BEGIN IMMEDIATE, so of
    several processes connecting at once one upgrades and the others then see it done)."""
    current = schema_version(connection)
    where = place(path)
    applied = schema.check_version("sqlite", current, where)
    if current == 0:
        tables = schema.table_names("sqlite")
        indexes = list(schema.index_tables("sqlite"))
        schema.check_existing_tables(
            "sqlite",
            connection.execute(
                _EXISTING_COLUMNS.format(marks=", ".join("?" * len(tables))), tables
            ).fetchall(),
            where,
            connection.execute(
                _EXISTING_INDEXES.format(marks=", ".join("?" * len(indexes))), indexes
            ).fetchall(),
        )
    # One statement at a time: executescript() would commit and break the transaction.
    for statement in schema.pending_statements("sqlite", current):
        connection.execute(statement)
    return applied
