"""The transaction bodies: each runs on the worker thread, inside write() or read() (the
writes, and :func:`select_tx` for every read of the shared core)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from mofa.persistence._base import EncodedMessage
from mofa.persistence._codec import format_time
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._prune import PruneRule
from mofa.persistence.backends._sql import (
    delete_sessions_statement,
    owner_params,
    prune_parameters,
)
from mofa.persistence.backends.sqlite._rows import agent_from_row, session_from_row
from mofa.persistence.backends.sqlite._statements import (
    BUMP_COUNT,
    BUMP_COUNT_OWNED,
    BUMP_COUNT_OWNED_RETURNING,
    BUMP_COUNT_RETURNING,
    DELETE_SESSION,
    DELETE_SESSION_OWNED,
    ENSURE_AGENT,
    HAS_RETURNING,
    INSERT_MESSAGE,
    INSERT_SESSION,
    INSERT_STATE,
    INSERT_STATE_OWNED,
    INSERT_STATE_OWNED_RETURNING,
    INSERT_STATE_RETURNING,
    READS,
    SELECT_COUNT,
    SELECT_STATE_VERSION,
    UPDATE_SESSION,
    UPDATE_SESSION_OWNED,
    UPSERT_AGENT,
    UPSERT_AGENT_OWNED,
)
from mofa.persistence.errors import AgentExistsError, SessionNotFoundError

__all__ = [
    "append_many_tx",
    "append_one_tx",
    "create_session_tx",
    "delete_session_tx",
    "delete_sessions_tx",
    "save_state_tx",
    "select_tx",
    "update_session_tx",
    "upsert_agent_tx",
]

_T = TypeVar("_T")


def upsert_agent_tx(connection: sqlite3.Connection, agent: Agent, owner: Owner | None) -> Agent:
    # With an owner, agent.tenant_id is the owner's: the insert records it and the conflict
    # clause compares the stored one with it (excluded.tenant_id).
    cursor = connection.execute(
        UPSERT_AGENT if owner is None else UPSERT_AGENT_OWNED,
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
    row = connection.execute(READS.get_agent, (agent.id,)).fetchone()
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
        cursor = connection.execute(UPDATE_SESSION_OWNED, (*parameters, *owner_params(owner)))
    if cursor.rowcount == 0:
        raise SessionNotFoundError(session_id)
    # The row was just updated under this transaction's write lock: it is the owner's.
    return session_from_row(connection.execute(READS.get_session, (session_id,)).fetchone())


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
        returning, plain = BUMP_COUNT_OWNED_RETURNING, BUMP_COUNT_OWNED
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
        returning, plain = INSERT_STATE_OWNED_RETURNING, INSERT_STATE_OWNED
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


def delete_sessions_tx(
    connection: sqlite3.Connection, session_ids: list[str], rule: PruneRule
) -> list[str]:
    """A prune's batch: the sessions of ``session_ids`` that ``rule`` still selects."""
    sql = delete_sessions_statement(len(session_ids), lambda _: "?", " RETURNING session_id")
    parameters = prune_parameters(session_ids, rule, format_time)
    return [row[0] for row in connection.execute(sql, parameters).fetchall()]


def delete_session_tx(connection: sqlite3.Connection, session_id: str, owner: Owner | None) -> bool:
    if owner is None:
        return connection.execute(DELETE_SESSION, (session_id,)).rowcount > 0
    parameters = (session_id, *owner_params(owner))
    return connection.execute(DELETE_SESSION_OWNED, parameters).rowcount > 0


def select_tx(
    connection: sqlite3.Connection,
    sql: str,
    args: Sequence[Any],
    read: Callable[..., _T],
    read_args: tuple[Any, ...],
) -> _T:
    """A read of the shared core (``SqlStore._select``): the rows become entities here, on
    the worker thread, in the same hop."""
    return read(*read_args, connection.execute(sql, args).fetchall())
