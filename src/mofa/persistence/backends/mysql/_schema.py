"""Creating or upgrading the schema on connect: the version, the catalog checks, the DDL.

The store holds the schema lock (GET_LOCK) while :func:`migrate` runs.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Any

from mofa.persistence import schema
from mofa.persistence.backends._online import LockWaitTimeout, run_steps
from mofa.persistence.backends.mysql._connect import Target

__all__ = ["migrate"]

_MIGRATIONS_TABLE_EXISTS = (
    "SELECT COUNT(*) FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_name = %s"
)
_SCHEMA_VERSION = "SELECT COALESCE(MAX(version), 0) FROM mofa_schema_migrations"
#: mofa's tables that exist already (before the first migration), with their columns.
_EXISTING_COLUMNS = (
    "SELECT table_name, column_name, column_type FROM information_schema.columns "
    "WHERE table_schema = DATABASE() AND table_name IN ({marks})"
)


async def migrate(cursor: Any, target: Target, create_schema: bool) -> tuple[int, ...]:
    """Bring the schema on ``cursor``'s connection to the latest version (with
    ``create_schema`` False: only check that it is current); the migrations applied."""
    await cursor.execute(_MIGRATIONS_TABLE_EXISTS, (schema.MIGRATIONS_TABLE,))
    version = 0
    if (await cursor.fetchall())[0][0]:
        await cursor.execute(_SCHEMA_VERSION)
        version = int((await cursor.fetchall())[0][0])
    where = f"{target.label} database {target.database!r}"
    if not create_schema:
        schema.check_ready("mysql", version, where)
        return ()
    applied = schema.check_version("mysql", version, where)
    if version == 0:
        tables = schema.table_names("mysql")
        await cursor.execute(
            _EXISTING_COLUMNS.format(marks=", ".join(["%s"] * len(tables))), tables
        )
        schema.check_existing_tables(
            "mysql",
            await cursor.fetchall(),
            where,
        )
    # DDL commits implicitly in MySQL, so each statement is written to be safe to re-run
    # (CREATE TABLE IF NOT EXISTS, INSERT IGNORE, an index created only when missing)
    # should a run be interrupted.
    await run_steps(_Steps(cursor), schema.pending_steps("mysql", version))
    return applied


#: MySQL's and MariaDB's "Lock wait timeout exceeded" (a metadata lock here).
_LOCK_WAIT_TIMEOUT = 1205


class _Steps:
    """The online runner's view of the schema connection (see :mod:`.._online`)."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def transaction(self) -> AbstractAsyncContextManager[object]:
        return contextlib.nullcontext()  # DDL commits by itself: nothing to group

    async def execute(self, statement: str) -> None:
        await self._cursor.execute(statement)

    async def execute_online(self, statement: str, lock_wait: float | None) -> None:
        if lock_wait is None:
            await self._cursor.execute(statement)
            return
        # Whole seconds, at least 1; the DDL's metadata lock waits no longer.
        await self._cursor.execute(f"SET SESSION lock_wait_timeout = {max(1, round(lock_wait))}")
        try:
            await self._cursor.execute(statement)
        except Exception as exc:
            if exc.args and exc.args[0] == _LOCK_WAIT_TIMEOUT:
                raise LockWaitTimeout(str(exc)) from exc
            raise
        finally:
            await self._cursor.execute("SET SESSION lock_wait_timeout = DEFAULT")

    async def index_valid(self, name: str) -> bool | None:
        return None  # no CREATE INDEX CONCURRENTLY here: online index builds are ALTER TABLE
