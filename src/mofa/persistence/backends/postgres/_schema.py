"""Creating or upgrading the schema on connect: the lock, the version, the catalog checks."""

from __future__ import annotations

from typing import Any, Final

from mofa.persistence import schema
from mofa.persistence._url import DatabaseURL
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


async def _schema_version(connection: Any) -> int:
    """The database's schema version (0: no schema yet)."""
    if not await connection.fetchval("SELECT to_regclass('mofa_schema_migrations') IS NOT NULL"):
        return 0
    return int(
        await connection.fetchval("SELECT COALESCE(MAX(version), 0) FROM mofa_schema_migrations")
    )


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
    where = f"PostgreSQL database at {Target(url).address}"
    try:
        if not create_schema:
            schema.check_ready(_DIALECT, await _schema_version(connection), where)
            return ()
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK_KEY)
            current = await _schema_version(connection)
            applied = schema.check_version(_DIALECT, current, where)
            if current == 0:
                schema.check_existing_tables(
                    _DIALECT,
                    await connection.fetch(_EXISTING_COLUMNS, schema.table_names(_DIALECT)),
                    where,
                    await connection.fetch(_EXISTING_INDEXES, list(schema.index_tables(_DIALECT))),
                )
            for statement in schema.pending_statements(_DIALECT, current):
                await connection.execute(statement)
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
