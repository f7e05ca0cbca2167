"""The MySQL / MariaDB store: :class:`MySqlStore` (usage in the package's docstring)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple, Self

from mofa.persistence._base import BaseStore, EncodedMessage
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._url import DatabaseURL, parse_url
from mofa.persistence.backends._outage import OutageLog
from mofa.persistence.backends._sql import (
    owner_params,
    session_filters,
)
from mofa.persistence.backends._toolkit import (
    RETRY_SECONDS,
    InFlight,
    backoff,
    check_flag,
    check_option,
    reject_unknown_options,
)
from mofa.persistence.backends.mysql._connect import (
    Target,
)
from mofa.persistence.backends.mysql._errors import (
    CONNECT_ERRORS,
    ER_DUP_ENTRY,
    NO_SESSION,
    RETRYABLE,
    error_code,
    is_connection_loss,
    translate,
)
from mofa.persistence.backends.mysql._pool import abandon, import_driver, open_pool
from mofa.persistence.backends.mysql._rows import (
    agent_from_row,
    aware,
    messages_from_rows,
    session_from_row,
    state_from_row,
    wire,
)
from mofa.persistence.backends.mysql._schema import (
    migrate,
)
from mofa.persistence.backends.mysql._statements import (
    APPEND_ONE,
    APPEND_OWNED_ONE,
    CREATE_SESSION_WITH_AGENT,
    DELETE_OWNED_SESSION,
    DELETE_SESSION,
    GET_AGENT,
    GET_OWNED_SESSION,
    GET_SESSION,
    INSERT_SESSION,
    LATEST_OWNED_STATE,
    LATEST_STATE,
    LIST_AGENTS,
    LIST_MESSAGES,
    LIST_OWNED_MESSAGES,
    LIST_OWNED_STATES,
    LIST_SESSIONS,
    LIST_STATES,
    NO_LIMIT,
    OWNED_STATE_VERSION,
    RECENT_MESSAGES,
    RECENT_OWNED_MESSAGES,
    SAVE_OWNED_STATE,
    SAVE_STATE,
    STATE_VERSION,
    UPDATE_OWNED_SESSION,
    UPDATE_SESSION,
    UPSERT_AGENT,
    UPSERT_OWNED_AGENT,
    append_many_statement,
)
from mofa.persistence.errors import (
    AgentExistsError,
    InvalidInputError,
    InvalidURLError,
    PersistenceError,
    SchemaError,
    SessionExistsError,
    SessionNotFoundError,
)

__all__ = ["MySqlStore"]

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


class MySqlStore(BaseStore):
    """Sessions, messages and agent state in MySQL 8 or MariaDB 10.11+ (InnoDB)."""

    backend = "mysql"

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

    # ------------------------------------------------------------------ connecting

    @classmethod
    async def connect(
        cls,
        url: str | DatabaseURL,
        *,
        pool_size: int = 10,
        connect_timeout: float | None = None,
        schema_lock_timeout: int = 60,
        create_schema: bool = True,
        **options: Any,
    ) -> Self:
        """Open a pool on the database ``url`` names and create or upgrade the schema.

        ``create_schema=False`` changes nothing in the database and refuses one without the
        mofa schema or with an older one (:class:`SchemaError`).

        Raises:
            InvalidURLError: the URL is malformed or has an unknown parameter.
            StoreConnectionError: the server cannot be reached, or did not answer the
                handshake within ``connect_timeout`` (or one of its subclasses:
                AuthenticationError, DatabaseNotFoundError).
            PermissionDeniedError: the user may not create the missing schema.
            SchemaError: the database holds a newer schema than this version knows.
            MissingDependencyError: asyncmy is not installed.
        """
        parsed = parse_url(url) if isinstance(url, str) else url
        if parsed.backend != "mysql":
            raise InvalidURLError(
                f"MySqlStore needs a mysql:// or mariadb:// URL, not {parsed.masked!r}."
            )
        reject_unknown_options(
            "MySqlStore",
            options,
            ("pool_size", "connect_timeout", "schema_lock_timeout", "create_schema"),
        )
        check_option("pool_size", pool_size, integer=True, minimum=1)
        check_flag("create_schema", create_schema)
        if connect_timeout is not None:
            check_option("connect_timeout", connect_timeout)
        check_option("schema_lock_timeout", schema_lock_timeout, integer=True)
        asyncmy = import_driver()
        target = Target(parsed, connect_timeout)
        pool = await open_pool(asyncmy, target, parsed, pool_size)
        store = cls(parsed, pool, target)
        try:
            await store._prepare_schema(schema_lock_timeout, create_schema)
        except BaseException:
            await store.close()
            raise
        return store

    async def _prepare_schema(self, lock_timeout: int, create_schema: bool) -> None:
        """Create or upgrade the schema, serialized across processes by GET_LOCK (with
        ``create_schema`` False: only check it)."""
        # GET_LOCK names are server-wide: include the database so two databases don't wait.
        lock_name = f"mofa_schema.{self._target.database}"[:64]
        try:
            async with self._pool.acquire() as connection:
                cursor = connection.cursor()
                await cursor.execute(
                    "SELECT GET_LOCK(%s, %s), @@max_allowed_packet, CURRENT_USER()",
                    (lock_name, lock_timeout),
                )
                locked, max_packet, account = (await cursor.fetchall())[0]
                self._max_packet = int(max_packet)
                user, _, host = str(account).rpartition("@")
                self._target.account = f"'{user}'@'{host}'"
                if locked != 1:
                    raise SchemaError(
                        f"Timed out after {lock_timeout}s waiting for another process to finish "
                        f"creating the schema in {self._target.label} database "
                        f"{self._target.database!r}; retry, or check for a stuck connection."
                    )
                try:
                    self.applied_migrations = await migrate(cursor, self._target, create_schema)
                finally:
                    await cursor.execute("SELECT RELEASE_LOCK(%s)", (lock_name,))
                    await cursor.fetchall()
        except PersistenceError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc

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

    # ------------------------------------------------------------------ agents

    async def _upsert_agent(self, agent: Agent, owner: Owner | None) -> Agent:
        values = (
            agent.id,
            agent.name,
            agent.state,
            wire(agent.started_at),
            agent.provider,
            agent.model,
            agent.description,
            wire(agent.created_at),
            wire(agent.updated_at),
        )
        if owner is None:  # a new agent has no tenant (agent.tenant_id is None): the default
            _insert, select = await self._write(UPSERT_AGENT, (*values, agent.id))
        else:
            _start, _insert, select, _commit = await self._write(
                UPSERT_OWNED_AGENT, (*values, agent.tenant_id, agent.id)
            )
        stored_created_at, stored_tenant_id = select.rows[0]  # the row as it is now
        created_at = aware(stored_created_at)
        tenant_id = None if stored_tenant_id is None else stored_tenant_id.decode()
        if owner is not None and tenant_id != owner.tenant_id:
            raise AgentExistsError(agent.id)  # another tenant's: the statement changed nothing
        if created_at == agent.created_at and tenant_id == agent.tenant_id:
            return agent
        return dataclasses.replace(agent, created_at=created_at, tenant_id=tenant_id)

    async def _get_agent(self, agent_id: str) -> Agent | None:
        rows = await self._fetch(GET_AGENT, (agent_id,))
        return agent_from_row(rows[0]) if rows else None

    async def _list_agents(self, limit: int | None) -> list[Agent]:
        rows = await self._fetch(LIST_AGENTS, (NO_LIMIT if limit is None else limit,))
        return [agent_from_row(row) for row in rows]

    # ------------------------------------------------------------------ sessions

    async def _create_session(self, session: Session, metadata_json: str) -> Session:
        created = wire(session.created_at)
        session_values = (
            session.session_id,
            session.agent_id,
            session.user_id,
            session.tenant_id,
            session.status,
            metadata_json,
            created,
            wire(session.updated_at),
            wire(session.expires_at),
        )
        statement = INSERT_SESSION
        args: tuple[Any, ...] = session_values
        if session.agent_id is not None:  # the foreign key: a placeholder agent if none yet
            statement = CREATE_SESSION_WITH_AGENT
            args = (
                session.agent_id,
                session.agent_id,
                created,
                created,
                created,
                session.tenant_id,
                *args,
            )
        await self._write(statement, args, session_id=session.session_id, creates_session=True)
        return session

    async def _get_session(self, session_id: str, owner: Owner | None) -> Session | None:
        if owner is None:
            rows = await self._fetch(GET_SESSION, (session_id,))
        else:
            rows = await self._fetch(GET_OWNED_SESSION, (session_id, *owner_params(owner)))
        return session_from_row(rows[0]) if rows else None

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
        args = (*filters, NO_LIMIT if limit is None else limit, offset)
        return [session_from_row(row) for row in await self._fetch(LIST_SESSIONS[key], args)]

    async def _update_session(
        self,
        session_id: str,
        status: str | None,
        metadata_json: str | None,
        expires_at: datetime | Unset | None,
        now: datetime,
        owner: Owner | None,
    ) -> Session:
        set_expiry = not isinstance(expires_at, Unset)
        values = (
            wire(now),
            status,
            metadata_json,
            set_expiry,
            wire(expires_at) if isinstance(expires_at, datetime) else None,
            session_id,
        )
        if owner is None:
            update, select = await self._write(UPDATE_SESSION, (*values, session_id))
        else:
            scope = owner_params(owner)
            update, select = await self._write(
                UPDATE_OWNED_SESSION, (*values, *scope, session_id, *scope)
            )
        # The UPDATE must have found it (matched rows: CLIENT_FOUND_ROWS); the SELECT reads it.
        if not update.affected_rows or not select.rows:
            raise SessionNotFoundError(session_id)
        return session_from_row(select.rows[0])

    async def _delete_session(self, session_id: str, owner: Owner | None) -> bool:
        if owner is None:
            [delete] = await self._write(DELETE_SESSION, (session_id,))
        else:
            [delete] = await self._write(DELETE_OWNED_SESSION, (session_id, *owner_params(owner)))
        return delete.affected_rows > 0

    # ------------------------------------------------------------------ messages

    async def _append_message(
        self, session_id: str, message: EncodedMessage, now: datetime, owner: Owner | None
    ) -> Message:
        self._check_packet(message.content, message.metadata_json)
        wired_now = wire(now)
        args: tuple[Any, ...] = (
            wired_now,
            session_id,
            session_id,
            message.role.value,
            message.content,
            message.metadata_json,
            wired_now if message.timestamp is now else wire(message.timestamp),
        )
        statement = APPEND_ONE
        if owner is not None:  # the owner's three after the UPDATE's session id
            statement, args = APPEND_OWNED_ONE, (*args[:2], *owner_params(owner), *args[2:])
        _start, update, insert, _commit = await self._write(statement, args, session_id=session_id)
        # The UPDATE's LAST_INSERT_ID(expr) is the new count, the seq; the INSERT's, the row id.
        return message.stored(session_id, update.last_insert_id, insert.last_insert_id)

    async def _append_messages(
        self,
        session_id: str,
        messages: list[EncodedMessage],
        now: datetime,
        owner: Owner | None,
    ) -> list[Message]:
        count = len(messages)
        self._check_packet(*(text for m in messages for text in (m.content, m.metadata_json)))
        statement = append_many_statement(count, owner is not None)
        wired_now = wire(now)
        args: list[Any] = [count, wired_now, session_id]
        if owner is not None:
            args += owner_params(owner)
        for message in messages:
            args += (
                session_id,
                message.role.value,
                message.content,
                message.metadata_json,
                wired_now if message.timestamp is now else wire(message.timestamp),
            )

        _start, update, insert, _commit = await self._write(statement, args, session_id=session_id)
        last_seq, first_id = update.last_insert_id, insert.last_insert_id
        # A multi-row INSERT reserves one consecutive block of auto-increment ids.
        return [
            message.stored(session_id, last_seq - count + 1 + index, first_id + index)
            for index, message in enumerate(messages)
        ]

    async def _list_messages(
        self, session_id: str, limit: int | None, after_seq: int, owner: Owner | None
    ) -> list[Message]:
        count = NO_LIMIT if limit is None else limit
        if owner is None:
            rows = await self._fetch(LIST_MESSAGES, (session_id, after_seq, count))
        else:
            rows = await self._fetch(
                LIST_OWNED_MESSAGES,
                (session_id, after_seq, session_id, *owner_params(owner), count),
            )
        return messages_from_rows(session_id, rows)

    async def _list_recent_messages(
        self, session_id: str, limit: int, owner: Owner | None
    ) -> list[Message]:
        if owner is None:
            rows = await self._fetch(RECENT_MESSAGES, (session_id, limit))
        else:
            rows = await self._fetch(
                RECENT_OWNED_MESSAGES, (session_id, session_id, *owner_params(owner), limit)
            )
        return messages_from_rows(session_id, rows[::-1])

    # ------------------------------------------------------------------ agent state

    async def _save_state(
        self,
        session_id: str,
        state: dict[str, Any],
        state_json: str,
        now: datetime,
        owner: Owner | None,
    ) -> AgentState:
        self._check_packet(state_json)

        args: tuple[Any, ...] = (session_id, state_json, wire(now), session_id)
        if owner is None:
            statement = SAVE_STATE
        else:
            statement, args = SAVE_OWNED_STATE, (*args, session_id, *owner_params(owner))
        [insert] = await self._write(statement, args, session_id=session_id, retry_duplicates=True)
        if not insert.affected_rows:  # out of scope (or missing): nothing was inserted
            raise SessionNotFoundError(session_id)
        return AgentState(session_id, insert.last_insert_id, state, now)

    async def _get_state(
        self, session_id: str, version: int | None, owner: Owner | None
    ) -> AgentState | None:
        if owner is None:
            if version is None:
                rows = await self._fetch(LATEST_STATE, (session_id,))
            else:
                rows = await self._fetch(STATE_VERSION, (session_id, version))
        elif version is None:
            rows = await self._fetch(
                LATEST_OWNED_STATE, (session_id, session_id, *owner_params(owner))
            )
        else:
            rows = await self._fetch(
                OWNED_STATE_VERSION, (session_id, version, session_id, *owner_params(owner))
            )
        return state_from_row(session_id, rows[0]) if rows else None

    async def _list_states(
        self, session_id: str, limit: int | None, owner: Owner | None
    ) -> list[AgentState]:
        count = NO_LIMIT if limit is None else limit
        if owner is None:
            rows = await self._fetch(LIST_STATES, (session_id, count))
        else:
            rows = await self._fetch(
                LIST_OWNED_STATES, (session_id, session_id, *owner_params(owner), count)
            )
        return [state_from_row(session_id, row) for row in rows]
