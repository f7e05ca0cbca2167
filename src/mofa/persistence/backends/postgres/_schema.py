"""Creating or upgrading the schema on connect: the advisory lock and the catalog queries
around the shared migration (``_sql._migrate``), and where migrations run (the store's pool,
or a direct connection: ``migrate_url``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from mofa.persistence import schema
from mofa.persistence._url import DatabaseURL
from mofa.persistence.backends._sql import migrate as migrate_with
from mofa.persistence.backends._sql import read_version
from mofa.persistence.backends._sql._online import LockWaitTimeout
from mofa.persistence.backends.postgres._errors import (
    CALL,
    CONNECT,
    LOCK_NOT_AVAILABLE,
    sqlstate,
    translate,
)
from mofa.persistence.backends.postgres._pool import import_asyncpg
from mofa.persistence.backends.postgres._pooler import Pooling, through_pooler, unpinned_refusal
from mofa.persistence.backends.postgres._url import DriverURL, Target
from mofa.persistence.errors import PersistenceError, QueryError, SchemaError

__all__ = ["migrate"]

_DIALECT: Final = "postgres"
_DEFAULT_CONNECT_TIMEOUT: Final = 10.0
#: Advisory lock key that serializes schema creation/upgrade ("mofa_sch" as bytes).
_SCHEMA_LOCK_KEY: Final = 0x6D6F66615F736368
#: mofa's tables that exist already in the schema CREATE TABLE would use, with their columns.
_EXISTING_COLUMNS = (
    "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod) "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1::text[]) "
    "AND a.attnum > 0 AND NOT a.attisdropped"
)
#: Relations of the current schema named like mofa's indexes, with the table of each index.
_EXISTING_INDEXES = (
    "SELECT c.relname::text, COALESCE(t.relname::text, '') FROM pg_class c "
    "LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1::text[])"
)


#: Whether a table of that name is on the search path, as to_regclass() would find it, but
#: read from pg_class in the statement's own snapshot, which is taken after the advisory
#: lock. to_regclass() answered from what the connection had cached: a connection that had
#: asked before (a create_schema=False check) and then waited for the lock while another
#: process created the schema still read "no table", and migrated a second time.
_TABLE_EXISTS: Final = (
    "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relname = $1 AND n.nspname = ANY(current_schemas(true)))"
)


class _Session:
    """The shared migration's view of one pooled connection (see ``_sql._migrate``)."""

    dialect = _DIALECT

    def __init__(self, connection: Any, where: str) -> None:
        self.connection = connection
        self.where = where

    async def table_exists(self, name: str) -> bool:
        return bool(await self.connection.fetchval(_TABLE_EXISTS, name))

    async def scalar(self, sql: str) -> Any:
        return await self.connection.fetchval(sql)

    async def existing_columns(self, tables: list[str]) -> Sequence[Sequence[str]]:
        rows: list[Any] = await self.connection.fetch(_EXISTING_COLUMNS, tables)
        return rows

    async def existing_indexes(self, names: list[str]) -> Sequence[Sequence[str]]:
        rows: list[Any] = await self.connection.fetch(_EXISTING_INDEXES, names)
        return rows

    async def execute(self, statement: str) -> None:
        await self.connection.execute(statement)

    # The online runner's side (see ``_sql._online``).

    def transaction(self) -> AbstractAsyncContextManager[object]:
        transaction: AbstractAsyncContextManager[object] = self.connection.transaction()
        return transaction

    async def execute_online(self, statement: str, lock_wait: float | None) -> None:
        if lock_wait is None:
            await self.connection.execute(statement)
            return
        await self.connection.execute(f"SET lock_timeout = {max(1, round(lock_wait * 1000))}")
        try:
            await self.connection.execute(statement)
        except Exception as exc:
            if sqlstate(exc) == LOCK_NOT_AVAILABLE:
                raise LockWaitTimeout(str(exc)) from exc
            raise
        finally:
            await self.connection.execute("RESET lock_timeout")

    async def index_valid(self, name: str) -> bool | None:
        valid = await self.connection.fetchval(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", name
        )
        return None if valid is None else bool(valid)


async def _schema_version(connection: Any) -> int:
    """The database's schema version (0: no schema yet)."""
    return await read_version(_Session(connection, where=""))  # reading it names no database


async def migrate(
    pool: Any,
    url: DatabaseURL,
    create_schema: bool,
    *,
    pooling: Pooling,
    migrate_url: DatabaseURL | None = None,
    connect_timeout: float | None = None,
) -> tuple[int, ...]:
    """Bring the schema to the latest version, step by step (``_sql._online``) under a
    session-level advisory lock.

    Several processes may connect at once: the advisory lock makes them take turns, and
    each one reads the version only once it holds the lock. With ``create_schema`` False
    the version is only read and checked.

    Migrations run on the pool when its connections pin their server session, else (or
    whenever ``migrate_url`` is given) on one direct connection to ``migrate_url``, opened
    only when a migration is due; through a pooler that shares server connections, without
    ``migrate_url``, a due migration is refused. The version is read through the pool first,
    so an up-to-date database costs no second connection.

    Returns:
        The migrations applied (the store's ``applied_migrations``).
    """
    where = f"PostgreSQL database at {Target(url).address}"
    async with _pooled(pool, url) as connection:
        try:
            if not create_schema:
                schema.check_ready(_DIALECT, await _schema_version(connection), where)
                return ()
            if migrate_url is None and pooling.pins_sessions:
                return await _migrate_on(connection, where)
            pending = schema.check_version(_DIALECT, await _schema_version(connection), where)
        except PersistenceError:
            raise  # our own checks above: already the error to show
        except Exception as exc:
            raise _migration_error(exc, url) from exc
        if not pending:
            return ()
        if migrate_url is None:
            raise SchemaError(unpinned_refusal(where, pooling, pending))
    applied = await _migrate_direct(migrate_url, connect_timeout)
    async with _pooled(pool, url) as connection:
        try:
            current = await _schema_version(connection)
        except Exception as exc:
            raise _migration_error(exc, url) from exc
    if current != schema.latest_version(_DIALECT):
        raise SchemaError(
            f"migrate_url ({migrate_url.masked}) upgraded a database to schema version "
            f"{schema.latest_version(_DIALECT)}, but the {where} is at version {current}: "
            "the two URLs name different databases; point migrate_url at the same database."
        )
    return applied


@contextlib.asynccontextmanager
async def _pooled(pool: Any, url: DatabaseURL) -> AsyncIterator[Any]:
    """A connection of the pool, for the schema's statements."""
    try:
        connection = await pool.acquire()
    except Exception as exc:
        raise translate(exc, url, stage=CONNECT, write=False) from exc
    try:
        yield connection
    finally:
        await pool.release(connection)


async def _migrate_on(connection: Any, where: str) -> tuple[int, ...]:
    """Every pending migration, step by step, under the session-level schema lock."""
    await _take_schema_lock(connection)
    try:
        return await migrate_with(_Session(connection, where), create_schema=True)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _SCHEMA_LOCK_KEY)


async def _take_schema_lock(connection: Any) -> None:
    """The session-level schema lock, held across a migration's steps and transactions.

    Asked for with ``pg_try_advisory_lock`` until granted, never waited for in one
    statement: a statement waiting for the lock holds a snapshot, and a ``CREATE INDEX
    CONCURRENTLY`` of the holder's migration waits for every older snapshot to go away —
    a deadlock PostgreSQL would break by failing one of the two.
    """
    pause = 0.01
    while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", _SCHEMA_LOCK_KEY):
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)


async def _migrate_direct(url: DatabaseURL, connect_timeout: float | None) -> tuple[int, ...]:
    """Migrate on one new connection to ``url`` (``migrate_url``), which must pin its session."""
    where = f"PostgreSQL database at {Target(url).address}"
    driver_url = DriverURL(url)
    declared = Pooling(driver_url.pool_mode, detected=False)
    if not declared.pins_sessions:
        raise SchemaError(
            f"migrate_url ({url.masked}) says pool_mode={driver_url.pool_mode}: migrations "
            "need a direct connection to PostgreSQL (or a pooler in session mode)."
        )
    asyncpg = import_asyncpg()
    try:
        connection = await asyncpg.connect(
            dsn=driver_url.dsn,
            port=driver_url.ports,
            # As for the store's own URL: the option wins over the URL's ?connect_timeout=.
            timeout=connect_timeout or driver_url.connect_timeout or _DEFAULT_CONNECT_TIMEOUT,
            statement_cache_size=0,  # a handful of statements, each run once
        )
    except Exception as exc:
        raise translate(exc, url, stage=CONNECT, write=False) from exc
    try:
        pooling = Pooling(driver_url.pool_mode, await through_pooler(connection))
        if not pooling.pins_sessions:
            pending = schema.check_version(_DIALECT, await _schema_version(connection), where)
            raise SchemaError(
                unpinned_refusal(where, pooling, pending, via=f"migrate_url ({url.masked})")
            )
        return await _migrate_on(connection, where)
    except PersistenceError:
        raise
    except Exception as exc:
        raise _migration_error(exc, url) from exc
    finally:
        await connection.close()


def _migration_error(exc: BaseException, url: DatabaseURL) -> PersistenceError:
    error = translate(exc, url, stage=CALL, write=True)
    if type(error) is QueryError:
        error = SchemaError(
            f"Creating or upgrading the schema in PostgreSQL at "
            f"{Target(url).address} failed: {error}"
        )
    return error
