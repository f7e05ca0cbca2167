"""The SQLite store: the standard library's ``sqlite3`` on a dedicated worker thread.

Usage::

    from mofa.persistence import SqliteStore

    async with await SqliteStore.connect("sqlite://./mofa.db") as store:
        session = await store.create_session(agent_id="my-agent", user_id="u1")
        await store.append_message(session.session_id, "user", "Hello")
        history = await store.list_recent_messages(session.session_id, limit=20)

URLs: ``sqlite://./relative.db``, ``sqlite://name.db``, ``sqlite:///absolute.db``,
``sqlite://~/in/home.db`` and ``sqlite::memory:``. A missing file (and its missing parent
directories) is created, readable by its owner only; the schema is created or upgraded on
connect.

How it works: one thread owns the one connection. Every call ships a whole transaction (all
its statements) to that thread in one hop and the event loop waits on a future, so it never
blocks on disk. The database runs in WAL mode with ``synchronous=FULL`` (an acknowledged write
survives a crash or a power cut) and foreign keys on. Writes start with ``BEGIN IMMEDIATE``,
so several processes on one file take turns instead of failing halfway through; when the file
stays locked past ``busy_timeout`` the store backs off and retries (nothing has been written
yet) until ``lock_timeout``. Writes that queue up behind each other (concurrent tasks) share
one commit, each in its own savepoint, so they cost one fsync and still fail alone. A call is
acknowledged only after its commit; cancelling a call stops the wait, not a transaction that
was already handed to the thread. A store opened with ``create_schema=False`` leaves the
file's journal mode as it is (a rollback journal stays one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Self, TypeVar

from mofa.persistence import schema
from mofa.persistence._base import BaseStore, EncodedMessage
from mofa.persistence._codec import (
    ROLES,
    damaged_record,
    decode_json,
    format_time,
    parse_time,
)
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._url import DatabaseURL, parse_url
from mofa.persistence.backends._sql import (
    list_sessions_statements,
    owner_condition,
    owner_params,
    session_filters,
)
from mofa.persistence.backends._toolkit import check_flag, check_option, reject_unknown_options
from mofa.persistence.errors import (
    AgentExistsError,
    InvalidURLError,
    PermissionDeniedError,
    PersistenceError,
    QueryError,
    SchemaError,
    SessionExistsError,
    SessionNotFoundError,
    StoreClosedError,
    StoreConnectionError,
)

__all__ = ["SqliteStore"]

_T = TypeVar("_T")

_MEMORY: Final = ":memory:"
#: RETURNING arrived in SQLite 3.35; older libraries read the counter back with a SELECT.
_HAS_RETURNING: Final = sqlite3.sqlite_version_info >= (3, 35, 0)

# ------------------------------------------------------------------ statements

#: Placeholders of an owner scope (see _sql.owner_condition): SQLite's NULL-safe equality is
#: IS, so a scope's None matches a NULL column and nothing else. Its parameters are
#: owner_params(owner).
_OWNER = owner_condition("IS", lambda _: "?", 1)
_OWNER_OF_S = owner_condition("IS", lambda _: "?", 1, "s")  # the same, of `sessions AS s`
#: The session is inside the scope: added to a read of messages or states, so a foreign
#: session reads as empty in the same statement (the subquery is not correlated: SQLite
#: evaluates it once, by the primary key). Parameters: session_id, *owner_params(owner).
_IN_SCOPE = (
    "EXISTS (SELECT 1 FROM sessions "  # noqa: S608 - constant fragments
    f"WHERE sessions.session_id = ? AND {_OWNER})"
)

_AGENT_COLUMNS = (
    "id, name, state, started_at, provider, model, description, created_at, updated_at, tenant_id"
)
#: Without an owner a conflict updates every field but tenant_id: the stored tenant stays.
_UPSERT_AGENT = (
    "INSERT INTO agents (id, name, state, started_at, provider, model, description, "
    "created_at, updated_at, tenant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, state = excluded.state, "
    "started_at = excluded.started_at, provider = excluded.provider, model = excluded.model, "
    "description = excluded.description, updated_at = excluded.updated_at"
)
#: With an owner (whose tenant the inserted row carries) a conflict updates only an agent of
#: the same tenant; another tenant's row is left as it is and the statement changes no row,
#: which the same transaction turns into AgentExistsError.
_UPSERT_OWNED_AGENT = _UPSERT_AGENT + " WHERE agents.tenant_id IS excluded.tenant_id"
_SELECT_AGENT = f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = ?"  # noqa: S608
_SELECT_AGENTS = (
    f"SELECT {_AGENT_COLUMNS} FROM agents "  # noqa: S608
    "ORDER BY updated_at DESC, id DESC LIMIT ?"
)
#: The placeholder agent a session names (see _store.placeholder_agent): the session's tenant.
_ENSURE_AGENT = (
    "INSERT OR IGNORE INTO agents (id, name, state, started_at, created_at, updated_at, "
    "tenant_id) VALUES (?, ?, 'unknown', ?, ?, ?, ?)"
)
_INSERT_SESSION = (
    "INSERT INTO sessions (session_id, agent_id, user_id, tenant_id, status, metadata, "
    "message_count, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"
)
_SESSION_COLUMNS = (
    "session_id, agent_id, user_id, tenant_id, status, metadata, message_count, "
    "created_at, updated_at, expires_at"
)
_SELECT_SESSION = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?"  # noqa: S608
_SELECT_OWNED_SESSION = f"{_SELECT_SESSION} AND {_OWNER}"
_UPDATE_SESSION = (
    "UPDATE sessions SET status = coalesce(?, status), metadata = coalesce(?, metadata), "
    "expires_at = CASE WHEN ? THEN ? ELSE expires_at END, updated_at = ? WHERE session_id = ?"
)
_UPDATE_OWNED_SESSION = f"{_UPDATE_SESSION} AND {_OWNER}"
_DELETE_SESSION = "DELETE FROM sessions WHERE session_id = ?"
_DELETE_OWNED_SESSION = f"{_DELETE_SESSION} AND {_OWNER}"
_BUMP_COUNT = (
    "UPDATE sessions SET message_count = message_count + ?, updated_at = ? WHERE session_id = ?"
)
# The owner check is in the UPDATE that takes the session's next seqs, inside the write
# transaction that then inserts the messages: a foreign session gets nothing.
_BUMP_OWNED_COUNT = f"{_BUMP_COUNT} AND {_OWNER}"
_BUMP_COUNT_RETURNING = _BUMP_COUNT + " RETURNING message_count"
_BUMP_OWNED_COUNT_RETURNING = _BUMP_OWNED_COUNT + " RETURNING message_count"
_SELECT_COUNT = "SELECT message_count FROM sessions WHERE session_id = ?"
_INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "
    "WHERE session_id = ? AND seq > ? "
    "ORDER BY seq LIMIT ?"
)
_SELECT_OWNED_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "  # noqa: S608
    f"WHERE session_id = ? AND seq > ? AND {_IN_SCOPE} "
    "ORDER BY seq LIMIT ?"
)
_SELECT_RECENT_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "
    "WHERE session_id = ? ORDER BY seq DESC LIMIT ?"
)
_SELECT_OWNED_RECENT_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "  # noqa: S608
    f"WHERE session_id = ? AND {_IN_SCOPE} ORDER BY seq DESC LIMIT ?"
)
_INSERT_STATE = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "
    "SELECT ?, coalesce(max(version), 0) + 1, ?, ? FROM agent_state WHERE session_id = ?"
)
_INSERT_STATE_RETURNING = _INSERT_STATE + " RETURNING version"
#: With an owner the row comes from the session's own row inside the scope: a missing or
#: foreign session inserts nothing (an aggregate alone would still give one row).
_INSERT_OWNED_STATE = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "  # noqa: S608
    "SELECT s.session_id, (SELECT coalesce(max(version), 0) + 1 FROM agent_state "
    "WHERE agent_state.session_id = s.session_id), ?, ? "
    f"FROM sessions AS s WHERE s.session_id = ? AND {_OWNER_OF_S}"
)
_INSERT_OWNED_STATE_RETURNING = _INSERT_OWNED_STATE + " RETURNING version"
_SELECT_STATE_VERSION = "SELECT max(version) FROM agent_state WHERE session_id = ?"
_SELECT_LATEST_STATE = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = ? "
    "ORDER BY version DESC LIMIT 1"
)
_SELECT_OWNED_LATEST_STATE = (
    "SELECT version, state, created_at FROM agent_state "  # noqa: S608
    f"WHERE session_id = ? AND {_IN_SCOPE} ORDER BY version DESC LIMIT 1"
)
_SELECT_STATE = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = ? AND version = ?"
)
_SELECT_OWNED_STATE = f"{_SELECT_STATE} AND {_IN_SCOPE}"
_SELECT_STATES = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = ? "
    "ORDER BY version DESC LIMIT ?"
)
_SELECT_OWNED_STATES = (
    "SELECT version, state, created_at FROM agent_state "  # noqa: S608
    f"WHERE session_id = ? AND {_IN_SCOPE} ORDER BY version DESC LIMIT ?"
)
_MIGRATIONS_TABLE_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
_SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM mofa_schema_migrations"
#: mofa's tables that exist already (before the first migration), with their columns.
_EXISTING_COLUMNS = (
    "SELECT m.name, c.name, c.type FROM sqlite_master AS m, pragma_table_info(m.name) AS c "
    "WHERE m.type IN ('table', 'view') AND m.name IN ({marks})"
)
#: Schema objects named like mofa's indexes, with the table of each (an index's name belongs
#: to the whole file).
_EXISTING_INDEXES = (
    "SELECT name, CASE type WHEN 'index' THEN tbl_name ELSE '' END FROM sqlite_master "
    "WHERE name IN ({marks})"
)


_LIST_SESSIONS = list_sessions_statements(_SESSION_COLUMNS, lambda _: "?")

# ------------------------------------------------------------------ rows -> entities


def _session(row: tuple[Any, ...]) -> Session:
    # Columns in the dataclass's field order; positional (see _message).
    try:
        return Session(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            decode_json(row[5]),
            row[6],
            parse_time(row[7]),
            parse_time(row[8]),
            None if row[9] is None else parse_time(row[9]),
        )
    except (ValueError, TypeError) as exc:  # a row edited by hand (or by an older version)
        fields = {"metadata": row[5], "created_at": row[7], "updated_at": row[8]}
        raise damaged_record(
            f"session {row[0]!r}", {**fields, "expires_at": row[9]}, exc, session_id=row[0]
        ) from exc


def _message(session_id: str, row: tuple[Any, ...]) -> Message:
    # Positional: this runs once per loaded message, and keywords cost 40% more here.
    try:
        return Message(
            session_id,
            row[1],
            ROLES[row[2]],
            row[3],
            decode_json(row[4]),
            parse_time(row[5]),
            row[0],
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise damaged_record(
            f"message {row[1]} of session {session_id!r}",
            {"role": row[2], "metadata": row[4], "timestamp": row[5]},
            exc,
            session_id=session_id,
        ) from exc


def _agent(row: tuple[Any, ...]) -> Agent:
    try:
        return Agent(
            id=row[0],
            name=row[1],
            state=row[2],
            started_at=parse_time(row[3]),
            provider=row[4],
            model=row[5],
            description=row[6],
            created_at=parse_time(row[7]),
            updated_at=parse_time(row[8]),
            tenant_id=row[9],
        )
    except (ValueError, TypeError) as exc:
        fields = {"started_at": row[3], "created_at": row[7], "updated_at": row[8]}
        raise damaged_record(f"agent {row[0]!r}", fields, exc) from exc


def _state(session_id: str, row: tuple[Any, ...]) -> AgentState:
    try:
        return AgentState(session_id, row[0], decode_json(row[1]), parse_time(row[2]))
    except (ValueError, TypeError) as exc:
        raise damaged_record(
            f"state version {row[0]} of session {session_id!r}",
            {"state": row[1], "created_at": row[2]},
            exc,
            session_id=session_id,
        ) from exc


# ------------------------------------------------------------------ errors

# Primary result codes (https://sqlite.org/rescode.html).
_SQLITE_PERM = 3
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_CONSTRAINT = 19
_SQLITE_AUTH = 23
_SQLITE_NOTADB = 26


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _is_busy(exc: sqlite3.Error) -> bool:
    if _primary_code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return True
    return "database is locked" in str(exc) or "database table is locked" in str(exc)


def _translate(
    exc: sqlite3.Error | OSError, path: str, session_id: str | None = None
) -> PersistenceError:
    """The one place where a ``sqlite3`` (or file system) error becomes an error of the tree.

    ``session_id`` names the session the failed call addressed, when there is one.
    """
    text = str(exc)
    code = _primary_code(exc) if isinstance(exc, sqlite3.Error) else None
    where = f"the SQLite database {path!r}"
    subject = f"The SQLite database {path!r}"
    if isinstance(exc, OSError):
        return StoreConnectionError(
            f"Cannot create {where} ({exc.strerror or exc}); check that its directory "
            "exists or can be created and is writable."
        )
    if code == _SQLITE_CANTOPEN or "unable to open database file" in text:
        return StoreConnectionError(
            f"Cannot open {where} ({text}); check that the path is a file (not a directory) "
            "in a directory you can write to."
        )
    if code in (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_AUTH) or "readonly" in text:
        return PermissionDeniedError(
            f"Cannot write to {where} ({text}); check the permissions of the file and of "
            "its directory (SQLite also writes the -wal and -shm files next to it)."
        )
    if _is_busy(exc):  # exc is a sqlite3.Error from here on
        return StoreConnectionError(
            f"{subject} stayed locked by another connection for too "
            "long; retry, or find the process holding a long transaction on it."
        )
    if code in (_SQLITE_NOTADB, _SQLITE_CORRUPT):
        return StoreConnectionError(
            f"{subject} is not a usable SQLite database ({text}); "
            "point the URL at a SQLite file or a new path."
        )
    if code == _SQLITE_FULL:
        return QueryError(f"The disk holding {where} is full; nothing was written.")
    if code == _SQLITE_IOERR:
        return StoreConnectionError(f"Reading or writing {where} failed ({text}).")
    if code == _SQLITE_CONSTRAINT or isinstance(exc, sqlite3.IntegrityError):
        if session_id is not None and "sessions.session_id" in text:
            return SessionExistsError(session_id)
        if session_id is not None and "FOREIGN KEY" in text:
            return SessionNotFoundError(session_id)
        return QueryError(f"{subject} refused the write ({text}).")
    return QueryError(f"{subject} reported an error: {text}.")


# ------------------------------------------------------------------ the worker thread


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    # Runs on the event loop. A caller that was cancelled no longer wants the answer.
    if future.done():
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


_CALL: Final = 0  # run function(*args) (open, close)
_READ: Final = 1  # run function(connection, *args) outside a write transaction
_WRITE: Final = 2  # run function(connection, *args) inside BEGIN IMMEDIATE … COMMIT
_Job = tuple[
    int,
    Callable[..., Any],
    tuple[Any, ...],
    "asyncio.Future[Any]",
    asyncio.AbstractEventLoop,
    str | None,
]
#: At most this many queued writes share one commit (see _Worker._run_writes).
_MAX_GROUP: Final = 128
_NOTHING: Final = object()


class _Worker:
    """One thread that owns the connection and runs whole transactions, one at a time.

    A call costs one hop: the job goes on a queue, the thread runs it, and
    ``loop.call_soon_threadsafe`` resolves the caller's future. Writes that queue up while
    the thread is busy (concurrent tasks) are committed together: each runs inside its own
    savepoint, so it succeeds or fails on its own, and one fsync makes them all durable
    before any of them is acknowledged.
    """

    def __init__(self, path: str, busy_timeout: float, lock_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.lock_timeout = lock_timeout
        self.connection: sqlite3.Connection | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name=f"mofa-sqlite:{path}", daemon=True)
        self._thread.start()

    def _submit(
        self,
        kind: int,
        function: Callable[..., _T],
        args: tuple[Any, ...],
        session_id: str | None,
    ) -> asyncio.Future[_T]:
        if self._stopped:
            raise StoreClosedError("The SQLite store was used after close().")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((kind, function, args, future, loop, session_id))
        return future

    def call(self, function: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Run ``function(*args)`` on the thread."""
        return self._submit(_CALL, function, args, None)

    def read(self, function: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Run ``function(connection, *args)`` on the thread (reads need no transaction:
        each SELECT sees one consistent snapshot)."""
        return self._submit(_READ, function, args, None)

    def write(
        self, function: Callable[..., _T], *args: Any, session_id: str | None = None
    ) -> asyncio.Future[_T]:
        """Run ``function(connection, *args)`` in a write transaction; resolve once committed.

        ``session_id`` names the session in translated errors (exists / not found).
        """
        return self._submit(_WRITE, function, args, session_id)

    async def stop(self) -> None:
        """Finish every queued job, close the connection, end the thread."""
        if self._stopped:
            return
        closing = self.call(self._close_connection)
        self._stopped = True
        self._jobs.put(None)
        try:
            await closing
        finally:
            # The thread exits right after the sentinel; this join does not wait on disk.
            self._thread.join(timeout=5)

    def _close_connection(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.close()

    def _serve(self) -> None:
        jobs = self._jobs
        pending: Any = _NOTHING
        while True:
            job = jobs.get() if pending is _NOTHING else pending
            pending = _NOTHING
            if job is None:
                return
            kind = job[0]
            if kind == _WRITE:
                group = [job]
                while len(group) < _MAX_GROUP:
                    try:
                        following = jobs.get_nowait()
                    except queue.Empty:
                        break
                    if following is None or following[0] != _WRITE:
                        pending = following  # keep the queue's order
                        break
                    group.append(following)
                if len(group) == 1:
                    self._run_one(job)
                else:
                    self._run_writes(group)
            else:
                self._run_one(job)

    def _failure(self, exc: BaseException, session_id: str | None) -> BaseException:
        if isinstance(exc, (sqlite3.Error, OSError)):
            error = _translate(exc, self.path, session_id)
            error.__cause__ = exc  # as `raise ... from exc` would
            return error
        return exc  # our own errors (and bugs) reach the caller as they are

    @staticmethod
    def _reply(job: _Job, value: Any, error: BaseException | None) -> None:
        # A closed loop (RuntimeError) means nobody is waiting for the answer.
        with contextlib.suppress(RuntimeError):
            job[4].call_soon_threadsafe(_resolve, job[3], value, error)

    def _run_one(self, job: _Job) -> None:
        kind, function, args, _future, _loop, session_id = job
        value: Any = None
        error: BaseException | None = None
        try:
            if kind == _WRITE:
                value = self.transaction(function, *args)
            elif kind == _READ:
                value = function(self.connection, *args)
            else:
                value = function(*args)
        except BaseException as exc:  # handed to the caller, never swallowed
            error = self._failure(exc, session_id)
        self._reply(job, value, error)

    def _run_writes(self, group: list[_Job]) -> None:
        """Several queued writes in one transaction: one savepoint each, one commit."""
        connection = self.connection
        assert connection is not None
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            self._retry_busy(lambda: connection.execute("BEGIN IMMEDIATE"))
            for _kind, function, args, _future, _loop, session_id in group:
                connection.execute("SAVEPOINT mofa_call")
                try:
                    value = function(connection, *args)
                except BaseException as exc:
                    if not connection.in_transaction:
                        raise  # SQLite rolled the whole transaction back: all of it failed
                    connection.execute("ROLLBACK TO mofa_call")
                    connection.execute("RELEASE mofa_call")
                    outcomes.append((None, self._failure(exc, session_id)))
                else:
                    connection.execute("RELEASE mofa_call")
                    outcomes.append((value, None))
            connection.execute("COMMIT")
        except BaseException as exc:
            # Nothing of the group was committed: every caller hears that its write failed.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            for job in group:
                self._reply(job, None, self._failure(exc, job[5]))
            return
        for job, (value, error) in zip(group, outcomes, strict=True):
            self._reply(job, value, error)

    # ---------------------------------------------------------- transactions

    def open(self, create_schema: bool = True) -> tuple[int, ...]:
        """Open the connection, set the pragmas, create or upgrade the schema (or, with
        ``create_schema`` False, refuse a file without the current schema, changing nothing)."""
        if self.path != _MEMORY and create_schema:
            _create_file(self.path)
        if self.path != _MEMORY and not create_schema and not os.path.isfile(self.path):
            raise SchemaError(f"There is no SQLite database at {self.path}; check the path.")
        connection = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,  # we issue BEGIN / COMMIT ourselves
            check_same_thread=False,  # created here, used only here, closed here
            cached_statements=256,
        )
        try:
            self.connection = connection
            where = _place(self.path)
            # Versions only go up, so a current schema needs no write lock: connecting then
            # does not wait for another process's long transaction.
            current = self._retry_busy(lambda: _schema_version(connection))
            if not create_schema:
                schema.check_ready("sqlite", current, where)
            pending = schema.check_version("sqlite", current, where)
            # WAL mode is written into the file's header, so a store opened to change nothing
            # (create_schema=False: the CLI's list, show and export) keeps the journal mode
            # the file has; its deletes are as durable in a rollback journal.
            if create_schema:
                self._retry_busy(lambda: connection.execute("PRAGMA journal_mode = WAL").fetchall())
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("PRAGMA foreign_keys = ON")
            if not pending:
                return ()
            return self.transaction(_migrate, self.path)
        except BaseException:
            self.connection = None
            connection.close()
            raise

    def _retry_busy(self, action: Callable[[], _T]) -> _T:
        """Run ``action``; while the file stays locked past the busy timeout, back off and
        retry until ``lock_timeout``. Only for steps that have changed nothing yet."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def transaction(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run ``function(connection, *args)`` in one ``BEGIN IMMEDIATE`` transaction."""
        connection = self.connection
        assert connection is not None
        self._retry_busy(lambda: connection.execute("BEGIN IMMEDIATE"))
        try:
            result = function(connection, *args)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return result


def _absolute(path: str) -> str:
    """``~`` expanded, relative to the current directory (string work, no disk access)."""
    return os.path.abspath(os.path.expanduser(path))


def _create_file(path: str) -> None:
    """Create the database file (and its directories) readable by the owner only."""
    target = Path(path)
    if target.exists():
        return
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # O_CREAT without O_EXCL: two processes creating it at once both succeed.
    descriptor = os.open(target, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(descriptor)


def _schema_version(connection: sqlite3.Connection) -> int:
    """The database's schema version (0: no schema yet)."""
    exists = connection.execute(_MIGRATIONS_TABLE_EXISTS, (schema.MIGRATIONS_TABLE,)).fetchone()
    return int(connection.execute(_SCHEMA_VERSION).fetchone()[0]) if exists else 0


def _place(path: str) -> str:
    """The database as schema errors name it."""
    return f"SQLite database {path!r}"


def _migrate(connection: sqlite3.Connection, path: str) -> tuple[int, ...]:
    """Bring the schema to the latest version (inside the caller's BEGIN IMMEDIATE, so of
    several processes connecting at once one upgrades and the others then see it done)."""
    current = _schema_version(connection)
    where = _place(path)
    applied = schema.check_version("sqlite", current, where)
    if current == 0:
        tables = schema.table_names("sqlite")
        indexes = list(schema.index_tables("sqlite"))
        schema.check_existing_tables(
            "sqlite",
            connection.execute(
                _EXISTING_COLUMNS.format(marks=", ".join("?" * len(tables))), tables
            ).fetchall(),
            where,
            connection.execute(
                _EXISTING_INDEXES.format(marks=", ".join("?" * len(indexes))), indexes
            ).fetchall(),
        )
    # One statement at a time: executescript() would commit and break the transaction.
    for statement in schema.pending_statements("sqlite", current):
        connection.execute(statement)
    return applied


# ------------------------------------------------------------------ transaction bodies
# Each runs on the worker thread, inside write() or read().


def _upsert_agent_tx(connection: sqlite3.Connection, agent: Agent, owner: Owner | None) -> Agent:
    # With an owner, agent.tenant_id is the owner's: the insert records it and the conflict
    # clause compares the stored one with it (excluded.tenant_id).
    cursor = connection.execute(
        _UPSERT_AGENT if owner is None else _UPSERT_OWNED_AGENT,
        (
            agent.id,
            agent.name,
            agent.state,
            format_time(agent.started_at),
            agent.provider,
            agent.model,
            agent.description,
            format_time(agent.created_at),
            format_time(agent.updated_at),
            agent.tenant_id,
        ),
    )
    if cursor.rowcount == 0:  # only a scoped upsert can change no row: another tenant's agent
        raise AgentExistsError(agent.id)
    row = connection.execute(_SELECT_AGENT, (agent.id,)).fetchone()
    return _agent(row)


def _create_session_tx(
    connection: sqlite3.Connection, session: Session, metadata_json: str
) -> Session:
    created = format_time(session.created_at)
    if session.agent_id is not None:
        connection.execute(
            _ENSURE_AGENT,
            (session.agent_id, session.agent_id, created, created, created, session.tenant_id),
        )
    connection.execute(
        _INSERT_SESSION,
        (
            session.session_id,
            session.agent_id,
            session.user_id,
            session.tenant_id,
            session.status,
            metadata_json,
            created,
            format_time(session.updated_at),
            None if session.expires_at is None else format_time(session.expires_at),
        ),
    )
    return session


def _update_session_tx(
    connection: sqlite3.Connection,
    session_id: str,
    status: str | None,
    metadata_json: str | None,
    expires_at: datetime | Unset | None,
    now: datetime,
    owner: Owner | None,
) -> Session:
    set_expiry = not isinstance(expires_at, Unset)
    expiry = format_time(expires_at) if isinstance(expires_at, datetime) else None
    parameters = (status, metadata_json, set_expiry, expiry, format_time(now), session_id)
    if owner is None:
        cursor = connection.execute(_UPDATE_SESSION, parameters)
    else:
        cursor = connection.execute(_UPDATE_OWNED_SESSION, (*parameters, *owner_params(owner)))
    if cursor.rowcount == 0:
        raise SessionNotFoundError(session_id)
    # The row was just updated under this transaction's write lock: it is the owner's.
    return _session(connection.execute(_SELECT_SESSION, (session_id,)).fetchone())


def _bump_count(
    connection: sqlite3.Connection, session_id: str, added: int, now: str, owner: Owner | None
) -> int:
    """Add ``added`` to the session's message_count; return the new count (the last seq).

    A session that is missing, or outside ``owner``'s scope, is not updated:
    SessionNotFoundError, and the caller's transaction writes nothing.
    """
    if owner is None:
        parameters: tuple[Any, ...] = (added, now, session_id)
        returning, plain = _BUMP_COUNT_RETURNING, _BUMP_COUNT
    else:
        parameters = (added, now, session_id, *owner_params(owner))
        returning, plain = _BUMP_OWNED_COUNT_RETURNING, _BUMP_OWNED_COUNT
    if _HAS_RETURNING:
        rows = connection.execute(returning, parameters).fetchall()
        if not rows:
            raise SessionNotFoundError(session_id)
        return int(rows[0][0])
    cursor = connection.execute(plain, parameters)  # pragma: no cover
    if cursor.rowcount == 0:  # pragma: no cover
        raise SessionNotFoundError(session_id)
    return int(connection.execute(_SELECT_COUNT, (session_id,)).fetchone()[0])  # pragma: no cover


def _append_one_tx(
    connection: sqlite3.Connection,
    session_id: str,
    message: EncodedMessage,
    now: datetime,
    owner: Owner | None,
) -> Message:
    stamp = format_time(now)
    seq = _bump_count(connection, session_id, 1, stamp, owner)
    when = message.timestamp
    cursor = connection.execute(
        _INSERT_MESSAGE,
        (
            session_id,
            seq,
            message.role.value,
            message.content,
            message.metadata_json,
            stamp if when is now else format_time(when),
        ),
    )
    return message.stored(session_id, seq, cursor.lastrowid)


def _append_many_tx(
    connection: sqlite3.Connection,
    session_id: str,
    messages: list[EncodedMessage],
    now: datetime,
    owner: Owner | None,
) -> list[Message]:
    count = len(messages)
    stamp = format_time(now)  # most messages carry the call's own time: format it once
    first_seq = _bump_count(connection, session_id, count, stamp, owner) - count + 1
    connection.executemany(
        _INSERT_MESSAGE,
        [
            (
                session_id,
                first_seq + offset,
                message.role.value,
                message.content,
                message.metadata_json,
                stamp if message.timestamp is now else format_time(message.timestamp),
            )
            for offset, message in enumerate(messages)
        ],
    )
    # This transaction holds the write lock and the rows went in one after another, so
    # their rowids are consecutive and end at the connection's last insert.
    last_id = int(connection.execute("SELECT last_insert_rowid()").fetchone()[0])
    first_id = last_id - count + 1
    return [
        message.stored(session_id, first_seq + offset, first_id + offset)
        for offset, message in enumerate(messages)
    ]


def _save_state_tx(
    connection: sqlite3.Connection,
    session_id: str,
    state: dict[str, Any],
    state_json: str,
    now: datetime,
    owner: Owner | None,
) -> AgentState:
    if owner is None:
        # A missing session fails the foreign key, which write() reports as
        # SessionNotFoundError.
        parameters: tuple[Any, ...] = (session_id, state_json, format_time(now), session_id)
        returning, plain = _INSERT_STATE_RETURNING, _INSERT_STATE
    else:
        # A missing or foreign session selects no row to insert.
        parameters = (state_json, format_time(now), session_id, *owner_params(owner))
        returning, plain = _INSERT_OWNED_STATE_RETURNING, _INSERT_OWNED_STATE
    if _HAS_RETURNING:
        rows = connection.execute(returning, parameters).fetchall()
        if not rows:
            raise SessionNotFoundError(session_id)
        version = int(rows[0][0])
    else:  # pragma: no cover - SQLite before 3.35
        if connection.execute(plain, parameters).rowcount == 0:
            raise SessionNotFoundError(session_id)
        version = int(connection.execute(_SELECT_STATE_VERSION, (session_id,)).fetchone()[0])
    return AgentState(session_id, version, state, now)


def _get_agent_tx(connection: sqlite3.Connection, agent_id: str) -> Agent | None:
    row = connection.execute(_SELECT_AGENT, (agent_id,)).fetchone()
    return None if row is None else _agent(row)


def _list_agents_tx(connection: sqlite3.Connection, limit: int) -> list[Agent]:
    return [_agent(row) for row in connection.execute(_SELECT_AGENTS, (limit,))]


def _get_session_tx(
    connection: sqlite3.Connection, session_id: str, owner: Owner | None
) -> Session | None:
    if owner is None:
        row = connection.execute(_SELECT_SESSION, (session_id,)).fetchone()
    else:
        row = connection.execute(
            _SELECT_OWNED_SESSION, (session_id, *owner_params(owner))
        ).fetchone()
    return None if row is None else _session(row)


def _list_sessions_tx(
    connection: sqlite3.Connection, sql: str, parameters: tuple[Any, ...]
) -> list[Session]:
    return [_session(row) for row in connection.execute(sql, parameters)]


def _delete_session_tx(
    connection: sqlite3.Connection, session_id: str, owner: Owner | None
) -> bool:
    if owner is None:
        return connection.execute(_DELETE_SESSION, (session_id,)).rowcount > 0
    parameters = (session_id, *owner_params(owner))
    return connection.execute(_DELETE_OWNED_SESSION, parameters).rowcount > 0


def _list_messages_tx(
    connection: sqlite3.Connection,
    session_id: str,
    limit: int,
    after_seq: int,
    owner: Owner | None,
) -> list[Message]:
    if owner is None:
        rows = connection.execute(_SELECT_MESSAGES, (session_id, after_seq, limit)).fetchall()
    else:
        parameters = (session_id, after_seq, session_id, *owner_params(owner), limit)
        rows = connection.execute(_SELECT_OWNED_MESSAGES, parameters).fetchall()
    return [_message(session_id, row) for row in rows]


def _list_recent_tx(
    connection: sqlite3.Connection, session_id: str, limit: int, owner: Owner | None
) -> list[Message]:
    # Backwards through the (session_id, seq) index: reads only the rows it returns.
    if owner is None:
        rows = connection.execute(_SELECT_RECENT_MESSAGES, (session_id, limit)).fetchall()
    else:
        parameters = (session_id, session_id, *owner_params(owner), limit)
        rows = connection.execute(_SELECT_OWNED_RECENT_MESSAGES, parameters).fetchall()
    rows.reverse()
    return [_message(session_id, row) for row in rows]


def _get_state_tx(
    connection: sqlite3.Connection, session_id: str, version: int | None, owner: Owner | None
) -> AgentState | None:
    if owner is None:
        if version is None:
            row = connection.execute(_SELECT_LATEST_STATE, (session_id,)).fetchone()
        else:
            row = connection.execute(_SELECT_STATE, (session_id, version)).fetchone()
    else:
        scope = (session_id, *owner_params(owner))
        if version is None:
            row = connection.execute(_SELECT_OWNED_LATEST_STATE, (session_id, *scope)).fetchone()
        else:
            row = connection.execute(_SELECT_OWNED_STATE, (session_id, version, *scope)).fetchone()
    return None if row is None else _state(session_id, row)


def _list_states_tx(
    connection: sqlite3.Connection, session_id: str, limit: int, owner: Owner | None
) -> list[AgentState]:
    if owner is None:
        rows = connection.execute(_SELECT_STATES, (session_id, limit))
    else:
        parameters = (session_id, session_id, *owner_params(owner), limit)
        rows = connection.execute(_SELECT_OWNED_STATES, parameters)
    return [_state(session_id, row) for row in rows]


def _no_limit(limit: int | None) -> int:
    return -1 if limit is None else limit  # SQLite: a negative LIMIT means none


# ------------------------------------------------------------------ the store


class SqliteStore(BaseStore):
    """A SQLite database file (or ``sqlite::memory:``), used from asyncio."""

    backend = "sqlite"

    def __init__(self, url: DatabaseURL, worker: _Worker) -> None:
        super().__init__(url)
        self._worker = worker

    @property
    def path(self) -> str:
        """The database file's path (``:memory:`` for an in-memory database)."""
        return self._worker.path

    @classmethod
    async def connect(
        cls,
        url: str | DatabaseURL = "sqlite://./mofa.db",
        *,
        busy_timeout: float = 5.0,
        lock_timeout: float = 30.0,
        create_schema: bool = True,
        **options: Any,
    ) -> Self:
        """Open (creating if needed) the database a ``sqlite://`` URL names.

        Args:
            url: ``sqlite://./rel.db``, ``sqlite:///abs.db``, ``sqlite::memory:`` …
            busy_timeout: seconds SQLite waits on a lock held by another connection.
            lock_timeout: seconds the store keeps retrying a write that finds the file
                locked before it reports :class:`StoreConnectionError` (nothing written).
            create_schema: False: create and change nothing; refuse a missing file, or one
                without the mofa schema or with an older one (:class:`SchemaError`).
            options: none other; an unknown one raises :class:`InvalidInputError`.
        """
        reject_unknown_options(
            "SqliteStore", options, ("busy_timeout", "lock_timeout", "create_schema")
        )
        check_option("busy_timeout", busy_timeout)
        check_flag("create_schema", create_schema)
        check_option("lock_timeout", lock_timeout)
        parsed = parse_url(url) if isinstance(url, str) else url
        if parsed.backend != "sqlite" or not parsed.path:
            raise InvalidURLError(
                f"{parsed.masked!r} is not a SQLite URL; write sqlite://./relative.db, "
                "sqlite:///absolute.db or sqlite::memory:."
            )
        path = parsed.path if parsed.path == _MEMORY else _absolute(parsed.path)
        worker = _Worker(path, busy_timeout, lock_timeout)
        try:
            applied = await worker.call(worker.open, create_schema)
        except BaseException:
            await worker.stop()
            raise
        store = cls(parsed, worker)
        store.applied_migrations = applied
        return store

    async def _close(self) -> None:
        await self._worker.stop()

    # ---------------------------------------------------------------- agents

    async def _upsert_agent(self, agent: Agent, owner: Owner | None) -> Agent:
        return await self._worker.write(_upsert_agent_tx, agent, owner)

    async def _get_agent(self, agent_id: str) -> Agent | None:
        return await self._worker.read(_get_agent_tx, agent_id)

    async def _list_agents(self, limit: int | None) -> list[Agent]:
        return await self._worker.read(_list_agents_tx, _no_limit(limit))

    # -------------------------------------------------------------- sessions
    # With an owner each call runs the same one hop: the scope is a condition of the
    # statement that reads or writes the session's row (see the *_OWNED_* statements).

    async def _create_session(self, session: Session, metadata_json: str) -> Session:
        return await self._worker.write(
            _create_session_tx,
            session,
            metadata_json,
            session_id=session.session_id,
        )

    async def _get_session(self, session_id: str, owner: Owner | None) -> Session | None:
        return await self._worker.read(_get_session_tx, session_id, owner)

    async def _list_sessions(
        self,
        agent_id: str | None,
        user_id: str | None,
        tenant_id: str | None,
        limit: int | None,
        offset: int,
        owner: Owner | None,
    ) -> list[Session]:
        key, filters = session_filters(agent_id, user_id, tenant_id, owner)
        parameters = (*filters, _no_limit(limit), offset)
        return await self._worker.read(_list_sessions_tx, _LIST_SESSIONS[key], parameters)

    async def _update_session(
        self,
        session_id: str,
        status: str | None,
        metadata_json: str | None,
        expires_at: datetime | Unset | None,
        now: datetime,
        owner: Owner | None,
    ) -> Session:
        return await self._worker.write(
            _update_session_tx,
            session_id,
            status,
            metadata_json,
            expires_at,
            now,
            owner,
            session_id=session_id,
        )

    async def _delete_session(self, session_id: str, owner: Owner | None) -> bool:
        return await self._worker.write(_delete_session_tx, session_id, owner)

    # -------------------------------------------------------------- messages

    async def _append_message(
        self, session_id: str, message: EncodedMessage, now: datetime, owner: Owner | None
    ) -> Message:
        return await self._worker.write(
            _append_one_tx, session_id, message, now, owner, session_id=session_id
        )

    async def _append_messages(
        self,
        session_id: str,
        messages: list[EncodedMessage],
        now: datetime,
        owner: Owner | None,
    ) -> list[Message]:
        return await self._worker.write(
            _append_many_tx, session_id, messages, now, owner, session_id=session_id
        )

    async def _list_messages(
        self, session_id: str, limit: int | None, after_seq: int, owner: Owner | None
    ) -> list[Message]:
        return await self._worker.read(
            _list_messages_tx, session_id, _no_limit(limit), after_seq, owner
        )

    async def _list_recent_messages(
        self, session_id: str, limit: int, owner: Owner | None
    ) -> list[Message]:
        return await self._worker.read(_list_recent_tx, session_id, limit, owner)

    # ----------------------------------------------------------------- state

    async def _save_state(
        self,
        session_id: str,
        state: dict[str, Any],
        state_json: str,
        now: datetime,
        owner: Owner | None,
    ) -> AgentState:
        return await self._worker.write(
            _save_state_tx,
            session_id,
            state,
            state_json,
            now,
            owner,
            session_id=session_id,
        )

    async def _get_state(
        self, session_id: str, version: int | None, owner: Owner | None
    ) -> AgentState | None:
        return await self._worker.read(_get_state_tx, session_id, version, owner)

    async def _list_states(
        self, session_id: str, limit: int | None, owner: Owner | None
    ) -> list[AgentState]:
        return await self._worker.read(_list_states_tx, session_id, _no_limit(limit), owner)
