"""``PersistencePlugin``: an agent's scoped view of a store (one agent, user and tenant).

As in the MoFA guide::

    from mofa.agent import LLMAgentBuilder
    from mofa.persistence import PersistencePlugin, open_store

    store = await open_store("sqlite://./mofa.db")
    persistence = PersistencePlugin("persistence", store, user_id, tenant_id, agent_id, session_id)
    agent = await (
        LLMAgentBuilder.from_env()
        .with_persistence_plugin(persistence)
        .with_session_id(session_id)
        .build_async()
    )

The plugin holds no conversation in memory: every read and write goes to the store, so
another process with the same session id continues the same conversation. It holds no
per-call state either, so one plugin serves concurrent chats in different sessions.

Scoping: sessions the plugin creates carry its agent, user and tenant, and every call it
makes passes that :class:`~mofa.persistence.Owner` to the store, which puts it into the
statement it runs. Through the plugin another owner's session behaves exactly like a
missing one (:class:`SessionNotFoundError`, nothing read, nothing changed); only creating
an id another owner holds fails, with :class:`SessionExistsError`, since session ids are
global. Agent records belong to the tenant that registered them: another tenant's plugin
cannot change them (:class:`AgentExistsError`).

The plugin is a scope, not a security boundary: code that holds the store itself (or the
plugin's ``store`` attribute) can read and change everything. To give untrusted code a
scoped handle, give it only an object that exposes the plugin's methods, or an agent
built with the plugin, and keep the store out of its reach (another process, for code
that is truly hostile).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from mofa.persistence._contract import Store
from mofa.persistence._entities import (
    Agent,
    AgentState,
    Message,
    NewMessage,
    Owner,
    Role,
    Session,
    SessionStatus,
    utc_now,
)
from mofa.persistence.errors import SessionExistsError, SessionNotFoundError

__all__ = ["ERROR_STATUS", "PersistencePlugin", "SessionAccessError", "is_error_record"]

#: ``metadata["status"]`` of the record a failed model call leaves in the history.
ERROR_STATUS = "failed"

#: Kept as a name for code written against earlier versions, which raised it for another
#: owner's session. Such a session now looks missing (telling the two apart would tell a
#: caller which ids other tenants hold), so this is :class:`SessionNotFoundError` itself.
SessionAccessError = SessionNotFoundError


def is_error_record(message: Message) -> bool:
    """True for the record of a failed call (never sent to the model as conversation)."""
    return message.metadata.get("status") == ERROR_STATUS


def _text_id(value: object) -> str | None:
    # The guide passes UUIDs; the store keeps text ids.
    return None if value is None else str(value)


class PersistencePlugin:
    """Stores an agent's sessions, messages and state in ``store``, scoped to one identity.

    Args:
        name: the plugin's name (the guide uses ``"persistence"``).
        store: any open :class:`~mofa.persistence.Store`. The caller keeps ownership: the
            plugin does not close it unless ``owns_store`` is true.
        user_id: the user whose sessions these are (``None``: sessions without a user).
        tenant_id: the tenant (``None``: sessions without a tenant).
        agent_id: the agent that owns the sessions (``None``: the agent's own id is used).
        session_id: the session to open first (``None``: a new one).
        owns_store: close the store when the plugin is closed.
    """

    def __init__(
        self,
        name: str,
        store: Store,
        user_id: object = None,
        tenant_id: object = None,
        agent_id: object = None,
        session_id: object = None,
        *,
        owns_store: bool = False,
    ) -> None:
        self.name = name
        self.store = store
        self.user_id = _text_id(user_id)
        self.tenant_id = _text_id(tenant_id)
        self.agent_id = _text_id(agent_id)
        self.session_id = _text_id(session_id)
        self.owns_store = owns_store

    def __repr__(self) -> str:
        return (
            f"PersistencePlugin({self.name!r}, {self.store!r}, user_id={self.user_id!r}, "
            f"tenant_id={self.tenant_id!r}, agent_id={self.agent_id!r})"
        )

    async def close(self) -> None:
        """Close the store if the plugin owns it."""
        if self.owns_store:
            await self.store.close()

    @property
    def owner(self) -> Owner:
        """The scope every call passes to the store: this tenant, user and agent."""
        return Owner(tenant_id=self.tenant_id, user_id=self.user_id, agent_id=self.agent_id)

    # ----------------------------------------------------------------- agent

    async def register_agent(
        self,
        agent_id: str,
        *,
        name: str | None,
        state: str,
        provider: str | None,
        model: str | None,
        description: str | None,
        started_at: datetime | None = None,
    ) -> Agent:
        """Create or update the ``agents`` row (state ``running`` / ``stopped``).

        Raises :class:`AgentExistsError` when another tenant registered this agent id.
        """
        if self.agent_id is None:
            self.agent_id = agent_id
        return await self.store.upsert_agent(
            self.agent_id,
            name=name,
            state=state,
            provider=provider,
            model=model,
            description=description,
            started_at=started_at,
            owner=self.owner,
        )

    # -------------------------------------------------------------- sessions

    def owns(self, session: Session) -> bool:
        """Whether ``session`` belongs to this plugin's tenant, user and agent."""
        return self.owner.owns(session)

    async def get_session(self, session_id: str) -> Session | None:
        """The session, ``None`` when missing or another owner's."""
        return await self.store.get_session(str(session_id), owner=self.owner)

    async def require_session(self, session_id: str) -> Session:
        """Like :meth:`get_session`, raising :class:`SessionNotFoundError` when missing."""
        session = await self.get_session(session_id)
        if session is None:
            raise SessionNotFoundError(str(session_id))
        return session

    async def create_session(
        self,
        session_id: str | None = None,
        *,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Session:
        """A new session of this agent, user and tenant (expiring after ``ttl_seconds``)."""
        expires_at = None if ttl_seconds is None else utc_now() + timedelta(seconds=ttl_seconds)
        return await self.store.create_session(
            session_id,
            agent_id=self.agent_id,
            user_id=self.user_id,
            tenant_id=self.tenant_id,
            metadata=metadata,
            expires_at=expires_at,
        )

    async def open_session(self, session_id: str, *, ttl_seconds: int | None = None) -> Session:
        """The session with this id, created when missing (two racing creators both win).

        Raises :class:`SessionExistsError` when another owner holds the id.
        """
        session = await self.get_session(session_id)
        if session is not None:
            return session
        try:
            return await self.create_session(session_id, ttl_seconds=ttl_seconds)
        except SessionExistsError:
            # Created meanwhile: by a racing creator of ours (read it), or by another owner.
            session = await self.get_session(session_id)
            if session is None:
                raise
            return session

    async def mark_expired(self, session_id: str) -> Session:
        """Record that the session expired (``mofa session list`` then shows it so)."""
        return await self.store.update_session(
            session_id, status=SessionStatus.EXPIRED.value, owner=self.owner
        )

    async def extend_session(self, session_id: str, ttl_seconds: int) -> Session:
        """Push the session's expiry to ``ttl_seconds`` from now."""
        return await self.store.update_session(
            session_id, expires_at=utc_now() + timedelta(seconds=ttl_seconds), owner=self.owner
        )

    async def list_sessions(self, *, limit: int | None = None) -> list[Session]:
        """This agent's sessions of this tenant and user, newest first."""
        return await self.store.list_sessions(limit=limit, owner=self.owner)

    async def delete_session(self, session_id: str) -> bool:
        """Delete one of our sessions with its history; False when there was none."""
        return await self.store.delete_session(str(session_id), owner=self.owner)

    # -------------------------------------------------------------- messages

    async def load_history(
        self, session_id: str, *, limit: int, up_to_seq: int | None = None
    ) -> list[Message]:
        """The last ``limit`` messages of the session (up to and including ``up_to_seq``
        when given), oldest first.

        ``up_to_seq`` is one range read on the message key: seqs are 1, 2, 3… per session.
        """
        if up_to_seq is None:
            return await self.store.list_recent_messages(session_id, limit=limit, owner=self.owner)
        return await self.store.list_messages(
            session_id,
            after_seq=max(0, up_to_seq - limit),
            limit=min(limit, up_to_seq),
            owner=self.owner,
        )

    async def record_user_message(
        self, session_id: str, content: str, metadata: Mapping[str, Any] | None = None
    ) -> Message:
        """Store the user's message (before the model is called)."""
        return await self.store.append_message(
            session_id, Role.USER, content, metadata=metadata, owner=self.owner
        )

    async def record_reply(
        self, session_id: str, content: str, metadata: Mapping[str, Any]
    ) -> Message:
        """Store the model's reply (after the call) with model, usage and latency."""
        return await self.store.append_message(
            session_id, Role.ASSISTANT, content, metadata=metadata, owner=self.owner
        )

    async def record_error(
        self, session_id: str, error: str, metadata: Mapping[str, Any]
    ) -> Message:
        """Store the record of a failed call: a system message with status ``failed``."""
        return await self.store.append_message(
            session_id,
            Role.SYSTEM,
            f"The model call failed: {error}",
            metadata={**metadata, "error": error, "status": ERROR_STATUS},
            owner=self.owner,
        )

    async def record_messages(self, session_id: str, messages: list[NewMessage]) -> list[Message]:
        """Store several messages atomically, in order."""
        return await self.store.append_messages(session_id, messages, owner=self.owner)

    # ----------------------------------------------------------------- state

    async def save_state(self, session_id: str, state: Mapping[str, Any]) -> AgentState:
        return await self.store.save_state(session_id, state, owner=self.owner)

    async def load_state(self, session_id: str) -> AgentState | None:
        return await self.store.get_state(session_id, owner=self.owner)
