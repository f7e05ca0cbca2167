"""What a backend implements: the private ``_`` methods :class:`~mofa.persistence._base.BaseStore`
calls once it has validated and encoded the arguments of a public call.

Kept apart from ``BaseStore`` so that a backend's author reads the whole list of what to write
in one place; the arguments they receive are already checked.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from mofa.persistence._checked import SessionQuery
from mofa.persistence._contract import Unset
from mofa.persistence._encoded import EncodedMessage
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._restore import ConflictPolicy, RestoreBatch

__all__ = ["BackendHooks"]


class BackendHooks(abc.ABC):
    """The backend's half of a store (see the module docstring)."""

    @abc.abstractmethod
    async def _close(self) -> None: ...

    @abc.abstractmethod
    async def _upsert_agent(self, agent: Agent, owner: Owner | None) -> Agent:
        """Insert ``agent`` (its ``tenant_id`` is the owner's), or update the stored record:
        with an ``owner`` only one of the owner's tenant (else :class:`AgentExistsError`),
        without one keeping the stored tenant. Returns the record as stored."""

    @abc.abstractmethod
    async def _get_agent(self, agent_id: str) -> Agent | None: ...

    @abc.abstractmethod
    async def _list_agents(self, limit: int | None) -> list[Agent]: ...

    @abc.abstractmethod
    async def _create_session(self, session: Session, metadata_json: str) -> Session: ...

    @abc.abstractmethod
    async def _get_session(self, session_id: str, owner: Owner | None) -> Session | None: ...

    @abc.abstractmethod
    async def _list_sessions(self, query: SessionQuery, owner: Owner | None) -> list[Session]:
        """With an ``owner`` the filters are the owner's (``None``: the column is NULL)."""

    @abc.abstractmethod
    async def _update_session(
        self,
        session_id: str,
        status: str | None,
        metadata_json: str | None,
        expires_at: datetime | Unset | None,
        now: datetime,
        owner: Owner | None,
    ) -> Session: ...

    @abc.abstractmethod
    async def _delete_session(self, session_id: str, owner: Owner | None) -> bool: ...

    async def _append_message(
        self, session_id: str, message: EncodedMessage, now: datetime, owner: Owner | None
    ) -> Message:
        """One message; backends override this with a faster single-row path."""
        return (await self._append_messages(session_id, [message], now, owner))[0]

    @abc.abstractmethod
    async def _append_messages(
        self,
        session_id: str,
        messages: list[EncodedMessage],
        now: datetime,
        owner: Owner | None,
    ) -> list[Message]: ...

    @abc.abstractmethod
    async def _list_messages(
        self, session_id: str, limit: int | None, after_seq: int, owner: Owner | None
    ) -> list[Message]: ...

    @abc.abstractmethod
    async def _list_recent_messages(
        self, session_id: str, limit: int, owner: Owner | None
    ) -> list[Message]: ...

    @abc.abstractmethod
    async def _save_state(
        self,
        session_id: str,
        state: dict[str, Any],
        state_json: str,
        now: datetime,
        owner: Owner | None,
    ) -> AgentState: ...

    @abc.abstractmethod
    async def _get_state(
        self, session_id: str, version: int | None, owner: Owner | None
    ) -> AgentState | None: ...

    @abc.abstractmethod
    async def _list_states(
        self, session_id: str, limit: int | None, owner: Owner | None
    ) -> list[AgentState]: ...

    @abc.abstractmethod
    async def _restore_session(
        self,
        session: Session,
        metadata_json: str,
        agent: Agent | None,
        batches: AsyncIterator[RestoreBatch],
        on_conflict: ConflictPolicy,
        owner: Owner | None,
    ) -> Session | None:
        """In one transaction: resolve a taken id by ``on_conflict`` and whose it is
        (:func:`~mofa.persistence._restore.replaces`; ``"skip"`` returns
        ``None`` before reading ``batches``), create ``agent`` (or the placeholder) if the
        store has no record of the session's agent, write the session row as given, then
        every batch. An exception from ``batches`` must leave nothing written."""
