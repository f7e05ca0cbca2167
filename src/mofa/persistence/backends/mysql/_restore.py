"""A session restored exactly as it was stored (``restore_session``): one transaction on one
pooled connection; the driver's ``executemany`` sends each batch as multi-row INSERTs that it
cuts by bytes, well under the server's packet limit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from mofa.persistence._entities import Agent, Owner, Session
from mofa.persistence._restore import ConflictPolicy, RestoreBatch, next_batch, replaces
from mofa.persistence.backends._toolkit import placeholder_agent
from mofa.persistence.backends.mysql._rows import wire

__all__ = ["restore"]

#: Locks the row, so a concurrent delete or restore of the same id waits for this one.
_SESSION_EXISTS: Final = (
    "SELECT tenant_id, user_id, agent_id FROM sessions WHERE session_id = %s FOR UPDATE"
)
_DELETE_SESSION: Final = "DELETE FROM sessions WHERE session_id = %s"
#: The exported agent record (or the placeholder), unless the store has one: left as it is.
_RESTORE_AGENT: Final = (
    "INSERT INTO agents (id, name, state, started_at, provider, model, description, "
    "created_at, updated_at, tenant_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE id = id"
)
_RESTORE_SESSION: Final = (
    "INSERT INTO sessions (session_id, agent_id, user_id, tenant_id, status, metadata, "
    "message_count, created_at, updated_at, expires_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_RESTORE_MESSAGES: Final = (
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
_RESTORE_STATES: Final = (
    "INSERT INTO agent_state (session_id, version, state, created_at) VALUES (%s, %s, %s, %s)"
)


async def restore(
    connection: Any,
    session: Session,
    metadata_json: str,
    agent: Agent | None,
    on_conflict: ConflictPolicy,
    batches: AsyncIterator[RestoreBatch],
    check_packet: Callable[..., None],
    owner: Owner | None,
) -> Session | None:
    """Run inside the caller's transaction on ``connection`` (an asyncmy connection);
    ``check_packet`` refuses a single record the server could not take."""
    session_id = session.session_id
    cursor = connection.cursor()
    await cursor.execute(_SESSION_EXISTS, (session_id,))
    held = await cursor.fetchall()
    if held:
        # The id columns are binary (compared byte for byte): they come back as bytes.
        held_by = tuple(None if value is None else value.decode() for value in held[0])
        if not replaces(session_id, on_conflict, owner, held_by):  # type: ignore[arg-type]
            return None
        await cursor.execute(_DELETE_SESSION, (session_id,))  # messages and states cascade
    if session.agent_id is not None:
        record = agent or placeholder_agent(session)
        await cursor.execute(
            _RESTORE_AGENT,
            (
                record.id,
                record.name,
                record.state,
                wire(record.started_at),
                record.provider,
                record.model,
                record.description,
                wire(record.created_at),
                wire(record.updated_at),
                record.tenant_id,
            ),
        )
    await cursor.execute(
        _RESTORE_SESSION,
        (
            session_id,
            session.agent_id,
            session.user_id,
            session.tenant_id,
            session.status,
            metadata_json,
            session.message_count,
            wire(session.created_at),
            wire(session.updated_at),
            wire(session.expires_at),
        ),
    )
    while (batch := await next_batch(batches)) is not None:
        if batch.messages:
            for message in batch.messages:
                check_packet(message.content, message.metadata_json)
            await cursor.executemany(
                _RESTORE_MESSAGES,
                [
                    (
                        session_id,
                        message.seq,
                        message.role.value,
                        message.content,
                        message.metadata_json,
                        wire(message.timestamp),
                    )
                    for message in batch.messages
                ],
            )
        if batch.states:
            for state in batch.states:
                check_packet(state.state_json)
            await cursor.executemany(
                _RESTORE_STATES,
                [
                    (session_id, state.version, state.state_json, wire(state.created_at))
                    for state in batch.states
                ],
            )
    return session
