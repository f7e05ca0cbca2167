"""A session restored exactly as it was stored (``restore_session``): one transaction on one
pooled connection, each batch of messages one ``unnest()`` statement."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

from mofa.persistence._entities import Agent, Owner, Session
from mofa.persistence._restore import ConflictPolicy, RestoreBatch, next_batch, replaces
from mofa.persistence.backends._toolkit import placeholder_agent

__all__ = ["restore"]

#: Locks the row, so a concurrent delete or restore of the same id waits for this one.
_SESSION_EXISTS: Final = (
    "SELECT tenant_id, user_id, agent_id FROM sessions WHERE session_id = $1 FOR UPDATE"
)
_DELETE_SESSION: Final = "DELETE FROM sessions WHERE session_id = $1"
#: The exported agent record (or the placeholder), unless the store has one: left as it is.
_RESTORE_AGENT: Final = (
    "INSERT INTO agents (id, name, state, started_at, provider, model, description, "
    "created_at, updated_at, tenant_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
    "ON CONFLICT (id) DO NOTHING"
)
_RESTORE_SESSION: Final = (
    "INSERT INTO sessions (session_id, agent_id, user_id, tenant_id, status, metadata, "
    "message_count, created_at, updated_at, expires_at) "
    "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)"
)
_RESTORE_MESSAGES: Final = (
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "SELECT $1, m.seq, m.role, m.content, m.metadata::jsonb, m.ts "
    "FROM unnest($2::integer[], $3::varchar[], $4::text[], $5::text[], $6::timestamptz[]) "
    "AS m(seq, role, content, metadata, ts)"
)
_RESTORE_STATES: Final = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "
    "SELECT $1, s.version, s.state::jsonb, s.at "
    "FROM unnest($2::integer[], $3::text[], $4::timestamptz[]) AS s(version, state, at)"
)


async def restore(
    connection: Any,
    session: Session,
    metadata_json: str,
    agent: Agent | None,
    on_conflict: ConflictPolicy,
    batches: AsyncIterator[RestoreBatch],
    owner: Owner | None,
) -> Session | None:
    """Run inside the caller's transaction on ``connection`` (an asyncpg connection)."""
    session_id = session.session_id
    held = await connection.fetchrow(_SESSION_EXISTS, session_id)
    if held is not None:
        if not replaces(session_id, on_conflict, owner, (held[0], held[1], held[2])):
            return None
        await connection.execute(_DELETE_SESSION, session_id)  # messages and states cascade
    if session.agent_id is not None:
        record = agent or placeholder_agent(session)
        await connection.execute(
            _RESTORE_AGENT,
            record.id,
            record.name,
            record.state,
            record.started_at,
            record.provider,
            record.model,
            record.description,
            record.created_at,
            record.updated_at,
            record.tenant_id,
        )
    await connection.execute(
        _RESTORE_SESSION,
        session_id,
        session.agent_id,
        session.user_id,
        session.tenant_id,
        session.status,
        metadata_json,
        session.message_count,
        session.created_at,
        session.updated_at,
        session.expires_at,
    )
    while (batch := await next_batch(batches)) is not None:
        if batch.messages:
            messages = batch.messages
            await connection.execute(
                _RESTORE_MESSAGES,
                session_id,
                [message.seq for message in messages],
                [message.role.value for message in messages],
                [message.content for message in messages],
                [message.metadata_json for message in messages],
                [message.timestamp for message in messages],
            )
        if batch.states:
            states = batch.states
            await connection.execute(
                _RESTORE_STATES,
                session_id,
                [state.version for state in states],
                [state.state_json for state in states],
                [state.created_at for state in states],
            )
    return session
