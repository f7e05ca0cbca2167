"""How a MySQL store call runs on the pool: one round trip, retried where that is safe.

:class:`PooledStore` holds the pool and runs the calls: a read is retried once on a broken
pooled connection, a write (one statement, or a multi-statement transaction) is retried on
deadlocks and lock-wait timeouts and reports one :class:`Outcome` per statement; errors
are translated once and an outage is logged once. The reads themselves are
:class:`~mofa.persistence.backends._sql.SqlStore`'s; :class:`MySqlStore` adds opening the
store and what each write sends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple, TypeVar

from mofa.persistence._url import DatabaseURL
from mofa.persistence.backends._outage import OutageLog
from mofa.persistence.backends._sql import SqlStore
from mofa.persistence.backends._toolkit import RETRY_SECONDS, InFlight, backoff
from mofa.persistence.backends.mysql._connect import Target
from mofa.persistence.backends.mysql._errors import (
    CONNECT_ERRORS,
    ER_DUP_ENTRY,
    NO_SESSION,
    RETRYABLE,
    error_code,
    is_connection_loss,
    translate,
)
from mofa.persistence.backends.mysql._pool import abandon
from mofa.persistence.errors import (
    InvalidInputError,
    PersistenceError,
    SessionExistsError,
    SessionNotFoundError,
)

__all__ = ["Outcome", "PooledStore"]

_T = TypeVar("_T")

# The package's name, as before the split: outage records keep their logger.
_log = logging.getLogger("mofa.persistence.backends.mysql")

_PACKET_MARGIN: Final = 64 * 1024  # statement text and protocol overhead around the values
_ESCAPED: Final = ("\\", "'", '"', "\n", "\r", "\x1a")  # each sent as two bytes


class Outcome(NamedTuple):
    """What one statement of a write reported: its OK packet, or a SELECT's rows.

    A write returns one per statement, in the order of its text; the store unpacks them by
    name (``_start, update, insert, _commit = await self._write(APPEND_ONE, …)``).
    """

    #: Rows the statement matched (an UPDATE: CLIENT_FOUND_ROWS), inserted or deleted.
    affected_rows: int
    #: LAST_INSERT_ID() after it: an INSERT's first auto-increment id, or LAST_INSERT_ID(expr).
    last_insert_id: int
    #: A SELECT's rows (None for other statements, and for the write's first statement).
    rows: Any


class PooledStore(SqlStore):
    """A MySQL store's pool and the calls it runs on it (see the module docstring)."""

    def __init__(self, url: DatabaseURL, pool: Any, target: Target) -> None:
        super().__init__(url)
        self._pool = pool
        self._target = target
        self._loop = asyncio.get_running_loop()  # the pool's connections belong to it
        self._in_flight = InFlight()
        self._outage = OutageLog(_log, f"{target.label} at {target.where}")
        #: The server's max_allowed_packet, read on connect (16 MiB is MariaDB's default).
        self._max_packet = 16 * 1024 * 1024

    @property
    def _name(self) -> str:
        return self._target.label  # MySQL, or MariaDB for a mariadb:// URL

    async def _close(self) -> None:
        await self._in_flight.drained(seconds=10)  # calls already made finish first
        self._pool.close()
        await self._pool.wait_closed()

    def _drop_connections(self) -> None:
        # Not terminate(): it schedules a task on the pool's loop, which is not running.
        self._pool.close()

    # ------------------------------------------------------------------ plumbing

    def _error(self, exc: BaseException, write: bool = False) -> PersistenceError:
        """The error a call raises for ``exc``; an unreachable server is logged once."""
        error = translate(exc, self._target, self._max_packet, write)
        detail = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        self._outage.failed(error, detail or type(exc).__name__, exc)
        return error

    async def _fetch(self, sql: str, args: Sequence[Any]) -> Any:
        """Run one read statement and return its rows.

        A read is retried once when its pooled connection turns out to be broken (the server
        restarted since it was last used); a read has no effect to duplicate.
        """
        with self._in_flight:
            for attempt in (0, 1):
                try:
                    async with self._pool.acquire() as connection:
                        cursor = connection.cursor()
                        await cursor.execute(sql, args)
                        rows = await cursor.fetchall()
                        self._outage.answered()
                        return rows
                except Exception as exc:
                    if self._closed and error_code(exc) is None:  # the pool refused: closing
                        raise self._closed_meanwhile() from exc
                    if (
                        attempt == 0
                        and is_connection_loss(exc)
                        and error_code(exc) not in (CONNECT_ERRORS)
                    ):
                        continue
                    raise self._error(exc) from exc
            raise AssertionError("unreachable")  # pragma: no cover

    async def _select(
        self, sql: str, args: Sequence[Any], read: Callable[..., _T], *read_args: Any
    ) -> _T:
        return read(*read_args, await self._fetch(sql, args))

    async def _write(
        self,
        sql: str,
        args: Sequence[Any],
        *,
        session_id: str | None = None,
        creates_session: bool = False,
        retry_duplicates: bool = False,
    ) -> list[Outcome]:
        """Run a write (one statement or a multi-statement transaction) in one round trip.

        Returns what each statement reported (an :class:`Outcome`), in order. Deadlocks and
        lock-wait timeouts roll back and run it again. For a write about ``session_id``, a row
        that names a missing session raises :class:`SessionNotFoundError`, and, when the write
        ``creates_session``, a duplicate key raises :class:`SessionExistsError`.
        """
        with self._in_flight:
            deadline = time.monotonic() + RETRY_SECONDS
            attempt = 0
            while True:
                attempt += 1
                try:
                    async with self._pool.acquire() as connection:
                        cursor = connection.cursor()
                        try:
                            await cursor.execute(sql, args)
                            results = [Outcome(cursor.rowcount, cursor.lastrowid, None)]
                            while await cursor.nextset():
                                rows = await cursor.fetchall() if cursor.description else None
                                results.append(Outcome(cursor.rowcount, cursor.lastrowid, rows))
                            self._outage.answered()
                            return results
                        except Exception:
                            await abandon(connection)
                            raise
                        except BaseException:
                            connection.close()  # cancelled mid-call: its state is unknown
                            raise
                except Exception as exc:
                    code = error_code(exc)
                    if self._closed and code is None:  # the pool refused: close() has begun
                        raise self._closed_meanwhile() from exc
                    retry = code in RETRYABLE or (retry_duplicates and code == ER_DUP_ENTRY)
                    if retry and time.monotonic() < deadline:
                        await asyncio.sleep(backoff(attempt))
                        continue
                    if session_id is not None:
                        if creates_session and code == ER_DUP_ENTRY:
                            raise SessionExistsError(session_id) from exc
                        if not creates_session and code in NO_SESSION:
                            raise SessionNotFoundError(session_id) from exc
                    raise self._error(exc, write=True) from exc

    def _check_packet(self, *texts: str) -> None:
        """Refuse, before sending, a write the server would reject for its packet size.

        Cheap for the common case: only when 4 bytes per character could exceed the limit is
        the exact size (UTF-8, plus one byte per character the text protocol escapes) counted.
        """
        if sum(map(len, texts)) * 4 + _PACKET_MARGIN <= self._max_packet:
            return
        size = sum(len(text.encode()) + sum(map(text.count, _ESCAPED)) for text in texts)
        if size + _PACKET_MARGIN > self._max_packet:
            raise InvalidInputError(
                f"The write is {size} bytes, more than the {self._target.label} server's "
                f"max_allowed_packet ({self._max_packet} bytes) allows; raise it on the server "
                "(SET GLOBAL max_allowed_packet = ..., and in my.cnf) or store smaller messages."
            )
