"""The transaction bodies: each runs on the worker thread, inside write() or read()."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from mofa.persistence._base import EncodedMessage
from mofa.persistence._codec import format_time
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._health import HealthFacts
from mofa.persistence._prune import PruneRule
from mofa.persistence.backends._sql import (
    HEALTH,
    delete_sessions_statement,
    health_facts,
    owner_params,
    prune_parameters,
)
from mofa.persistence.backends.sqlite._rows import (
    agent_from_row,
    message_from_row,
    session_from_row,
    state_from_row,
)
from mofa.persistence.backends.sqlite._statements import (
    BUMP_COUNT,
    BUMP_COUNT_RETURNING,
    BUMP_OWNED_COUNT,
    BUMP_OWNED_COUNT_RETURNING,
    DELETE_OWNED_SESSION,
    DELETE_SESSION,
    ENSURE_AGENT,
    HAS_RETURNING,
    INSERT_MESSAGE,
    INSERT_OWNED_STATE,
    INSERT_OWNED_STATE_RETURNING,
    INSERT_SESSION,
    INSERT_STATE,
    INSERT_STATE_RETURNING,
    SELECT_AGENT,
    SELECT_AGENTS,
    SELECT_COUNT,
    SELECT_LATEST_STATE,
    SELECT_MESSAGES,
    SELECT_OWNED_LATEST_STATE,
    SELECT_OWNED_MESSAGES,
    SELECT_OWNED_RECENT_MESSAGES,
    SELECT_OWNED_SESSION,
    SELECT_OWNED_STATE,
    SELECT_OWNED_STATES,
    SELECT_RECENT_MESSAGES,
    SELECT_SESSION,
    SELECT_STATE,
    SELECT_STATE_VERSION,
    SELECT_STATES,
    UPDATE_OWNED_SESSION,
    UPDATE_SESSION,
    UPSERT_AGENT,
    UPSERT_OWNED_AGENT,
)
from mofa.persistence.errors import AgentExistsError, SessionNotFoundError

#: The indexes a health check finds (SQLite's own, for keys, start with sqlite_).
INDEX_NAMES = "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"

__all__ = [
    "append_many_tx",
    "append_one_tx",
    "create_session_tx",
    "delete_session_tx",
    "delete_sessions_tx",
    "get_agent_tx",
    "get_session_tx",
    "get_state_tx",
    "health_tx",
    "list_agents_tx",
    "list_messages_tx",
    "list_recent_tx",
    "list_sessions_tx",
    "list_states_tx",
    "save_state_tx",
    "update_session_tx",
    "upsert_agent_tx",
]


def upsert_agent_tx(connection: sqlite3.Connection, agent: Agent, owner: Owner | None) -> Agent:
    # With an owner, agent.tenant_id is the owner's: the insert records it and the conflict
    # clause compares the stored one with it (excluded.tenant_id).
    cursor = connection.execute(
        UPSERT_AGENT if owner is None else UPSERT_OWNED_AGENT,
        (
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
        ),
    )
    if cursor.rowcount == 0:  # only a scoped upsert can change no row: another tenant's agent
        raise AgentExistsError(agent.id)
    row = connection.execute(SELECT_AGENT, (agent.id,)).fetchone()
    return agent_from_row(row)


def create_session_tx(
    connection: sqlite3.Connection, session: Session, metadata_json: str
) -> Session:
    created = format_time(session.created_at)
    if session.agent_id is not None:
        connection.execute(
            ENSURE_AGENT,
            (session.agent_id, session.agent_id, created, created, created, session.tenant_id),
        )
    connection.execute(
        INSERT_SESSION,
        (
            session.session_id,
            session.agent_id,
            session.user_id,
            session.tenant_id,
            session.status,
            metadata_json,
            created,
            format_time(session.updated_at),
            None if session.expires_at is None else format_time(session.expires_at),
        ),
    )
    return session


def update_session_tx(
    connection: sqlite3.Connection,
    session_id: str,
    status: str | None,
    metadata_json: str | None,
    expires_at: datetime | Unset | None,
    now: datetime,
    owner: Owner | None,
) -> Session:
    set_expiry = not isinstance(expires_at, Unset)
    expiry = format_time(expires_at) if isinstance(expires_at, datetime) else None
    parameters = (status, metadata_json, set_expiry, expiry, format_time(now), session_id)
    if owner is None:
        cursor = connection.execute(UPDATE_SESSION, parameters)
    else:
        cursor = connection.execute(UPDATE_OWNED_SESSION, (*parameters, *owner_params(owner)))
    if cursor.rowcount == 0:
        raise SessionNotFoundError(session_id)
    # The row was just updated under this transaction's write lock: it is the owner's.
    return session_from_row(connection.execute(SELECT_SESSION, (session_id,)).fetchone())


def _bump_count(
    connection: sqlite3.Connection, session_id: str, added: int, now: str, owner: Owner | None
) -> int:
    """Add ``added`` to the session's message_count; return the new count (the last seq).

    A session that is missing, or outside ``owner``'s scope, is not updated:
    SessionNotFoundError, and the caller's transaction writes nothing.
    """
    if owner is None:
        parameters: tuple[Any, ...] = (added, now, session_id)
        returning, plain = BUMP_COUNT_RETURNING, BUMP_COUNT
    else:
        parameters = (added, now, session_id, *owner_params(owner))
        returning, plain = BUMP_OWNED_COUNT_RETURNING, BUMP_OWNED_COUNT
    if HAS_RETURNING:
        rows = connection.execute(returning, parameters).fetchall()
        if not rows:
            raise SessionNotFoundError(session_id)
        return int(rows[0][0])
    cursor = connection.execute(plain, parameters)  # pragma: no cover
    if cursor.rowcount == 0:  # pragma: no cover
        raise SessionNotFoundError(session_id)
    return int(connection.execute(SELECT_COUNT, (session_id,)).fetchone()[0])  # pragma: no cover


def append_one_tx(
    connection: sqlite3.Connection,
    session_id: str,
    message: EncodedMessage,
    now: datetime,
    owner: Owner | None,
) -> Message:
    stamp = format_time(now)
    seq = _bump_count(connection, session_id, 1, stamp, owner)
    when = message.timestamp
    cursor = connection.execute(
        INSERT_MESSAGE,
        (
            session_id,
            seq,
            message.role.value,
            message.content,
            message.metadata_json,
            stamp if when is now else format_time(when),
        ),
    )
    return message.stored(session_id, seq, cursor.lastrowid)


def append_many_tx(
    connection: sqlite3.Connection,
    session_id: str,
    messages: list[EncodedMessage],
    now: datetime,
    owner: Owner | None,
) -> list[Message]:
    count = len(messages)
    stamp = format_time(now)  # most messages carry the call's own time: format it once
    first_seq = _bump_count(connection, session_id, count, stamp, owner) - count + 1
    connection.executemany(
        INSERT_MESSAGE,
        [
            (
                session_id,
                first_seq + offset,
                message.role.value,
                message.content,
                message.metadata_json,
                stamp if message.timestamp is now else format_time(message.timestamp),
            )
            for offset, message in enumerate(messages)
        ],
    )
    # This transaction holds the write lock and the rows went in one after another, so
    # their rowids are consecutive and end at the connection's last insert.
    last_id = int(connection.execute("SELECT last_insert_rowid()").fetchone()[0])
    first_id = last_id - count + 1
    return [
        message.stored(session_id, first_seq + offset, first_id + offset)
        for offset, message in enumerate(messages)
    ]


def save_state_tx(
    connection: sqlite3.Connection,
    session_id: str,
    state: dict[str, Any],
    state_json: str,
    now: datetime,
    owner: Owner | None,
) -> AgentState:
    if owner is None:
        # A missing session fails the foreign key, which write() reports as
        # SessionNotFoundError.
        parameters: tuple[Any, ...] = (session_id, state_json, format_time(now), session_id)
        returning, plain = INSERT_STATE_RETURNING, INSERT_STATE
    else:
        # A missing or foreign session selects no row to insert.
        parameters = (state_json, format_time(now), session_id, *owner_params(owner))
        returning, plain = INSERT_OWNED_STATE_RETURNING, INSERT_OWNED_STATE
    if HAS_RETURNING:
        rows = connection.execute(returning, parameters).fetchall()
        if not rows:
            raise SessionNotFoundError(session_id)
        version = int(rows[0][0])
    else:  # pragma: no cover - SQLite before 3.35
        if connection.execute(plain, parameters).rowcount == 0:
            raise SessionNotFoundError(session_id)
        version = int(connection.execute(SELECT_STATE_VERSION, (session_id,)).fetchone()[0])
    return AgentState(session_id, version, state, now)


def get_agent_tx(connection: sqlite3.Connection, agent_id: str) -> Agent | None:
    row = connection.execute(SELECT_AGENT, (agent_id,)).fetchone()
    return None if row is None else agent_from_row(row)


def list_agents_tx(connection: sqlite3.Connection, limit: int) -> list[Agent]:
    return [agent_from_row(row) for row in connection.execute(SELECT_AGENTS, (limit,))]


def get_session_tx(
    connection: sqlite3.Connection, session_id: str, owner: Owner | None
) -> Session | None:
    if owner is None:
        row = connection.execute(SELECT_SESSION, (session_id,)).fetchone()
    else:
        row = connection.execute(
            SELECT_OWNED_SESSION, (session_id, *owner_params(owner))
        ).fetchone()
    return None if row is None else session_from_row(row)


def list_sessions_tx(
    connection: sqlite3.Connection, sql: str, parameters: tuple[Any, ...]
) -> list[Session]:
    return [session_from_row(row) for row in connection.execute(sql, parameters)]


def delete_sessions_tx(
    connection: sqlite3.Connection, session_ids: list[str], rule: PruneRule
) -> list[str]:
    sql = delete_sessions_statement(len(session_ids), lambda _: "?", " RETURNING session_id")
    parameters = prune_parameters(session_ids, rule, format_time)
    return [row[0] for row in connection.execute(sql, parameters).fetchall()]


def delete_session_tx(connection: sqlite3.Connection, session_id: str, owner: Owner | None) -> bool:
    if owner is None:
        return connection.execute(DELETE_SESSION, (session_id,)).rowcount > 0
    parameters = (session_id, *owner_params(owner))
    return connection.execute(DELETE_OWNED_SESSION, parameters).rowcount > 0


def list_messages_tx(
    connection: sqlite3.Connection,
    session_id: str,
    limit: int,
    after_seq: int,
    owner: Owner | None,
) -> list[Message]:
    if owner is None:
        rows = connection.execute(SELECT_MESSAGES, (session_id, after_seq, limit)).fetchall()
    else:
        parameters = (session_id, after_seq, session_id, *owner_params(owner), limit)
        rows = connection.execute(SELECT_OWNED_MESSAGES, parameters).fetchall()
    return [message_from_row(session_id, row) for row in rows]


def list_recent_tx(
    connection: sqlite3.Connection, session_id: str, limit: int, owner: Owner | None
) -> list[Message]:
    # Backwards through the (session_id, seq) index: reads only the rows it returns.
    if owner is None:
        rows = connection.execute(SELECT_RECENT_MESSAGES, (session_id, limit)).fetchall()
    else:
        parameters = (session_id, session_id, *owner_params(owner), limit)
        rows = connection.execute(SELECT_OWNED_RECENT_MESSAGES, parameters).fetchall()
    rows.reverse()
    return [message_from_row(session_id, row) for row in rows]


def get_state_tx(
    connection: sqlite3.Connection, session_id: str, version: int | None, owner: Owner | None
) -> AgentState | None:
    if owner is None:
        if version is None:
            row = connection.execute(SELECT_LATEST_STATE, (session_id,)).fetchone()
        else:
            row = connection.execute(SELECT_STATE, (session_id, version)).fetchone()
    else:
        scope = (session_id, *owner_params(owner))
        if version is None:
            row = connection.execute(SELECT_OWNED_LATEST_STATE, (session_id, *scope)).fetchone()
        else:
            row = connection.execute(SELECT_OWNED_STATE, (session_id, version, *scope)).fetchone()
    return None if row is None else state_from_row(session_id, row)


def list_states_tx(
    connection: sqlite3.Connection, session_id: str, limit: int, owner: Owner | None
) -> list[AgentState]:
    if owner is None:
        rows = connection.execute(SELECT_STATES, (session_id, limit))
    else:
        parameters = (session_id, session_id, *owner_params(owner), limit)
        rows = connection.execute(SELECT_OWNED_STATES, parameters)
    return [state_from_row(session_id, row) for row in rows]


def health_tx(connection: sqlite3.Connection) -> HealthFacts:
    indexes = [row[0] for row in connection.execute(INDEX_NAMES)]
    settings = {
        name: str(connection.execute(f"PRAGMA {name}").fetchone()[0])
        for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
    }
    return health_facts(indexes, settings, connection.execute(HEALTH).fetchone())
