"""A session restored exactly as it was stored (``restore_session``), in one transaction.

The transaction runs on the worker thread like every other write; it pulls the checked
batches one at a time from the event loop, where the caller's records are read, so a session
of any size is written in flat memory and committed (or rolled back) as a whole.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from typing import Final

from mofa.persistence._codec import format_time
from mofa.persistence._entities import Agent, Owner, Session
from mofa.persistence._restore import ConflictPolicy, RestoreBatch, replaces
from mofa.persistence.backends.sqlite._statements import ENSURE_AGENT, INSERT_MESSAGE
from mofa.persistence.errors import StoreClosedError

__all__ = ["BatchSource", "restore_tx"]

_SESSION_EXISTS: Final = "SELECT tenant_id, user_id, agent_id FROM sessions WHERE session_id = ?"
_DELETE_SESSION: Final = "DELETE FROM sessions WHERE session_id = ?"
#: The exported agent record, unless the store has one (which is left as it is).
_RESTORE_AGENT: Final = (
    "INSERT OR IGNORE INTO agents (id, name, state, started_at, provider, model, description, "
    "created_at, updated_at, tenant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RESTORE_SESSION: Final = (
    "INSERT INTO sessions (session_id, agent_id, user_id, tenant_id, status, metadata, "
    "message_count, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RESTORE_STATE: Final = (
    "INSERT INTO agent_state (session_id, version, state, created_at) VALUES (?, ?, ?, ?)"
)


class BatchSource:
    """Hands the worker thread the next batch from the event loop that reads the records.

    The thread blocks while the loop reads; if the caller gave up (cancelled, or its loop
    stopped), the next call raises, and the transaction rolls back.
    """

    def __init__(self, batches: AsyncIterator[RestoreBatch]) -> None:
        self._batches = batches
        self._loop = asyncio.get_running_loop()
        self.abandoned = threading.Event()

    async def _next(self) -> RestoreBatch | None:
        return await anext(self._batches, None)

    def __call__(self) -> RestoreBatch | None:
        future = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
        while True:
            if self.abandoned.is_set() or self._loop.is_closed():
                future.cancel()
                raise StoreClosedError(
                    "The restore was abandoned by its caller; nothing was written."
                )
            try:
                return future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                continue  # a slow source (a pipe): keep waiting while the caller does


def _agent_row(agent: Agent) -> tuple[object, ...]:
    return (
        agent.id,
        agent.name,
        agent.state,
        format_time(agent.started_at),
        agent.provider,
        agent.model,
        agent.description,
        format_time(agent.created_at),
        format_time(agent.updated_at),
        agent.tenant_id,
    )


def restore_tx(
    connection: sqlite3.Connection,
    session: Session,
    metadata_json: str,
    agent: Agent | None,
    on_conflict: ConflictPolicy,
    next_batch: Callable[[], RestoreBatch | None],
    owner: Owner | None,
) -> Session | None:
    session_id = session.session_id
    held = connection.execute(_SESSION_EXISTS, (session_id,)).fetchone()
    if held is not None:
        if not replaces(session_id, on_conflict, owner, (held[0], held[1], held[2])):
            return None
        connection.execute(_DELETE_SESSION, (session_id,))  # messages and states cascade
    created = format_time(session.created_at)
    if agent is not None:
        connection.execute(_RESTORE_AGENT, _agent_row(agent))
    elif session.agent_id is not None:
        connection.execute(
            ENSURE_AGENT,
            (session.agent_id, session.agent_id, created, created, created, session.tenant_id),
        )
    connection.execute(
        _RESTORE_SESSION,
        (
            session_id,
            session.agent_id,
            session.user_id,
            session.tenant_id,
            session.status,
            metadata_json,
            session.message_count,
            created,
            format_time(session.updated_at),
            None if session.expires_at is None else format_time(session.expires_at),
        ),
    )
    while (batch := next_batch()) is not None:
        if batch.messages:
            connection.executemany(
                INSERT_MESSAGE,
                [
                    (
                        session_id,
                        message.seq,
                        message.role.value,
                        message.content,
                        message.metadata_json,
                        format_time(message.timestamp),
                    )
                    for message in batch.messages
                ],
            )
        if batch.states:
            connection.executemany(
                _RESTORE_STATE,
                [
                    (session_id, state.version, state.state_json, format_time(state.created_at))
                    for state in batch.states
                ],
            )
    return session
