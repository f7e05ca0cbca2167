"""Creating or upgrading the schema on connect: the lock, the version, the catalog checks."""

from __future__ import annotations

from typing import Any, Final

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
