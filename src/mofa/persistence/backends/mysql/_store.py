"""The MySQL / MariaDB store: :class:`MySqlStore` (usage in the package's docstring)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Self

from mofa.persistence._base import EncodedMessage
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._prune import PruneRule
from mofa.persistence._restore import ConflictPolicy, RestoreBatch, SourceError
from mofa.persistence._url import DatabaseURL, parse_url
from mofa.persistence.backends._sql import (
    delete_sessions_statement,
    owner_params,
    prune_parameters,
)
from mofa.persistence.backends._toolkit import check_flag, check_option, reject_unknown_options
from mofa.persistence.backends.mysql._calls import PooledStore
from mofa.persistence.backends.mysql._connect import Target
from mofa.persistence.backends.mysql._errors import ER_DUP_ENTRY, error_code
from mofa.persistence.backends.mysql._pool import abandon, import_driver, open_pool
from mofa.persistence.backends.mysql._restore import restore
from mofa.persistence.backends.mysql._rows import aware, session_from_row, wire
from mofa.persistence.backends.mysql._schema import migrate
from mofa.persistence.backends.mysql._statements import (
    APPEND_ONE,
    APPEND_ONE_OWNED,
    CREATE_SESSION_WITH_AGENT,
    DELETE_SESSION,
    DELETE_SESSION_OWNED,
    DIALECT,
    INSERT_SESSION,
    READS,
    SAVE_STATE,
    SAVE_STATE_OWNED,
    UPDATE_SESSION,
    UPDATE_SESSION_OWNED,
    UPSERT_AGENT,
    UPSERT_AGENT_OWNED,
    append_many_statement,
)
from mofa.persistence.errors import (
    AgentExistsError,
    InvalidURLError,
    PersistenceError,
    SchemaError,
    SessionExistsError,
    SessionNotFoundError,
)

__all__ = ["MySqlStore"]


class MySqlStore(PooledStore):
    """Sessions, messages and agent state in MySQL 8 or MariaDB 10.11+ (InnoDB)."""

    backend = "mysql"
    _dialect = DIALECT
    _reads = READS

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
                UPSERT_AGENT_OWNED, (*values, agent.tenant_id, agent.id)
            )
        stored_created_at, stored_tenant_id = select.rows[0]  # the row as it is now
        created_at = aware(stored_created_at)
        tenant_id = None if stored_tenant_id is None else stored_tenant_id.decode()
        if owner is not None and tenant_id != owner.tenant_id:
            raise AgentExistsError(agent.id)  # another tenant's: the statement changed nothing
        if created_at == agent.created_at and tenant_id == agent.tenant_id:
            return agent
        return dataclasses.replace(agent, created_at=created_at, tenant_id=tenant_id)

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
                UPDATE_SESSION_OWNED, (*values, *scope, session_id, *scope)
            )
        # The UPDATE must have found it (matched rows: CLIENT_FOUND_ROWS); the SELECT reads it.
        if not update.affected_rows or not select.rows:
            raise SessionNotFoundError(session_id)
        return session_from_row(select.rows[0])

    async def _delete_session(self, session_id: str, owner: Owner | None) -> bool:
        if owner is None:
            [delete] = await self._write(DELETE_SESSION, (session_id,))
        else:
            [delete] = await self._write(DELETE_SESSION_OWNED, (session_id, *owner_params(owner)))
        return delete.affected_rows > 0

    async def _delete_sessions(self, session_ids: list[str], rule: PruneRule) -> list[str]:
        # MySQL's DELETE returns no rows: the batch's rows are locked and read first, in the
        # same transaction (and round trip), then deleted.
        count = len(session_ids)
        select = delete_sessions_statement(count, lambda _: "%s", " FOR UPDATE").replace(
            "DELETE FROM sessions", "SELECT session_id FROM sessions", 1
        )
        parameters = prune_parameters(session_ids, rule, wire)
        delete = delete_sessions_statement(count, lambda _: "%s")
        sql = f"START TRANSACTION; {select}; {delete}; COMMIT"
        _start, selected, _delete, _commit = await self._write(sql, parameters * 2)
        return [bytes(row[0]).decode() for row in selected.rows]

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
            statement, args = APPEND_ONE_OWNED, (*args[:2], *owner_params(owner), *args[2:])
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
            statement, args = SAVE_STATE_OWNED, (*args, session_id, *owner_params(owner))
        [insert] = await self._write(statement, args, session_id=session_id, retry_duplicates=True)
        if not insert.affected_rows:  # out of scope (or missing): nothing was inserted
            raise SessionNotFoundError(session_id)
        return AgentState(session_id, insert.last_insert_id, state, now)

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
                async with self._pool.acquire() as connection:
                    await connection.begin()
                    try:
                        restored = await restore(
                            connection,
                            session,
                            metadata_json,
                            agent,
                            on_conflict,
                            batches,
                            self._check_packet,
                            owner,
                        )
                        await connection.commit()
                    except Exception:
                        await abandon(connection)  # rolls back, or drops a broken connection
                        raise
                    except BaseException:
                        connection.close()  # cancelled mid-call: its state is unknown
                        raise
                self._outage.answered()
                return restored
            except SourceError as exc:
                raise exc.original from None
            except PersistenceError:
                raise
            except Exception as exc:
                if self._closed and error_code(exc) is None:
                    raise self._closed_meanwhile() from exc
                if error_code(exc) == ER_DUP_ENTRY:  # created meanwhile by another call
                    raise SessionExistsError(session.session_id) from exc
                raise self._error(exc, write=True) from exc
