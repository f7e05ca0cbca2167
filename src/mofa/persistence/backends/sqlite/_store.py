"""The SQLite store: :class:`SqliteStore`, each call one hop to its worker thread."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any, Self, TypeVar

from mofa.persistence._base import EncodedMessage
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._prune import PruneRule
from mofa.persistence._restore import ConflictPolicy, RestoreBatch
from mofa.persistence._url import DatabaseURL, parse_url
from mofa.persistence.backends._sql import SqlStore
from mofa.persistence.backends._toolkit import check_flag, check_option, reject_unknown_options
from mofa.persistence.backends.sqlite._restore import BatchSource, restore_tx
from mofa.persistence.backends.sqlite._statements import DIALECT, READS
from mofa.persistence.backends.sqlite._transactions import (
    append_many_tx,
    append_one_tx,
    create_session_tx,
    delete_session_tx,
    delete_sessions_tx,
    save_state_tx,
    select_tx,
    update_session_tx,
    upsert_agent_tx,
)
from mofa.persistence.backends.sqlite._worker import MEMORY, Worker
from mofa.persistence.errors import InvalidURLError

__all__ = ["SqliteStore"]

_T = TypeVar("_T")


def _absolute(path: str) -> str:
    """``~`` expanded, relative to the current directory (string work, no disk access)."""
    return os.path.abspath(os.path.expanduser(path))


class SqliteStore(SqlStore):
    """A SQLite database file (or ``sqlite::memory:``), used from asyncio."""

    backend = "sqlite"
    _dialect = DIALECT
    _reads = READS

    def __init__(self, url: DatabaseURL, worker: Worker) -> None:
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
        path = parsed.path if parsed.path == MEMORY else _absolute(parsed.path)
        worker = Worker(path, busy_timeout, lock_timeout)
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

    async def _select(
        self, sql: str, args: Sequence[Any], read: Callable[..., _T], *read_args: Any
    ) -> _T:
        return await self._worker.read(select_tx, sql, args, read, read_args)

    # ---------------------------------------------------------------- agents

    async def _upsert_agent(self, agent: Agent, owner: Owner | None) -> Agent:
        return await self._worker.write(upsert_agent_tx, agent, owner)

    # -------------------------------------------------------------- sessions
    # With an owner each call runs the same one hop: the scope is a condition of the
    # statement that reads or writes the session's row (see the *_OWNED statements).

    async def _create_session(self, session: Session, metadata_json: str) -> Session:
        return await self._worker.write(
            create_session_tx,
            session,
            metadata_json,
            session_id=session.session_id,
        )

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
            update_session_tx,
            session_id,
            status,
            metadata_json,
            expires_at,
            now,
            owner,
            session_id=session_id,
        )

    async def _delete_session(self, session_id: str, owner: Owner | None) -> bool:
        return await self._worker.write(delete_session_tx, session_id, owner)

    async def _delete_sessions(self, session_ids: list[str], rule: PruneRule) -> list[str]:
        return await self._worker.write(delete_sessions_tx, session_ids, rule)

    # -------------------------------------------------------------- messages

    async def _append_message(
        self, session_id: str, message: EncodedMessage, now: datetime, owner: Owner | None
    ) -> Message:
        return await self._worker.write(
            append_one_tx, session_id, message, now, owner, session_id=session_id
        )

    async def _append_messages(
        self,
        session_id: str,
        messages: list[EncodedMessage],
        now: datetime,
        owner: Owner | None,
    ) -> list[Message]:
        return await self._worker.write(
            append_many_tx, session_id, messages, now, owner, session_id=session_id
        )

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
            save_state_tx,
            session_id,
            state,
            state_json,
            now,
            owner,
            session_id=session_id,
        )

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
        source = BatchSource(batches)
        try:
            return await self._worker.write(
                restore_tx,
                session,
                metadata_json,
                agent,
                on_conflict,
                source,
                owner,
                session_id=session.session_id,
            )
        finally:
            source.abandoned.set()
