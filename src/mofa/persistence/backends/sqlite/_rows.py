"""Rows to entities: what the SQLite store makes of the rows its statements return."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mofa.persistence._codec import (
    ROLES,
    TIME_TEXT_LENGTH,
    damaged_record,
    decode_json,
    parse_time,
)
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
    "message_from_row",
    "messages_from_rows",
    "session_from_row",
    "sessions_from_rows",
    "state_from_row",
]

_from_iso = datetime.fromisoformat
#: What a row that does not decode raises (a NULL where text belongs: TypeError).
_UNREADABLE = (KeyError, ValueError, TypeError)


def session_from_row(row: tuple[Any, ...]) -> Session:
    # Columns in the dataclass's field order; positional (see message_from_row).
    try:
        return build_session(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            decode_json(row[5]),
            row[6],
            parse_time(row[7]),
            parse_time(row[8]),
            None if row[9] is None else parse_time(row[9]),
        )
    except (ValueError, TypeError) as exc:  # a row edited by hand (or by an older version)
        fields = {"metadata": row[5], "created_at": row[7], "updated_at": row[8]}
        raise damaged_record(
            f"session {row[0]!r}", {**fields, "expires_at": row[9]}, exc, session_id=row[0]
        ) from exc


def message_from_row(session_id: str, row: tuple[Any, ...]) -> Message:
    # Positional: this runs once per loaded message, and keywords cost 40% more here.
    try:
        return Message(
            session_id,
            row[1],
            ROLES[row[2]],
            row[3],
            decode_json(row[4]),
            parse_time(row[5]),
            row[0],
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise damaged_record(
            f"message {row[1]} of session {session_id!r}",
            {"role": row[2], "metadata": row[4], "timestamp": row[5]},
            exc,
            session_id=session_id,
        ) from exc


def sessions_from_rows(rows: Sequence[tuple[Any, ...]]) -> list[Session]:
    """Rows -> sessions: a listing's path, one comprehension (see messages_from_rows)."""
    build, decode, time, length = build_session, decode_json, parse_time, TIME_TEXT_LENGTH
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
                _from_iso(created + "+00:00") if len(created) == length else time(created),
                _from_iso(updated + "+00:00") if len(updated) == length else time(updated),
                None if expires is None else time(expires),
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
    except _UNREADABLE:
        return [session_from_row(row) for row in rows]  # raises, naming the row


def messages_from_rows(session_id: str, rows: Sequence[tuple[Any, ...]]) -> list[Message]:
    """Rows -> messages: every load's hot path, so one comprehension with no call per row
    beyond the entity's and the time's (format_time's text parsed inline, as parse_time
    does; empty metadata not decoded). A row that does not decode sends the result through
    message_from_row, which names it."""
    build, roles, decode, length = build_message, ROLES, decode_json, TIME_TEXT_LENGTH
    try:
        return [
            build(
                session_id,
                seq,
                roles[role],
                content,
                {} if metadata == "{}" else decode(metadata),
                _from_iso(stamp + "+00:00") if len(stamp) == length else parse_time(stamp),
                message_id,
            )
            for message_id, seq, role, content, metadata, stamp in rows
        ]
    except _UNREADABLE:
        return [message_from_row(session_id, row) for row in rows]  # raises, naming the row


def agent_from_row(row: tuple[Any, ...]) -> Agent:
    try:
        return Agent(
            id=row[0],
            name=row[1],
            state=row[2],
            started_at=parse_time(row[3]),
            provider=row[4],
            model=row[5],
            description=row[6],
            created_at=parse_time(row[7]),
            updated_at=parse_time(row[8]),
            tenant_id=row[9],
        )
    except (ValueError, TypeError) as exc:
        fields = {"started_at": row[3], "created_at": row[7], "updated_at": row[8]}
        raise damaged_record(f"agent {row[0]!r}", fields, exc) from exc


def state_from_row(session_id: str, row: tuple[Any, ...]) -> AgentState:
    try:
        return AgentState(session_id, row[0], decode_json(row[1]), parse_time(row[2]))
    except (ValueError, TypeError) as exc:
        raise damaged_record(
            f"state version {row[0]} of session {session_id!r}",
            {"state": row[1], "created_at": row[2]},
            exc,
            session_id=session_id,
        ) from exc
