"""Rows to entities: what the PostgreSQL store makes of the rows its statements return."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from mofa.persistence._codec import ROLES, damaged_record, decode_json
from mofa.persistence._entities import (
    Agent,
    AgentState,
    Message,
    Session,
    build_message,
    build_session,
)

__all__ = [
    "agent_from_row",
    "by_seq",
    "message_from_row",
    "messages_from_rows",
    "session_from_row",
    "sessions_from_rows",
    "state_from_row",
    "utc",
]

by_seq = operator.itemgetter(1)


def utc(value: Any) -> Any:
    """asyncpg writes datetime.min and datetime.max (in UTC) as -infinity and infinity, and
    reads those back naive: give them their zone again, so years 1 and 9999 round-trip."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def session_from_row(row: Any) -> Session:
    metadata = row[5]
    try:
        return build_session(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            {} if metadata == "{}" else decode_json(metadata),
            row[6],
            utc(row[7]),
            utc(row[8]),
            utc(row[9]),
        )
    except ValueError as exc:  # JSONB that is not an object: only a hand-edited row
        raise damaged_record(
            f"session {row[0]!r}", {"metadata": metadata}, exc, session_id=row[0]
        ) from exc


def message_from_row(session_id: str, row: Any) -> Message:
    metadata = row[4]  # most messages carry none: skip the call for "{}"
    stamp = row[5]
    try:
        return Message(
            session_id,
            row[1],
            ROLES[row[2]],
            row[3],
            {} if metadata == "{}" else decode_json(metadata),
            stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC),  # see utc
            row[0],
        )
    except (KeyError, ValueError) as exc:
        raise damaged_record(
            f"message {row[1]} of session {session_id!r}",
            {"role": row[2], "metadata": metadata},
            exc,
            session_id=session_id,
        ) from exc


def sessions_from_rows(rows: Sequence[Any]) -> list[Session]:
    """Rows -> sessions: a listing's path, one comprehension (see messages_from_rows)."""
    build, decode, aware = build_session, decode_json, utc
    try:
        return [
            build(
                session_id,
                agent_id,
                user_id,
                tenant_id,
                status,
                {} if metadata == "{}" else decode(metadata),
                count,
                aware(created),
                aware(updated),
                aware(expires),
            )
            for (
                session_id,
                agent_id,
                user_id,
                tenant_id,
                status,
                metadata,
                count,
                created,
                updated,
                expires,
            ) in rows
        ]
    except ValueError:
        return [session_from_row(row) for row in rows]  # raises, naming the row


def messages_from_rows(session_id: str, rows: Sequence[Any]) -> list[Message]:
    """Rows -> messages: every load's hot path, so one comprehension with no call per row
    beyond the entity's (empty metadata not decoded; times come aware from asyncpg but
    for the two infinities, see utc). A row that does not decode sends the result through
    message_from_row, which names it."""
    build, roles, decode = build_message, ROLES, decode_json
    try:
        return [
            build(
                session_id,
                seq,
                roles[role],
                content,
                {} if metadata == "{}" else decode(metadata),
                stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC),
                message_id,
            )
            for message_id, seq, role, content, metadata, stamp in rows
        ]
    except (KeyError, ValueError):
        return [message_from_row(session_id, row) for row in rows]  # raises, naming the row


def agent_from_row(row: Any) -> Agent:
    return Agent(
        row[0],
        row[1],
        row[2],
        utc(row[3]),
        row[4],
        row[5],
        row[6],
        utc(row[7]),
        utc(row[8]),
        row[9],
    )


def state_from_row(session_id: str, row: Any) -> AgentState:
    try:
        return AgentState(session_id, row[0], decode_json(row[1]), utc(row[2]))
    except ValueError as exc:
        raise damaged_record(
            f"state version {row[0]} of session {session_id!r}",
            {"state": row[1]},
            exc,
            session_id=session_id,
        ) from exc
