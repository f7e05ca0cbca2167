"""PostgreSQL for the benchmarks: throwaway databases and the raw ``asyncpg`` baseline.

The server comes from ``MOFA_BENCH_POSTGRES_URL`` (else ``MOFA_TEST_POSTGRES_URL``, else the
local server as ``postgres``). The raw side is the floor the store is measured against: an
asyncpg pool set up as well as asyncpg allows (the per-release reset switched off, prepared
statements cached per connection), the store's schema, and the same statements — an append
is one CTE statement that bumps the session counter and inserts the row, a batch is one
``unnest()`` statement — and reads turn each record into one plain object with its JSON
decoded (``messages``, ``sessions``): the comparator, on the event loop like the store.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from benchmarks._measure import RawMessage, RawSession, with_database
from mofa.persistence import schema

NAME = "postgres"

_ADMIN_URL = os.environ.get("MOFA_BENCH_POSTGRES_URL") or os.environ.get(
    "MOFA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_SESSION_COLUMNS = ", ".join(schema.table_columns(NAME)["sessions"])
_MESSAGE_COLUMNS = "id, seq, role, content, metadata, timestamp"
_APPEND_ONE = (
    "WITH s AS (UPDATE sessions SET message_count = message_count + 1, updated_at = $4"
    " WHERE session_id = $1 RETURNING message_count) "
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "SELECT $1, s.message_count, $2, $3, '{}', $4 FROM s"
)
_APPEND_BATCH = (
    "WITH s AS (UPDATE sessions SET message_count = message_count + $2, updated_at = $5"
    " WHERE session_id = $1 RETURNING message_count - $2 AS base) "
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "SELECT $1, s.base + m.position, m.role, m.content, '{}', $5 "
    "FROM s, unnest($3::varchar[], $4::text[]) WITH ORDINALITY AS m(role, content, position) "
    "ORDER BY m.position"
)


def messages(rows: list[Any]) -> list[RawMessage]:
    """One object per row, its JSON decoded and its time UTC-aware: the comparator's decode."""
    loads = orjson.loads
    return [RawMessage(r[0], r[1], r[2], r[3], loads(r[4]), r[5]) for r in rows]


def sessions(rows: list[Any]) -> list[RawSession]:
    loads = orjson.loads
    return [
        RawSession(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            loads(r[5]),
            r[6],
            r[7],
            r[8],
            None if r[9] is None else r[9],
        )
        for r in rows
    ]


async def _no_reset(connection: Any) -> None:
    """Skip asyncpg's per-release ``RESET ALL; UNLISTEN *…`` round trip (as the store does)."""


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(_ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def create_database() -> str:
    """A new, empty database on the server; its URL (same credentials as the admin URL)."""
    name = f"mofa_bench_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    return with_database(_ADMIN_URL, name)


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Raw:
    """asyncpg doing the store's durable work with the least possible code."""

    def __init__(self, url: str, pool: Any, owned: bool) -> None:
        self.url = url
        self._pool = pool
        self._owned = owned

    @classmethod
    async def open(cls, url: str | None = None) -> Raw:
        owned = url is None
        if url is None:
            url = await create_database()
        pool = await asyncpg.create_pool(url, min_size=1, max_size=10, reset=_no_reset)
        if owned:
            async with pool.acquire() as connection, connection.transaction():
                for statement in schema.script_statements(NAME):
                    await connection.execute(statement)
        return cls(url, pool, owned)

    async def close(self) -> None:
        await self._pool.close()
        if self._owned:
            await drop_database(self.url)

    async def create_session(self, session_id: str, user_id: str, agent_id: str) -> None:
        now = datetime.now(UTC)
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO agents (id, name, state, started_at, created_at, updated_at) "
                "VALUES ($1, $1, 'unknown', $2, $2, $2) ON CONFLICT (id) DO NOTHING",
                agent_id,
                now,
            )
            await connection.execute(
                "INSERT INTO sessions (session_id, agent_id, user_id, status, metadata, "
                "message_count, created_at, updated_at) "
                "VALUES ($1, $2, $3, 'active', '{}', 0, $4, $4)",
                session_id,
                agent_id,
                user_id,
                now,
            )

    async def append_one(self, session_id: str, role: str, content: str) -> None:
        await self._pool.execute(_APPEND_ONE, session_id, role, content, datetime.now(UTC))

    async def append_batch(self, session_id: str, rows: list[tuple[str, str]]) -> None:
        await self._pool.execute(
            _APPEND_BATCH,
            session_id,
            len(rows),
            [role for role, _ in rows],
            [content for _, content in rows],
            datetime.now(UTC),
        )

    async def load_all(self, session_id: str) -> list[RawMessage]:
        rows = list(
            await self._pool.fetch(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = $1 ORDER BY seq",
                session_id,
            )
        )
        return messages(rows)

    async def load_last(self, session_id: str, n: int) -> list[RawMessage]:
        rows = list(
            await self._pool.fetch(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = $1 "
                "ORDER BY seq DESC LIMIT $2",
                session_id,
                n,
            )
        )
        rows.reverse()
        return messages(rows)

    async def load_last_owned(
        self, session_id: str, n: int, user_id: str, agent_id: str
    ) -> list[RawMessage]:
        rows = list(
            await self._pool.fetch(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = $1 AND EXISTS "
                "(SELECT 1 FROM sessions s WHERE s.session_id = $1 AND s.tenant_id IS NULL "
                "AND s.user_id = $2 AND s.agent_id = $3) ORDER BY seq DESC LIMIT $4",
                session_id,
                user_id,
                agent_id,
                n,
            )
        )
        rows.reverse()
        return messages(rows)

    async def list_user_sessions(self, user_id: str, limit: int) -> list[RawSession]:
        rows = list(
            await self._pool.fetch(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = $1 "
                "ORDER BY created_at DESC, session_id DESC LIMIT $2",
                user_id,
                limit,
            )
        )
        return sessions(rows)

    async def list_recent_sessions(self, limit: int) -> list[RawSession]:
        rows = list(
            await self._pool.fetch(
                f"SELECT {_SESSION_COLUMNS} FROM sessions "
                "ORDER BY created_at DESC, session_id DESC LIMIT $1",
                limit,
            )
        )
        return sessions(rows)

    async def bulk_load(self, sessions: int, messages_per_session: int, users: int) -> None:
        """COPY in chunks, then ANALYZE so the planner knows the tables' new size."""
        base = datetime(2026, 1, 1, tzinfo=UTC)
        async with self._pool.acquire() as connection:
            await connection.execute(
                "INSERT INTO agents (id, name, state, started_at, created_at, updated_at) "
                "VALUES ('bulk-agent', 'bulk-agent', 'unknown', $1, $1, $1) "
                "ON CONFLICT (id) DO NOTHING",
                base,
            )
            session_rows = []
            message_rows: list[tuple[str, int, str, str, str, datetime]] = []
            for index in range(sessions):
                session_id = f"bulk-{index:07d}"
                created = base + timedelta(milliseconds=index)
                session_rows.append(
                    (
                        session_id,
                        "bulk-agent",
                        f"user-{index % users}",
                        "active",
                        "{}",
                        messages_per_session,
                        created,
                        created,
                    )
                )
                message_rows.extend(
                    (
                        session_id,
                        seq,
                        "user" if seq % 2 else "assistant",
                        f"message {seq} of session {index}",
                        "{}",
                        created,
                    )
                    for seq in range(1, messages_per_session + 1)
                )
                if len(session_rows) >= 1_000:
                    await self._copy(connection, session_rows, message_rows)
                    session_rows, message_rows = [], []
            await self._copy(connection, session_rows, message_rows)
            await connection.execute("ANALYZE sessions")
            await connection.execute("ANALYZE messages")

    @staticmethod
    async def _copy(connection: Any, session_rows: list[Any], message_rows: list[Any]) -> None:
        async with connection.transaction():
            await connection.copy_records_to_table(
                "sessions",
                records=session_rows,
                columns=[
                    "session_id",
                    "agent_id",
                    "user_id",
                    "status",
                    "metadata",
                    "message_count",
                    "created_at",
                    "updated_at",
                ],
            )
            await connection.copy_records_to_table(
                "messages",
                records=message_rows,
                columns=["session_id", "seq", "role", "content", "metadata", "timestamp"],
            )
