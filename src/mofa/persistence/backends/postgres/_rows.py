"""Rows to entities: what the PostgreSQL store makes of the rows its statements return."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from mofa.persistence._codec import ROLES, damaged_record, decode_json
from mofa.persistence._entities import Agent, AgentState, Message, Session

__all__ = [
    "agent_from_row",
    "by_seq",
    "message_from_row",
    "messages_from_rows",
    "session_from_row",
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
        return Session(
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


def messages_from_rows(session_id: str, rows: Sequence[Any]) -> list[Message]:
    return [message_from_row(session_id, row) for row in rows]


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
