"""SQLite for the benchmarks: temporary database files and the raw ``sqlite3`` baseline.

The raw side is the floor the store is measured against: blocking ``sqlite3`` calls straight on
the event loop's thread, WAL, ``synchronous=FULL``, the store's own schema, and the minimal
hand-written SQL for the same data changes (one ``BEGIN IMMEDIATE`` transaction per append that
bumps the session counter and inserts the row with the next seq).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mofa.persistence import schema

NAME = "sqlite"

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_SESSION_COLUMNS = ", ".join(schema.table_columns(NAME)["sessions"])


def _now() -> str:
    return datetime.now(UTC).strftime(_TIME_FORMAT)


async def create_database() -> str:
    """A fresh file in a new temporary directory (``$MOFA_BENCH_DIR`` or the system's)."""
    directory = tempfile.mkdtemp(prefix="mofa-bench-", dir=os.environ.get("MOFA_BENCH_DIR"))
    return f"sqlite://{Path(directory) / 'bench.db'}"


async def drop_database(url: str) -> None:
    shutil.rmtree(Path(url.removeprefix("sqlite://")).parent, ignore_errors=True)


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


class Raw:
    """Blocking ``sqlite3`` doing the store's durable work with the least possible code."""

    def __init__(self, url: str, connection: sqlite3.Connection, owned: bool) -> None:
        self.url = url
        self._connection = connection
        self._owned = owned

    @classmethod
    async def open(cls, url: str | None = None) -> Raw:
        owned = url is None
        if url is None:
            url = await create_database()
        connection = _connect(url.removeprefix("sqlite://"))
        connection.execute("BEGIN IMMEDIATE")
        # A database the store made already has the schema (SQLite's ADD COLUMN cannot run
        # twice); a fresh one gets the same script.
        made = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE name = ?", (schema.MIGRATIONS_TABLE,)
        ).fetchone()
        if made is None:
            for statement in schema.script_statements("sqlite"):
                connection.execute(statement)
        connection.execute("COMMIT")
        return cls(url, connection, owned)

    async def close(self) -> None:
        self._connection.close()
        if self._owned:
            await drop_database(self.url)

    async def create_session(self, session_id: str, user_id: str, agent_id: str) -> None:
        now = _now()
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT OR IGNORE INTO agents (id, name, state, started_at, created_at, updated_at) "
            "VALUES (?, ?, 'unknown', ?, ?, ?)",
            (agent_id, agent_id, now, now, now),
        )
        connection.execute(
            "INSERT INTO sessions (session_id, agent_id, user_id, status, metadata, "
            "message_count, created_at, updated_at) VALUES (?, ?, ?, 'active', '{}', 0, ?, ?)",
            (session_id, agent_id, user_id, now, now),
        )
        connection.execute("COMMIT")

    async def append_one(self, session_id: str, role: str, content: str) -> None:
        now = _now()
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        seq = connection.execute(
            "UPDATE sessions SET message_count = message_count + 1, updated_at = ? "
            "WHERE session_id = ? RETURNING message_count",
            (now, session_id),
        ).fetchall()[0][0]
        connection.execute(
            "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
            "VALUES (?, ?, ?, ?, '{}', ?)",
            (session_id, seq, role, content, now),
        )
        connection.execute("COMMIT")

    async def append_batch(self, session_id: str, rows: list[tuple[str, str]]) -> None:
        now = _now()
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        last = connection.execute(
            "UPDATE sessions SET message_count = message_count + ?, updated_at = ? "
            "WHERE session_id = ? RETURNING message_count",
            (len(rows), now, session_id),
        ).fetchall()[0][0]
        first = last - len(rows) + 1
        self._insert_messages(
            [(session_id, first + n, role, content, now) for n, (role, content) in enumerate(rows)]
        )
        connection.execute("COMMIT")

    async def load_all(self, session_id: str) -> list[tuple[Any, ...]]:
        return self._connection.execute(
            "SELECT id, seq, role, content, metadata, timestamp FROM messages "
            "WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall()

    async def load_last(self, session_id: str, n: int) -> list[tuple[Any, ...]]:
        rows = self._connection.execute(
            "SELECT id, seq, role, content, metadata, timestamp FROM messages "
            "WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
            (session_id, n),
        ).fetchall()
        rows.reverse()
        return rows

    async def list_user_sessions(self, user_id: str, limit: int) -> list[tuple[Any, ...]]:
        return self._connection.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = ? "
            "ORDER BY created_at DESC, session_id DESC LIMIT ?",
            (user_id, limit),
        ).fetchall()

    async def list_recent_sessions(self, limit: int) -> list[tuple[Any, ...]]:
        return self._connection.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions "
            "ORDER BY created_at DESC, session_id DESC LIMIT ?",
            (limit,),
        ).fetchall()

    async def bulk_load(self, sessions: int, messages_per_session: int, users: int) -> None:
        base = datetime(2026, 1, 1, tzinfo=UTC)
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT OR IGNORE INTO agents (id, name, state, started_at, created_at, updated_at) "
            "VALUES ('bulk-agent', 'bulk-agent', 'unknown', ?, ?, ?)",
            (base.strftime(_TIME_FORMAT),) * 3,
        )
        chunk: list[tuple[str, int, str, str, str]] = []
        for index in range(sessions):
            session_id = f"bulk-{index:07d}"
            created = (base + timedelta(milliseconds=index)).strftime(_TIME_FORMAT)
            connection.execute(
                "INSERT INTO sessions (session_id, agent_id, user_id, status, metadata, "
                "message_count, created_at, updated_at) "
                "VALUES (?, 'bulk-agent', ?, 'active', '{}', ?, ?, ?)",
                (session_id, f"user-{index % users}", messages_per_session, created, created),
            )
            chunk.extend(
                (
                    session_id,
                    seq,
                    "user" if seq % 2 else "assistant",
                    f"message {seq} of session {index}",
                    created,
                )
                for seq in range(1, messages_per_session + 1)
            )
            if len(chunk) >= 50_000:
                self._insert_messages(chunk)
                chunk = []
        self._insert_messages(chunk)
        connection.execute("COMMIT")

    def _insert_messages(self, rows: list[tuple[str, int, str, str, str]]) -> None:
        self._connection.executemany(
            "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
            "VALUES (?, ?, ?, ?, '{}', ?)",
            rows,
        )
