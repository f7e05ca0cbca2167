"""The in-memory store: the SDK default and the reference implementation of the contract.

Usage::

    from mofa.persistence import InMemoryStore

    async with InMemoryStore() as store:
        session = await store.create_session(agent_id="my-agent")
        await store.append_message(session.session_id, "user", "Hello")

Nothing survives the process. Values are kept encoded (JSON text), exactly as a database
keeps them, so every backend returns equal objects for the same calls.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Any, Self, TypeVar

from mofa.persistence._base import BaseStore, EncodedMessage
from mofa.persistence._checked import SessionQuery
from mofa.persistence._codec import decode_json
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._restore import ConflictPolicy, RestoreBatch, replaces
from mofa.persistence._url import DatabaseURL, parse_url
from mofa.persistence.backends._toolkit import check_flag, placeholder_agent, reject_unknown_options
from mofa.persistence.errors import (
    AgentExistsError,
    InvalidURLError,
    SessionExistsError,
    SessionNotFoundError,
)

__all__ = ["InMemoryStore"]


@dataclasses.dataclass(slots=True)
class _SessionRow:
    session: Session
    metadata_json: str
    messages: list[tuple[Message, str]] = dataclasses.field(default_factory=list)
    states: list[tuple[AgentState, str]] = dataclasses.field(default_factory=list)


_R = TypeVar("_R")


def _yields_first(
    method: Callable[..., Coroutine[Any, Any, _R]],
) -> Callable[..., Coroutine[Any, Any, _R]]:
    @functools.wraps(method)
    async def call(store: InMemoryStore, *args: Any) -> _R:
        await asyncio.sleep(0)
        if store.closed:  # close() ran while this call let others go first
            raise store._closed_meanwhile("its turn")
        return await method(store, *args)

    return call


class InMemoryStore(BaseStore):
    """Keeps everything in this process's memory."""

    backend = "memory"

    def __init__(self, url: DatabaseURL | None = None) -> None:
        super().__init__(url or parse_url("memory://"))
        self._agents: dict[str, Agent] = {}
        self._sessions: dict[str, _SessionRow] = {}
        self._next_message_id = 1

    @classmethod
    async def connect(cls, url: str | DatabaseURL = "memory://", **options: Any) -> Self:
        """Open an empty store that lives as long as this object (``memory://``).

        It takes one option, ``create_schema``, accepted for symmetry with the other stores
        and ignored (a new in-memory store is always ready); an unknown one raises
        :class:`InvalidInputError`.
        """
        reject_unknown_options("InMemoryStore", options, ("create_schema",))
        check_flag("create_schema", options.get("create_schema", True))
        parsed = parse_url(url) if isinstance(url, str) else url
        if parsed.backend != "memory":
            raise InvalidURLError(
                f"{parsed.masked!r} is not an in-memory store URL; write memory://."
            )
        return cls(parsed)

    async def _close(self) -> None:
        self._agents.clear()
        self._sessions.clear()

    # Every method below first lets other tasks run, as a call to a real database would (a
    # loop of appends must not starve the event loop), then runs without another await, so
    # its work is atomic on the event loop.

    @_yields_first
    async def _upsert_agent(self, agent: Agent, owner: Owner | None) -> Agent:
        existing = self._agents.get(agent.id)
        if existing is not None:
            if owner is not None and existing.tenant_id != owner.tenant_id:
                raise AgentExistsError(agent.id)
            agent = dataclasses.replace(
                agent, created_at=existing.created_at, tenant_id=existing.tenant_id
            )
        self._agents[agent.id] = agent
        return agent

    @_yields_first
    async def _get_agent(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    @_yields_first
    async def _list_agents(self, limit: int | None) -> list[Agent]:
        agents = sorted(self._agents.values(), key=lambda a: (a.updated_at, a.id), reverse=True)
        return agents[:limit]

    @_yields_first
    async def _create_session(self, session: Session, metadata_json: str) -> Session:
        if session.session_id in self._sessions:
            raise SessionExistsError(session.session_id)
        if session.agent_id is not None and session.agent_id not in self._agents:
            self._agents[session.agent_id] = placeholder_agent(session)
        self._sessions[session.session_id] = _SessionRow(session, metadata_json)
        return session

    @_yields_first
    async def _get_session(self, session_id: str, owner: Owner | None) -> Session | None:
        row = self._row(session_id, owner)
        return None if row is None else self._fresh(row)

    def _row(self, session_id: str, owner: Owner | None) -> _SessionRow | None:
        """The session's row; ``None`` when missing or outside ``owner``'s scope."""
        row = self._sessions.get(session_id)
        if row is None or (owner is not None and not owner.owns(row.session)):
            return None
        return row

    @staticmethod
    def _fresh(row: _SessionRow) -> Session:
        return dataclasses.replace(row.session, metadata=decode_json(row.metadata_json))

    @_yields_first
    async def _list_sessions(self, query: SessionQuery, owner: Owner | None) -> list[Session]:
        agent_id, user_id, tenant_id, limit, offset = query[:5]
        rows = [
            row
            for row in self._sessions.values()
            if (agent_id is None or row.session.agent_id == agent_id)
            and (user_id is None or row.session.user_id == user_id)
            and (tenant_id is None or row.session.tenant_id == tenant_id)
            and (owner is None or owner.owns(row.session))
            and query.matches(row.session)
        ]
        rows.sort(key=lambda r: (r.session.created_at, r.session.session_id), reverse=True)
        end = None if limit is None else offset + limit
        return [self._fresh(row) for row in rows[offset:end]]

    @_yields_first
    async def _update_session(
        self,
        session_id: str,
        status: str | None,
        metadata_json: str | None,
        expires_at: datetime | Unset | None,
        now: datetime,
        owner: Owner | None,
    ) -> Session:
        row = self._require(session_id, owner)
        changes: dict[str, Any] = {"updated_at": now}
        if status is not None:
            changes["status"] = status
        if metadata_json is not None:
            row.metadata_json = metadata_json
        if not isinstance(expires_at, Unset):
            changes["expires_at"] = expires_at
        row.session = dataclasses.replace(row.session, **changes)
        return self._fresh(row)

    def _require(self, session_id: str, owner: Owner | None) -> _SessionRow:
        row = self._row(session_id, owner)
        if row is None:
            raise SessionNotFoundError(session_id)
        return row

    @_yields_first
    async def _delete_session(self, session_id: str, owner: Owner | None) -> bool:
        if self._row(session_id, owner) is None:
            return False
        del self._sessions[session_id]
        return True

    @_yields_first
    async def _append_messages(
        self,
        session_id: str,
        messages: list[EncodedMessage],
        now: datetime,
        owner: Owner | None,
    ) -> list[Message]:
        row = self._require(session_id, owner)
        first_seq = row.session.message_count + 1
        stored = []
        for offset, message in enumerate(messages):
            stored_message = message.stored(session_id, first_seq + offset, self._next_message_id)
            self._next_message_id += 1
            stored.append(stored_message)
            row.messages.append((stored_message, message.metadata_json))
        row.session = dataclasses.replace(
            row.session, message_count=row.session.message_count + len(messages), updated_at=now
        )
        return stored

    @staticmethod
    def _decoded(entry: tuple[Message, str]) -> Message:
        message, metadata_json = entry
        return dataclasses.replace(message, metadata=decode_json(metadata_json))

    @_yields_first
    async def _list_messages(
        self, session_id: str, limit: int | None, after_seq: int, owner: Owner | None
    ) -> list[Message]:
        row = self._row(session_id, owner)
        if row is None:
            return []
        start = bisect.bisect_right(row.messages, after_seq, key=lambda entry: entry[0].seq)
        end = None if limit is None else start + limit
        return [self._decoded(entry) for entry in row.messages[start:end]]

    @_yields_first
    async def _list_recent_messages(
        self, session_id: str, limit: int, owner: Owner | None
    ) -> list[Message]:
        row = self._row(session_id, owner)
        if row is None:
            return []
        return [self._decoded(entry) for entry in row.messages[-limit:]]

    @_yields_first
    async def _save_state(
        self,
        session_id: str,
        state: dict[str, Any],
        state_json: str,
        now: datetime,
        owner: Owner | None,
    ) -> AgentState:
        row = self._require(session_id, owner)
        snapshot = AgentState(session_id, len(row.states) + 1, state, now)
        row.states.append((snapshot, state_json))
        return snapshot

    @_yields_first
    async def _get_state(
        self, session_id: str, version: int | None, owner: Owner | None
    ) -> AgentState | None:
        row = self._row(session_id, owner)
        if row is None or not row.states:
            return None
        if version is None:
            snapshot, state_json = row.states[-1]
        elif 1 <= version <= len(row.states):
            snapshot, state_json = row.states[version - 1]
        else:
            return None
        return dataclasses.replace(snapshot, state=decode_json(state_json))

    @_yields_first
    async def _list_states(
        self, session_id: str, limit: int | None, owner: Owner | None
    ) -> list[AgentState]:
        row = self._row(session_id, owner)
        if row is None:
            return []
        newest_first = row.states[::-1][:limit]
        return [dataclasses.replace(s, state=decode_json(j)) for s, j in newest_first]

    def _restore_replaces(
        self, session_id: str, on_conflict: ConflictPolicy, owner: Owner | None
    ) -> bool:
        """Whether a restore goes on (the id is free, or taken and to be replaced)."""
        row = self._sessions.get(session_id)
        if row is None:
            return True
        held = row.session
        return replaces(
            session_id, on_conflict, owner, (held.tenant_id, held.user_id, held.agent_id)
        )

    async def _restore_session(
        self,
        session: Session,
        metadata_json: str,
        agent: Agent | None,
        batches: AsyncIterator[RestoreBatch],
        on_conflict: ConflictPolicy,
        owner: Owner | None,
    ) -> Session | None:
        await asyncio.sleep(0)
        if not self._restore_replaces(session.session_id, on_conflict, owner):
            return None
        # Built aside and put in place in one step: a failure part-way leaves no trace.
        row = _SessionRow(session, metadata_json)
        async for batch in batches:
            if self.closed:
                raise self._closed_meanwhile("its records")
            for restored in batch.messages:
                message = restored.stored(session.session_id, restored.seq, None)
                row.messages.append((message, restored.metadata_json))
            for state in batch.states:
                snapshot = AgentState(
                    session.session_id,
                    state.version,
                    decode_json(state.state_json),
                    state.created_at,
                )
                row.states.append((snapshot, state.state_json))
        # Created (or replaced) by another task while the records were read: decided again.
        if not self._restore_replaces(session.session_id, on_conflict, owner):
            return None
        first_id = self._next_message_id
        row.messages = [
            (dataclasses.replace(message, id=first_id + index), metadata)
            for index, (message, metadata) in enumerate(row.messages)
        ]
        self._next_message_id = first_id + len(row.messages)
        if session.agent_id is not None and session.agent_id not in self._agents:
            self._agents[session.agent_id] = agent or placeholder_agent(session)
        self._sessions[session.session_id] = row
        return session
