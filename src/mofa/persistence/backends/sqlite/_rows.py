"""Rows to entities: what the SQLite store makes of the rows its statements return."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mofa.persistence._codec import ROLES, damaged_record, decode_json, parse_time
from mofa.persistence._entities import Agent, AgentState, Message, Session

__all__ = [
    "agent_from_row",
    "message_from_row",
    "messages_from_rows",
    "session_from_row",
    "state_from_row",
]


def session_from_row(row: tuple[Any, ...]) -> Session:
    # Columns in the dataclass's field order; positional (see message_from_row).
    try:
        return Session(
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


def messages_from_rows(session_id: str, rows: Sequence[tuple[Any, ...]]) -> list[Message]:
    return [message_from_row(session_id, row) for row in rows]


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
