"""A database or directory that a newer mofa-sdk has upgraded is refused, on every durable
backend, before anything is read or changed: this version cannot know what the newer one
changed. (One test for what each SQL backend's tests used to check on its own.)"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mofa.persistence import SchemaError, open_store, schema
from mofa.persistence._registry import record_for
from mofa.persistence.locations import STORE_MARKER
from tests.conftest import server_kind
from tests.servers import server_rows

#: A version no mofa-sdk has written yet.
_FUTURE = 999


async def _mark_newer(backend: str, url: str) -> None:
    """Record in the store what a newer mofa-sdk would: a schema version (or file-store
    format) beyond this one's."""
    if backend == "files":
        directory = Path(url.removeprefix("file://"))
        (directory / STORE_MARKER).write_text(json.dumps({"format": _FUTURE}) + "\n")
        return
    statement = (
        f"INSERT INTO mofa_schema_migrations (version, name) VALUES ({_FUTURE}, 'from_the_future')"
    )
    if backend == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite://")) as connection:
            connection.execute(statement)
    else:
        await server_rows(server_kind(backend), url, statement)


async def test_a_store_a_newer_version_upgraded_is_refused(
    durable_backend: str, durable_url: str
) -> None:
    async with await open_store(durable_url) as store:
        await store.create_session("kept", user_id="u")
        dialect = record_for(store.backend).dialect
        # Through PgBouncer, and partitioned, the fixture made the schema already.
        if dialect is not None and durable_backend not in ("pgbouncer", "partitioned"):
            assert store.applied_migrations == tuple(
                migration.version for migration in schema.migrations(dialect)
            )
    async with await open_store(durable_url) as store:
        assert store.applied_migrations == ()  # already current: nothing applied again
    await _mark_newer(durable_backend, durable_url)

    for create_schema in (True, False):
        with pytest.raises(SchemaError, match=rf"{_FUTURE}.*upgrade mofa-sdk"):
            await open_store(durable_url, create_schema=create_schema)
