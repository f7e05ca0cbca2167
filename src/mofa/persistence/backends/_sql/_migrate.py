"""Creating or upgrading the schema, orchestrated once for the three SQL dialects.

What differs by dialect is small and sits behind :class:`SchemaSession`: how to ask whether
a table exists, how to read the catalog, how to run a statement (in a transaction, or online:
see :mod:`._online`), and the lock that makes two processes take turns (PostgreSQL's
session-level advisory lock, MySQL's GET_LOCK, SQLite's BEGIN IMMEDIATE), which the backend
holds around :func:`migrate`. What is the same is here: read the version, refuse a newer
one, check the tables a first migration would adopt, run the pending migrations' steps
through the online runner (each migration records its version, see
:mod:`mofa.persistence.schema`).

SQLite runs on its worker thread, without an event loop: its session's methods never wait,
so :func:`run_to_end` drives the same coroutine there to its end in one step.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from mofa.persistence import schema
from mofa.persistence.backends._sql._online import StepSession, run_steps
from mofa.persistence.backends._sql._statements import SCHEMA_VERSION

__all__ = ["SchemaSession", "migrate", "read_version", "run_to_end"]

_T = TypeVar("_T")


class SchemaSession(StepSession, Protocol):
    """One connection to a database whose schema is being read or upgraded (and, through
    :class:`~._online.StepSession`, the runner of its migrations' steps)."""

    #: The dialect's name in :mod:`mofa.persistence.schema`.
    dialect: str
    #: The database as schema errors name it ("PostgreSQL database at host:5432/mofa").
    where: str

    async def table_exists(self, name: str) -> bool:
        """Whether the current schema holds a table ``name``, as of now (never cached)."""

    async def scalar(self, sql: str) -> Any:
        """The first column of the first row ``sql`` returns."""

    async def existing_columns(self, tables: list[str]) -> Sequence[Sequence[str]]:
        """``(table, column, type)`` of each column of ``tables`` that exists already."""

    async def existing_indexes(self, names: list[str]) -> Sequence[Sequence[str]]:
        """``(name, table)`` of each relation named like one of mofa's indexes (``()`` where
        an index name is not shared by the whole schema, as in MySQL)."""


async def read_version(session: SchemaSession) -> int:
    """The database's schema version (0: no schema yet)."""
    if not await session.table_exists(schema.MIGRATIONS_TABLE):
        return 0
    return int(await session.scalar(SCHEMA_VERSION))


async def migrate(session: SchemaSession, create_schema: bool) -> tuple[int, ...]:
    """Bring the schema to the latest version; the versions applied.

    With ``create_schema`` False nothing is changed: a database without the current schema
    is refused (:class:`~mofa.persistence.errors.SchemaError`). The caller holds the
    dialect's schema lock, so the version read here is not stale by the time it is acted on.
    """
    dialect, where = session.dialect, session.where
    current = await read_version(session)
    if not create_schema:
        schema.check_ready(dialect, current, where)
        return ()
    applied = schema.check_version(dialect, current, where)
    if current == 0:
        schema.check_existing_tables(
            dialect,
            await session.existing_columns(schema.table_names(dialect)),
            where,
            await session.existing_indexes(list(schema.index_tables(dialect))),
        )
    await run_steps(session, schema.pending_steps(dialect, current))
    return applied


def run_to_end(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """The result of a coroutine that never waits (a blocking :class:`SchemaSession`'s)."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        result: _T = finished.value
        return result
    coroutine.close()
    raise RuntimeError("a blocking schema session waited on an event loop")
