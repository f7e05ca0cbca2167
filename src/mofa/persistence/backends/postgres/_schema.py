"""Creating or upgrading the schema on connect: the advisory lock and the catalog queries
around the shared migration (``_sql._migrate``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from mofa.persistence._url import DatabaseURL
from mofa.persistence.backends._sql import migrate as migrate_with
from mofa.persistence.backends.postgres._errors import CALL, CONNECT, translate
from mofa.persistence.backends.postgres._url import Target
from mofa.persistence.errors import PersistenceError, QueryError, SchemaError

__all__ = ["migrate"]

_DIALECT: Final = "postgres"
#: pg_advisory_xact_lock key that serializes schema creation/upgrade ("mofa_sch" as bytes).
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


async def migrate(pool: Any, url: DatabaseURL, create_schema: bool) -> tuple[int, ...]:
    """Bring the schema to the latest version, in one transaction under an advisory lock.

    Several processes may connect at once: the transaction-scoped advisory lock makes
    them take turns, and each one reads the version only once it holds the lock. With
    ``create_schema`` False the version is only read and checked.

    Returns:
        The migrations applied (the store's ``applied_migrations``).
    """
    try:
        connection = await pool.acquire()
    except Exception as exc:
        raise translate(exc, url, stage=CONNECT, write=False) from exc
    session = _Session(connection, f"PostgreSQL database at {Target(url).address}")
    try:
        if not create_schema:  # reads only: no lock, no transaction
            return await migrate_with(session, create_schema=False)
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK_KEY)
            applied = await migrate_with(session, create_schema=True)
    except PersistenceError:
        raise  # our own checks above: already the error to show
    except Exception as exc:
        error = translate(exc, url, stage=CALL, write=True)
        if type(error) is QueryError:
            error = SchemaError(
                f"Creating or upgrading the schema in PostgreSQL at "
                f"{Target(url).address} failed: {error}"
            )
        raise error from exc
    finally:
        await pool.release(connection)
    return applied
