"""The dedicated worker thread: it owns the one connection and runs whole transactions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from mofa.persistence import schema
from mofa.persistence.backends.sqlite._errors import is_busy, translate
from mofa.persistence.backends.sqlite._schema import migrate, place, schema_version
from mofa.persistence.errors import SchemaError, StoreClosedError

__all__ = ["MEMORY", "Worker"]

_T = TypeVar("_T")

MEMORY: Final = ":memory:"


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
#: At most this many queued writes share one commit (see Worker._run_writes).
_MAX_GROUP: Final = 128
_NOTHING: Final = object()


class Worker:
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
            error = translate(exc, self.path, session_id)
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
        if self.path != MEMORY and create_schema:
            _create_file(self.path)
        if self.path != MEMORY and not create_schema and not os.path.isfile(self.path):
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
            where = place(self.path)
            # Versions only go up, so a current schema needs no write lock: connecting then
            # does not wait for another process's long transaction.
            current = self._retry_busy(lambda: schema_version(connection))
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
            return self.transaction(migrate, self.path)
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
                if not is_busy(exc) or time.monotonic() + delay > deadline:
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


def _create_file(path: str) -> None:
    """Create the database file (and its directories) readable by the owner only."""
    target = Path(path)
    if target.exists():
        return
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # O_CREAT without O_EXCL: two processes creating it at once both succeed.
    descriptor = os.open(target, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(descriptor)
