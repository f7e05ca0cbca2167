"""The PostgreSQL store: :class:`PostgresStore`, its writes (each one statement on the pool)
and how a statement runs; the reads are :class:`~mofa.persistence.backends._sql.SqlStore`'s."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any, Self, TypeVar

from mofa.persistence._base import EncodedMessage
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._prune import PruneRule
from mofa.persistence._restore import ConflictPolicy, RestoreBatch, SourceError
from mofa.persistence._url import DatabaseURL, parse_url
from mofa.persistence.backends._outage import OutageLog
from mofa.persistence.backends._sql import SqlStore, owner_params
from mofa.persistence.backends._toolkit import RETRY_SECONDS, InFlight, backoff
from mofa.persistence.backends.postgres._errors import (
    CALL,
    CONNECT,
    FOREIGN_KEY_VIOLATION,
    RETRY_STATES,
    UNIQUE_VIOLATION,
    is_connection_error,
    scrub,
    sqlstate,
    translate,
)
from mofa.persistence.backends.postgres._pool import open_connections, open_pool
from mofa.persistence.backends.postgres._restore import restore
from mofa.persistence.backends.postgres._rows import by_seq, session_from_row, utc
from mofa.persistence.backends.postgres._schema import migrate
from mofa.persistence.backends.postgres._statements import (
    APPEND_BATCH,
    APPEND_BATCH_OWNED,
    APPEND_ONE,
    APPEND_ONE_OWNED,
    CREATE_SESSION,
    DELETE_SESSION,
    DELETE_SESSION_OWNED,
    DELETE_SESSIONS,
    DIALECT,
    READS,
    SAVE_STATE,
    SAVE_STATE_OWNED,
    UPDATE_SESSION,
    UPDATE_SESSION_OWNED,
    UPSERT_AGENT,
    UPSERT_AGENT_OWNED,
)
from mofa.persistence.backends.postgres._times import bad_time_search, damaged_time_error
from mofa.persistence.backends.postgres._url import Target
from mofa.persistence.errors import (
    AgentExistsError,
    InvalidInputError,
    InvalidURLError,
    PersistenceError,
    SessionExistsError,
    SessionNotFoundError,
)

__all__ = ["PostgresStore"]

_T = TypeVar("_T")

# The package's name, as before the split: what applications configure and tests filter on.
_log = logging.getLogger("mofa.persistence.backends.postgres")


def _migrate_url(url: str | DatabaseURL | None) -> DatabaseURL | None:
    """``migrate_url=``, parsed and checked (a PostgreSQL URL, or None)."""
    if url is None:
        return None
    if not isinstance(url, str | DatabaseURL):
        raise InvalidInputError(
            f"migrate_url must be a postgres:// URL (a string), not {type(url).__name__}."
        )
    parsed = parse_url(url) if isinstance(url, str) else url
    if parsed.backend != "postgres":
        raise InvalidURLError(
            f"migrate_url must be a postgres:// or postgresql:// URL, not {parsed.masked!r}."
        )
    return parsed


class PostgresStore(SqlStore):
    """Sessions, messages and agent state in PostgreSQL (asyncpg, pooled).

    Open it with :meth:`connect` (or ``open_store(url)``), close it with ``close()`` or
    ``async with``. Safe to share between asyncio tasks of one event loop.
    """

    backend = "postgres"
    _dialect = DIALECT
    _reads = READS

    def __init__(self, url: DatabaseURL, pool: Any) -> None:
        super().__init__(url)
        self._pool = pool
        self._loop = asyncio.get_running_loop()  # the pool's connections belong to it
        self._in_flight = InFlight()
        self._outage = OutageLog(_log, f"PostgreSQL at {Target(url).address}")

    @classmethod
    async def connect(
        cls,
        url: str | DatabaseURL,
        *,
        pool_min_size: int = 1,
        pool_max_size: int | None = None,
        connect_timeout: float | None = None,
        command_timeout: float | None = None,
        statement_cache_size: int | None = None,
        max_inactive_connection_lifetime: float = 300.0,
        create_schema: bool = True,
        migrate_url: str | DatabaseURL | None = None,
        **options: Any,
    ) -> Self:
        """Open a pool on ``url`` and create or upgrade the schema.

        Args:
            url: a ``postgres://`` / ``postgresql://`` URL (or a parsed one).
            pool_min_size: connections opened at once (like any other, one left idle for
                ``max_inactive_connection_lifetime`` is closed; the next call reopens one).
            pool_max_size: most connections the store opens, default 10 (concurrent calls beyond
                this wait for a free one).
            connect_timeout: seconds to wait for a new connection (default: the URL's
                ``?connect_timeout=``, else 10; given here, it wins over the URL's).
            command_timeout: seconds a statement may run (``None``: no limit).
            statement_cache_size: named prepared statements kept per connection (default
                100; 0, and refused above 0, behind a pooler that shares server connections:
                the URL's ``?pool_mode=transaction`` or ``statement``, or a pooler found on
                connect unless the URL says ``?pool_mode=session``).
            max_inactive_connection_lifetime: seconds before an idle connection is closed.
            create_schema: False: change nothing in the database; refuse one without the
                mofa schema or with an older one (:class:`SchemaError`).
            migrate_url: a direct URL to the same database, where migrations run when one is
                due (the URL itself may then go through PgBouncer in transaction mode, where
                migrations are refused). Opened only when the schema needs a migration.
            options: ``pool_size`` is accepted as another name for ``pool_max_size`` (the
                MySQL store's name for it); anything else is refused.

        Raises:
            InvalidInputError: an unknown option or an unusable value.
            StoreConnectionError: the server cannot be reached (or refused the login:
                :class:`AuthenticationError`; or has no such database:
                :class:`DatabaseNotFoundError`).
            SchemaError: the database holds a newer schema than this version knows; or it
                needs a migration and the URL goes through a pooler that shares server
                connections, with no ``migrate_url``.
        """
        parsed = parse_url(url) if isinstance(url, str) else url
        if parsed.backend != "postgres":
            raise InvalidURLError(
                f"PostgresStore needs a postgres:// or postgresql:// URL, not {parsed.masked!r}."
            )
        migrate_to = _migrate_url(migrate_url)
        pool, pooling = await open_pool(
            parsed,
            pool_min_size=pool_min_size,
            pool_max_size=pool_max_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            statement_cache_size=statement_cache_size,
            max_inactive_connection_lifetime=max_inactive_connection_lifetime,
            create_schema=create_schema,
            options=options,
        )
        store = cls(parsed, pool)
        try:
            store.applied_migrations = await migrate(
                pool,
                parsed,
                create_schema,
                pooling=pooling,
                migrate_url=migrate_to,
                connect_timeout=connect_timeout,
            )
            await open_connections(pool, parsed, pool_min_size)
        except BaseException:
            pool.terminate()
            raise
        return store

    async def _close(self) -> None:
        await self._in_flight.drained(seconds=10)  # calls already made finish first
        try:
            await asyncio.wait_for(self._pool.close(), timeout=10)
        except Exception:
            # The server went away or a call is stuck: drop the sockets instead.
            self._pool.terminate()

    def _drop_connections(self) -> None:
        self._pool.terminate()

    # ------------------------------------------------------------- plumbing

    async def _fetch(
        self,
        query: str,
        *args: Any,
        write: bool,
        retry_duplicates: bool = False,
        session_id: str | None = None,
    ) -> list[Any]:
        """Run one statement on a pooled connection and return its rows.

        Retries a serialization failure or deadlock (never surfaced to the caller), with
        ``retry_duplicates`` a unique violation too, and, for reads only, a connection that
        broke mid-call (a read is safe to repeat; a write whose connection broke may have
        committed, so it is reported, not repeated). A row naming a missing session (a
        foreign-key violation) raises :class:`SessionNotFoundError` for ``session_id``.
        """
        with self._in_flight:
            attempt = 1
            deadline = time.monotonic() + RETRY_SECONDS
            while True:
                try:
                    connection = await self._pool.acquire()
                except Exception as exc:
                    if self._closed:  # close() began while this call waited for a connection
                        raise self._closed_meanwhile() from exc
                    raise self._failure(exc, stage=CONNECT, write=write) from exc
                undecodable: OverflowError | None = None
                try:
                    rows: list[Any] = await connection.fetch(query, *args)
                    self._outage.answered()
                    return rows
                except OverflowError as exc:  # a stored time Python cannot hold
                    undecodable = exc
                except Exception as exc:
                    if is_connection_error(exc):
                        # Its protocol state is unknown now: never hand it out again. (asyncpg
                        # may already have detached it from the pool, hence the suppress.)
                        with contextlib.suppress(Exception):
                            connection.terminate()
                    state = sqlstate(exc)
                    if session_id is not None and state == FOREIGN_KEY_VIOLATION:
                        raise SessionNotFoundError(session_id) from exc
                    conflict = state in RETRY_STATES or (
                        retry_duplicates and state == UNIQUE_VIOLATION
                    )
                    if not (
                        (conflict and time.monotonic() < deadline)
                        or (not write and attempt == 1 and is_connection_error(exc))
                    ):
                        raise self._failure(exc, stage=CALL, write=write) from exc
                finally:
                    await self._pool.release(connection)
                if undecodable is not None:
                    raise await self._damaged_time(query, args, undecodable) from undecodable
                await asyncio.sleep(backoff(attempt))
                attempt += 1

    async def _select(
        self, sql: str, args: Sequence[Any], read: Callable[..., _T], *read_args: Any
    ) -> _T:
        return read(*read_args, await self._fetch(sql, *args, write=False))

    def _failure(self, exc: BaseException, *, stage: str, write: bool) -> PersistenceError:
        """The error a call raises for ``exc``; an unreachable server is logged once."""
        error = translate(exc, self._url, stage=stage, write=write)
        detail = scrub(str(getattr(exc, "message", None) or exc), self._url)
        self._outage.failed(error, detail or type(exc).__name__, exc)
        return error

    async def _damaged_time(
        self, query: str, args: tuple[Any, ...], failure: OverflowError
    ) -> PersistenceError:
        """The error for a result asyncpg could not decode (see :mod:`._times`)."""
        search = bad_time_search(query, args)
        if search is not None:
            found = await self._fetch(*search, write=False)
            if found:
                return damaged_time_error(query, found[0])
        return translate(failure, self._url, stage=CALL, write=False)

    # ---------------------------------------------------------------- agents

    async def _upsert_agent(self, agent: Agent, owner: Owner | None) -> Agent:
        rows = await self._fetch(
            UPSERT_AGENT if owner is None else UPSERT_AGENT_OWNED,
            agent.id,
            agent.name,
            agent.state,
            agent.started_at,
            agent.provider,
            agent.model,
            agent.description,
            agent.created_at,
            agent.updated_at,
            agent.tenant_id,
            write=True,
        )
        if not rows:  # only the scoped statement returns none: another tenant's record
            raise AgentExistsError(agent.id)
        created_at, tenant_id = rows[0]
        created_at = utc(created_at)
        if created_at != agent.created_at or tenant_id != agent.tenant_id:
            return dataclasses.replace(agent, created_at=created_at, tenant_id=tenant_id)
        return agent

    # -------------------------------------------------------------- sessions

    async def _create_session(self, session: Session, metadata_json: str) -> Session:
        rows = await self._fetch(
            CREATE_SESSION,
            session.session_id,
            session.agent_id,
            session.user_id,
            session.tenant_id,
            session.status,
            metadata_json,
            session.created_at,
            session.expires_at,
            write=True,
        )
        if not rows:
            raise SessionExistsError(session.session_id)
        return session

    async def _update_session(
        self,
        session_id: str,
        status: str | None,
        metadata_json: str | None,
        expires_at: datetime | Unset | None,
        now: datetime,
        owner: Owner | None,
    ) -> Session:
        change_expiry = not isinstance(expires_at, Unset)
        args = (
            session_id,
            status,
            metadata_json,
            change_expiry,
            expires_at if change_expiry else None,
            now,
        )
        if owner is None:
            rows = await self._fetch(UPDATE_SESSION, *args, write=True)
        else:
            rows = await self._fetch(UPDATE_SESSION_OWNED, *args, *owner_params(owner), write=True)
        if not rows:
            raise SessionNotFoundError(session_id)
        return session_from_row(rows[0])

    async def _delete_session(self, session_id: str, owner: Owner | None) -> bool:
        if owner is None:
            return bool(await self._fetch(DELETE_SESSION, session_id, write=True))
        return bool(
            await self._fetch(DELETE_SESSION_OWNED, session_id, *owner_params(owner), write=True)
        )

    async def _delete_sessions(self, session_ids: list[str], rule: PruneRule) -> list[str]:
        older = rule.older_than
        now = rule.now if rule.expired else None
        rows = await self._fetch(DELETE_SESSIONS, session_ids, older, now, write=True)
        return [row[0] for row in rows]

    # -------------------------------------------------------------- messages

    async def _append_message(
        self, session_id: str, message: EncodedMessage, now: datetime, owner: Owner | None
    ) -> Message:
        args = (
            session_id,
            message.role.value,
            message.content,
            message.metadata_json,
            message.timestamp,
            now,
        )
        if owner is None:
            rows = await self._fetch(APPEND_ONE, *args, write=True)
        else:
            rows = await self._fetch(APPEND_ONE_OWNED, *args, *owner_params(owner), write=True)
        if not rows:
            raise SessionNotFoundError(session_id)
        message_id, seq = rows[0]  # RETURNING id, seq
        return message.stored(session_id, seq, message_id)

    async def _append_messages(
        self,
        session_id: str,
        messages: list[EncodedMessage],
        now: datetime,
        owner: Owner | None,
    ) -> list[Message]:
        metadata = messages[0].metadata_json
        timestamp = messages[0].timestamp
        shared_metadata = all(message.metadata_json == metadata for message in messages)
        shared_timestamp = all(message.timestamp == timestamp for message in messages)
        args = (
            session_id,
            len(messages),
            [message.role.value for message in messages],
            [message.content for message in messages],
            metadata if shared_metadata else [message.metadata_json for message in messages],
            timestamp if shared_timestamp else [message.timestamp for message in messages],
            now,
        )
        if owner is None:
            rows = await self._fetch(
                APPEND_BATCH[shared_metadata, shared_timestamp], *args, write=True
            )
        else:
            rows = await self._fetch(
                APPEND_BATCH_OWNED[shared_metadata, shared_timestamp],
                *args,
                *owner_params(owner),
                write=True,
            )
        if not rows:
            raise SessionNotFoundError(session_id)
        # Rows come back in insert order in practice; sorting by seq makes it certain.
        rows.sort(key=by_seq)
        return [
            message.stored(session_id, seq, message_id)
            for message, (message_id, seq) in zip(messages, rows, strict=True)
        ]

    # ----------------------------------------------------------------- state

    async def _save_state(
        self,
        session_id: str,
        state: dict[str, Any],
        state_json: str,
        now: datetime,
        owner: Owner | None,
    ) -> AgentState:
        # Two concurrent saves can compute the same next version; the primary key rejects
        # the second, which then simply tries again with the new maximum. A session deleted
        # meanwhile fails the foreign key.
        rows = await self._fetch(
            SAVE_STATE if owner is None else SAVE_STATE_OWNED,
            session_id,
            state_json,
            now,
            *(() if owner is None else owner_params(owner)),
            write=True,
            retry_duplicates=True,
            session_id=session_id,
        )
        if not rows:
            raise SessionNotFoundError(session_id)
        return AgentState(session_id, rows[0][0], state, now)

    # --------------------------------------------------------------- restore

    async def _restore_session(
        self,
        session: Session,
        metadata_json: str,
        agent: Agent | None,
        batches: AsyncIterator[RestoreBatch],
        on_conflict: ConflictPolicy,
        owner: Owner | None,
    ) -> Session | None:
        # One transaction on one connection for the whole session: never retried (the
        # records are read once), rolled back by any error, the source's included.
        with self._in_flight:
            try:
                connection = await self._pool.acquire()
            except Exception as exc:
                if self._closed:
                    raise self._closed_meanwhile() from exc
                raise self._failure(exc, stage=CONNECT, write=True) from exc
            try:
                async with connection.transaction():
                    restored = await restore(
                        connection, session, metadata_json, agent, on_conflict, batches, owner
                    )
                self._outage.answered()
                return restored
            except SourceError as exc:
                raise exc.original from None
            except PersistenceError:
                raise
            except Exception as exc:
                if is_connection_error(exc):
                    with contextlib.suppress(Exception):
                        connection.terminate()
                if sqlstate(exc) == UNIQUE_VIOLATION:  # created meanwhile by another call
                    raise SessionExistsError(session.session_id) from exc
                raise self._failure(exc, stage=CALL, write=True) from exc
            finally:
                await self._pool.release(connection)
