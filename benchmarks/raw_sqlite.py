"""SQLite for the benchmarks: temporary database files and the raw ``sqlite3`` comparators.

The comparator (:class:`Raw`) is raw ``sqlite3`` in the store's thread model: every call is one
hop to one dedicated worker thread (a queue in, ``call_soon_threadsafe`` back), since an async
store must never block the event loop on disk. It runs the minimal hand-written SQL for the
same data changes (one ``BEGIN IMMEDIATE`` transaction per append that bumps the session
counter and inserts the row with the next seq) and, on reads, turns each row into one object
with its JSON decoded and its time parsed, on the worker thread, in the same hop.
:class:`Blocking` does exactly the same on the event loop's own thread: the reference column
(what the hop costs). Both: WAL, ``synchronous=FULL``, the store's own schema.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson

from benchmarks._measure import RawMessage, RawSession
from mofa.persistence import schema

NAME = "sqlite"

_T = TypeVar("_T")
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_SESSION_COLUMNS = ", ".join(schema.table_columns(NAME)["sessions"])


def _now() -> str:
    return datetime.now(UTC).strftime(_TIME_FORMAT)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text + "+00:00")


def messages(rows: list[Any]) -> list[RawMessage]:
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


async def create_database() -> str:
    """A fresh file in a new temporary directory (``$MOFA_BENCH_DIR`` or the system's)."""
    directory = tempfile.mkdtemp(prefix="mofa-bench-", dir=os.environ.get("MOFA_BENCH_DIR"))
    return f"sqlite://{Path(directory) / 'bench.db'}"


async def drop_database(url: str) -> None:
    shutil.rmtree(Path(url.removeprefix("sqlite://")).parent, ignore_errors=True)


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


class _Thread:
    """One worker thread: a job queue in, ``call_soon_threadsafe`` back (one hop a call)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            function, args, future, loop = job
            try:
                value, error = function(*args), None
            except BaseException as exc:
                value, error = None, exc
            loop.call_soon_threadsafe(_resolve, future, value, error)

    def call(self, function: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((function, args, future, loop))
        return future

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join()


class _Sync:
    """The blocking bodies: ``sqlite3`` doing the store's durable work with the least code."""

    def __init__(self, url: str, connection: sqlite3.Connection, owned: bool) -> None:
        self.url = url
        self._connection = connection
        self._owned = owned

    @classmethod
    def open(cls, url: str | None = None) -> _Sync:
        owned = url is None
        if url is None:
            directory = tempfile.mkdtemp(prefix="mofa-bench-", dir=os.environ.get("MOFA_BENCH_DIR"))
            url = f"sqlite://{Path(directory) / 'bench.db'}"
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

    def close(self) -> None:
        self._connection.close()
        if self._owned:
            shutil.rmtree(Path(self.url.removeprefix("sqlite://")).parent, ignore_errors=True)

    def create_session(self, session_id: str, user_id: str, agent_id: str) -> None:
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

    def append_one(self, session_id: str, role: str, content: str) -> None:
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

    def append_batch(self, session_id: str, rows: list[tuple[str, str]]) -> None:
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

    def load_all(self, session_id: str) -> list[RawMessage]:
        rows = self._connection.execute(
            "SELECT id, seq, role, content, metadata, timestamp FROM messages "
            "WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall()
        return messages(rows)

    def load_last(self, session_id: str, n: int) -> list[RawMessage]:
        rows = self._connection.execute(
            "SELECT id, seq, role, content, metadata, timestamp FROM messages "
            "WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
            (session_id, n),
        ).fetchall()
        rows.reverse()
        return messages(rows)

    def load_last_owned(
        self, session_id: str, n: int, user_id: str, agent_id: str
    ) -> list[RawMessage]:
        rows = self._connection.execute(
            "SELECT id, seq, role, content, metadata, timestamp FROM messages "
            "WHERE session_id = ? AND EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = ? "
            "AND s.tenant_id IS NULL AND s.user_id = ? AND s.agent_id = ?) "
            "ORDER BY seq DESC LIMIT ?",
            (session_id, session_id, user_id, agent_id, n),
        ).fetchall()
        rows.reverse()
        return messages(rows)

    def list_user_sessions(self, user_id: str, limit: int) -> list[RawSession]:
        return sessions(
            self._connection.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = ? "
                "ORDER BY created_at DESC, session_id DESC LIMIT ?",
                (user_id, limit),
            ).fetchall()
        )

    def list_recent_sessions(self, limit: int) -> list[RawSession]:
        return sessions(
            self._connection.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions "
                "ORDER BY created_at DESC, session_id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        )

    def bulk_load(self, sessions: int, messages_per_session: int, users: int) -> None:
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


class Blocking:
    """The reference: the comparator's work on the event loop's own thread (blocking it)."""

    def __init__(self, sync: _Sync) -> None:
        self._sync = sync

    @classmethod
    async def open(cls, url: str | None = None) -> Blocking:
        return cls(_Sync.open(url))

    async def close(self) -> None:
        self._sync.close()

    async def create_session(self, session_id: str, user_id: str, agent_id: str) -> None:
        self._sync.create_session(session_id, user_id, agent_id)

    async def append_one(self, session_id: str, role: str, content: str) -> None:
        self._sync.append_one(session_id, role, content)

    async def append_batch(self, session_id: str, rows: list[tuple[str, str]]) -> None:
        self._sync.append_batch(session_id, rows)

    async def load_all(self, session_id: str) -> list[RawMessage]:
        return self._sync.load_all(session_id)

    async def load_last(self, session_id: str, n: int) -> list[RawMessage]:
        return self._sync.load_last(session_id, n)

    async def load_last_owned(
        self, session_id: str, n: int, user_id: str, agent_id: str
    ) -> list[RawMessage]:
        return self._sync.load_last_owned(session_id, n, user_id, agent_id)

    async def list_user_sessions(self, user_id: str, limit: int) -> list[RawSession]:
        return self._sync.list_user_sessions(user_id, limit)

    async def list_recent_sessions(self, limit: int) -> list[RawSession]:
        return self._sync.list_recent_sessions(limit)

    async def bulk_load(self, sessions: int, messages_per_session: int, users: int) -> None:
        self._sync.bulk_load(sessions, messages_per_session, users)


class Raw:
    """The comparator: the same work, each call one hop to one worker thread that owns the
    connection (the store's thread model)."""

    def __init__(self, sync: _Sync, thread: _Thread) -> None:
        self._sync = sync
        self._thread = thread

    @classmethod
    async def open(cls, url: str | None = None) -> Raw:
        thread = _Thread()
        return cls(await thread.call(_Sync.open, url), thread)

    async def close(self) -> None:
        await self._thread.call(self._sync.close)
        self._thread.stop()

    async def create_session(self, session_id: str, user_id: str, agent_id: str) -> None:
        await self._thread.call(self._sync.create_session, session_id, user_id, agent_id)

    async def append_one(self, session_id: str, role: str, content: str) -> None:
        await self._thread.call(self._sync.append_one, session_id, role, content)

    async def append_batch(self, session_id: str, rows: list[tuple[str, str]]) -> None:
        await self._thread.call(self._sync.append_batch, session_id, rows)

    async def load_all(self, session_id: str) -> list[RawMessage]:
        return await self._thread.call(self._sync.load_all, session_id)

    async def load_last(self, session_id: str, n: int) -> list[RawMessage]:
        return await self._thread.call(self._sync.load_last, session_id, n)

    async def load_last_owned(
        self, session_id: str, n: int, user_id: str, agent_id: str
    ) -> list[RawMessage]:
        return await self._thread.call(self._sync.load_last_owned, session_id, n, user_id, agent_id)

    async def list_user_sessions(self, user_id: str, limit: int) -> list[RawSession]:
        return await self._thread.call(self._sync.list_user_sessions, user_id, limit)

    async def list_recent_sessions(self, limit: int) -> list[RawSession]:
        return await self._thread.call(self._sync.list_recent_sessions, limit)

    async def bulk_load(self, sessions: int, messages_per_session: int, users: int) -> None:
        await self._thread.call(self._sync.bulk_load, sessions, messages_per_session, users)
