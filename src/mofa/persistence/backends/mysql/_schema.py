"""Creating or upgrading the schema on connect: the catalog queries under the shared
migration (``_sql._migrate``).

The store holds the schema lock (GET_LOCK) while :func:`migrate` runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from mofa.persistence.backends._sql import migrate as migrate_with
from mofa.persistence.backends._sql._online import LockWaitTimeout
from mofa.persistence.backends.mysql._connect import Target

__all__ = ["migrate"]

#: MySQL's and MariaDB's "Lock wait timeout exceeded" (a metadata lock, for DDL).
_LOCK_WAIT_TIMEOUT = 1205
_TABLE_EXISTS = (
    "SELECT COUNT(*) FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_name = %s"
)
#: mofa's tables that exist already (before the first migration), with their columns.
_EXISTING_COLUMNS = (
    "SELECT table_name, column_name, column_type FROM information_schema.columns "
    "WHERE table_schema = DATABASE() AND table_name IN ({marks})"
)


class _Session:
    """The shared migration's view of the store's schema connection (see ``_sql._migrate``)."""

    dialect = "mysql"

    def __init__(self, cursor: Any, where: str) -> None:
        self.cursor = cursor
        self.where = where

    async def _rows(self, sql: str, args: Sequence[Any] = ()) -> Sequence[Sequence[Any]]:
        await self.cursor.execute(sql, args)
        rows: Sequence[Sequence[Any]] = await self.cursor.fetchall()
        return rows

    async def table_exists(self, name: str) -> bool:
        return bool((await self._rows(_TABLE_EXISTS, (name,)))[0][0])

    async def scalar(self, sql: str) -> Any:
        return (await self._rows(sql))[0][0]

    async def existing_columns(self, tables: list[str]) -> Sequence[Sequence[str]]:
        marks = ", ".join(["%s"] * len(tables))
        return await self._rows(_EXISTING_COLUMNS.format(marks=marks), tables)

    async def existing_indexes(self, names: list[str]) -> Sequence[Sequence[str]]:
        return ()  # an index's name belongs to its table in MySQL: no other object can hold it

    async def execute(self, statement: str) -> None:
        # DDL commits implicitly in MySQL, so each statement is written to be safe to re-run
        # (CREATE TABLE IF NOT EXISTS, INSERT IGNORE, an index created only when missing)
        # should a run be interrupted.
        await self.cursor.execute(statement)

    # The online runner's side (see ``_sql._online``).

    def transaction(self) -> AbstractAsyncContextManager[object]:
        return contextlib.nullcontext()  # DDL commits by itself: nothing to group

    async def execute_online(self, statement: str, lock_wait: float | None) -> None:
        if lock_wait is None:
            await self.cursor.execute(statement)
            return
        # Whole seconds, at least 1: the DDL's metadata lock waits no longer.
        await self.cursor.execute(f"SET SESSION lock_wait_timeout = {max(1, round(lock_wait))}")
        try:
            await self.cursor.execute(statement)
        except Exception as exc:
            if exc.args and exc.args[0] == _LOCK_WAIT_TIMEOUT:
                raise LockWaitTimeout(str(exc)) from exc
            raise
        finally:
            await self.cursor.execute("SET SESSION lock_wait_timeout = DEFAULT")

    async def index_valid(self, name: str) -> bool | None:
        return None  # no CREATE INDEX CONCURRENTLY here: online index builds are ALTER TABLE


async def migrate(cursor: Any, target: Target, create_schema: bool) -> tuple[int, ...]:
    """Bring the schema on ``cursor``'s connection to the latest version (with
    ``create_schema`` False: only check that it is current); the migrations applied."""
    where = f"{target.label} database {target.database!r}"
    return await migrate_with(_Session(cursor, where), create_schema)
