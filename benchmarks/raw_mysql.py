"""MySQL/MariaDB for the benchmarks: throwaway databases and the raw ``asyncmy`` baseline.

The server comes from ``MOFA_BENCH_MYSQL_URL`` (else ``MOFA_TEST_MYSQL_URL``, else the local
MariaDB as root). The raw side is the floor the store is measured against: an asyncmy pool with
the same connection settings (utf8mb4, UTC session time zone, autocommit, server-side prepared
reads), the store's schema, and the same statements — an append is one multi-statement round
trip ``START TRANSACTION; UPDATE sessions … LAST_INSERT_ID(message_count + 1) …; INSERT INTO
messages …; COMMIT`` — and reads turn each tuple into one plain object with its JSON decoded and its
time made UTC-aware (``messages``, ``sessions``): the comparator, on the loop like the store.
"""

from __future__ import annotations

import functools
import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncmy
import orjson

from benchmarks._measure import RawMessage, RawSession, with_database
from mofa.persistence import schema

NAME = "mysql"

_ADMIN_URL = os.environ.get("MOFA_BENCH_MYSQL_URL") or os.environ.get(
    "MOFA_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"
)
_SESSION_COLUMNS = ", ".join(schema.table_columns(NAME)["sessions"])
_APPEND_ONE = (
    "START TRANSACTION;\n"
    "UPDATE sessions SET message_count = LAST_INSERT_ID(message_count + 1), updated_at = %s "
    "WHERE session_id = %s;\n"
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "VALUES (%s, LAST_INSERT_ID(), %s, %s, '{}', %s);\n"
    "COMMIT"
)
_INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "VALUES (%s, %s, %s, %s, '{}', %s)"
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _connect_kwargs(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "password": parts.password or "",
        "database": parts.path.lstrip("/") or None,
        "charset": "utf8mb4",
        "autocommit": True,
        "init_command": "SET time_zone = '+00:00'",
        "connect_timeout": 5,
        "stmt_cache_size": 64,
    }


_combine = datetime.combine


def _time(value: datetime) -> datetime:
    # combine(date, time, UTC) is several times faster than replace(tzinfo=UTC).
    return _combine(value.date(), value.time(), UTC)


def messages(rows: list[Any]) -> list[RawMessage]:
    """One object per row, its JSON decoded and its time UTC-aware: the comparator's decode."""
    loads = orjson.loads
    return [RawMessage(r[0], r[1], r[2], r[3], loads(r[4]), _time(r[5])) for r in rows]


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
            _time(r[7]),
            _time(r[8]),
            None if r[9] is None else _time(r[9]),
        )
        for r in rows
    ]


async def _admin(sql: str) -> None:
    kwargs = _connect_kwargs(_ADMIN_URL)
    kwargs["database"] = None
    connection = await asyncmy.connect(**kwargs)
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(sql)
    finally:
        connection.close()


async def create_database() -> str:
    """A new, empty database on the server; its URL (same credentials as the admin URL)."""
    name = f"mofa_bench_{secrets.token_hex(4)}"
    await _admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    return with_database(_ADMIN_URL, name)


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    if not name.startswith("mofa_bench_"):  # never drop anything this module did not make
        raise ValueError(f"refusing to drop {name!r}")
    await _admin(f"DROP DATABASE IF EXISTS `{name}`")


@functools.cache
def _many_statement(count: int) -> str:
    rows = ", ".join(
        f"(%s, LAST_INSERT_ID() - {count - 1 - index}, %s, %s, '{{}}', %s)"
        for index in range(count)
    )
    return (
        "START TRANSACTION;\n"
        "UPDATE sessions SET message_count = LAST_INSERT_ID(message_count + %s), "
        "updated_at = %s WHERE session_id = %s;\n"
        f"INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
        f"VALUES {rows};\n"
        "COMMIT"
    )


class Raw:
    """asyncmy with a pool doing the store's durable work with the least possible code."""

    def __init__(self, url: str, pool: Any, owned: bool) -> None:
        self.url = url
        self._pool = pool
        self._owned = owned

    @classmethod
    async def open(cls, url: str | None = None) -> Raw:
        owned = url is None
        if url is None:
            url = await create_database()
        pool = await asyncmy.create_pool(minsize=1, maxsize=10, **_connect_kwargs(url))
        if owned:
            async with pool.acquire() as connection, connection.cursor() as cursor:
                for statement in schema.script_statements("mysql"):
                    await cursor.execute(statement)
        return cls(url, pool, owned)

    async def close(self) -> None:
        self._pool.close()
        await self._pool.wait_closed()
        if self._owned:
            await drop_database(self.url)

    async def _write(self, sql: str, args: Any) -> list[tuple[int, int]]:
        async with self._pool.acquire() as connection:
            cursor = connection.cursor()
            await cursor.execute(sql, args)
            results = [(cursor.rowcount, cursor.lastrowid)]
            while await cursor.nextset():
                results.append((cursor.rowcount, cursor.lastrowid))
            return results

    async def _fetch(self, sql: str, args: Any) -> list[tuple[Any, ...]]:
        async with self._pool.acquire() as connection:
            cursor = connection.cursor()
            await cursor.execute(sql, args)
            return list(await cursor.fetchall())

    async def create_session(self, session_id: str, user_id: str, agent_id: str) -> None:
        now = _now()
        await self._write(
            "START TRANSACTION;\n"
            "INSERT INTO agents (id, name, state, started_at, created_at, updated_at) "
            "VALUES (%s, %s, 'unknown', %s, %s, %s) ON DUPLICATE KEY UPDATE id = id;\n"
            "INSERT INTO sessions (session_id, agent_id, user_id, status, metadata, "
            "message_count, created_at, updated_at) "
            "VALUES (%s, %s, %s, 'active', '{}', 0, %s, %s);\n"
            "COMMIT",
            (agent_id, agent_id, now, now, now, session_id, agent_id, user_id, now, now),
        )

    async def append_one(self, session_id: str, role: str, content: str) -> None:
        now = _now()
        results = await self._write(_APPEND_ONE, (now, session_id, session_id, role, content, now))
        if results[1][0] != 1:
            raise LookupError(session_id)

    async def append_batch(self, session_id: str, rows: list[tuple[str, str]]) -> None:
        now = _now()
        count = len(rows)
        statement = _many_statement(count)
        args: list[Any] = [count, now, session_id]
        for role, content in rows:
            args += (session_id, role, content, now)
        results = await self._write(statement, args)
        if results[1][0] != 1:
            raise LookupError(session_id)

    async def load_all(self, session_id: str) -> list[RawMessage]:
        rows = await self._fetch(
            "SELECT id, seq, role, content, metadata, timestamp FROM messages "
            "WHERE session_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            (session_id, 0, 18446744073709551615),
        )
        return messages(rows)

    async def load_last(self, session_id: str, n: int) -> list[RawMessage]:
        rows = await self._fetch(
            "SELECT id, seq, role, content, metadata, timestamp FROM messages "
            "WHERE session_id = %s ORDER BY seq DESC LIMIT %s",
            (session_id, n),
        )
        rows.reverse()
        return messages(rows)

    async def load_last_owned(
        self, session_id: str, n: int, user_id: str, agent_id: str
    ) -> list[RawMessage]:
        rows = await self._fetch(
            "SELECT id, seq, role, content, metadata, timestamp FROM messages "
            "WHERE session_id = %s AND EXISTS (SELECT 1 FROM sessions s WHERE "
            "s.session_id = %s AND s.tenant_id IS NULL AND s.user_id = %s AND s.agent_id = %s) "
            "ORDER BY seq DESC LIMIT %s",
            (session_id, session_id, user_id, agent_id, n),
        )
        rows.reverse()
        return messages(rows)

    async def list_user_sessions(self, user_id: str, limit: int) -> list[RawSession]:
        rows = await self._fetch(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = %s "
            "ORDER BY created_at DESC, session_id DESC LIMIT %s OFFSET %s",
            (user_id, limit, 0),
        )
        return sessions(rows)

    async def list_recent_sessions(self, limit: int) -> list[RawSession]:
        rows = await self._fetch(
            f"SELECT {_SESSION_COLUMNS} FROM sessions "
            "ORDER BY created_at DESC, session_id DESC LIMIT %s OFFSET %s",
            (limit, 0),
        )
        return sessions(rows)

    async def bulk_load(self, sessions: int, messages_per_session: int, users: int) -> None:
        base = datetime(2026, 1, 1)
        async with self._pool.acquire() as connection:
            cursor = connection.cursor()
            await cursor.execute(
                "INSERT INTO agents (id, name, state, started_at, created_at, updated_at) "
                "VALUES ('bulk-agent', 'bulk-agent', 'unknown', %s, %s, %s) "
                "ON DUPLICATE KEY UPDATE id = id",
                (base, base, base),
            )
            session_rows: list[tuple[str, str, int, datetime, datetime]] = []
            message_rows: list[tuple[str, int, str, str, datetime]] = []
            for index in range(sessions):
                session_id = f"bulk-{index:07d}"
                created = base + timedelta(milliseconds=index)
                session_rows.append(
                    (session_id, f"user-{index % users}", messages_per_session, created, created)
                )
                message_rows.extend(
                    (
                        session_id,
                        seq,
                        "user" if seq % 2 else "assistant",
                        f"message {seq} of session {index}",
                        created,
                    )
                    for seq in range(1, messages_per_session + 1)
                )
                if len(session_rows) >= 5_000 or len(message_rows) >= 20_000:
                    await self._flush(cursor, connection, session_rows, message_rows)
                    session_rows, message_rows = [], []
            await self._flush(cursor, connection, session_rows, message_rows)
            # Fresh statistics, as a server has them for a table that grew over time: right
            # after a bulk load InnoDB still believes the tables are nearly empty, and plans
            # a filesort instead of the (created_at, session_id) index for a while.
            await cursor.execute("ANALYZE TABLE sessions, messages")
            await cursor.fetchall()

    @staticmethod
    async def _flush(
        cursor: Any,
        connection: Any,
        session_rows: list[tuple[str, str, int, datetime, datetime]],
        message_rows: list[tuple[str, int, str, str, datetime]],
    ) -> None:
        await connection.begin()
        if session_rows:
            await cursor.executemany(
                "INSERT INTO sessions (session_id, agent_id, user_id, status, metadata, "
                "message_count, created_at, updated_at) "
                "VALUES (%s, 'bulk-agent', %s, 'active', '{}', %s, %s, %s)",
                session_rows,
            )
        if message_rows:
            await cursor.executemany(_INSERT_MESSAGE, message_rows)
        await connection.commit()
