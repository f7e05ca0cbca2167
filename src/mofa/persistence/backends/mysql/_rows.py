"""Rows to entities (and times to the wire): what the MySQL store makes of what it reads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from mofa.persistence._codec import ROLES, damaged_record, decode_json, unreadable_field
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
    "aware",
    "messages_from_rows",
    "session_from_row",
    "sessions_from_rows",
    "state_from_row",
    "wire",
]


def wire(value: datetime | None) -> datetime | None:
    """Aware UTC -> the naive UTC value a DATETIME(6) column holds."""
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


_combine = datetime.combine


def aware(value: datetime) -> datetime:
    """The driver's naive UTC datetime, made aware.

    ``combine(date, time, UTC)`` is measured 10x faster than ``replace(tzinfo=UTC)`` here
    (120 ns vs 1.3 µs), and loads make one per row.
    """
    return _combine(value.date(), value.time(), UTC)


#: What decoding a hand-edited row raises (a zero date reaches us as None: AttributeError).
_UNREADABLE: Final = (AttributeError, KeyError, TypeError, ValueError)


def session_from_row(row: Sequence[Any]) -> Session:
    (
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
    ) = row
    try:
        return build_session(
            session_id.decode(),
            None if agent_id is None else agent_id.decode(),
            None if user_id is None else user_id.decode(),
            None if tenant_id is None else tenant_id.decode(),
            status,
            {} if metadata == "{}" else decode_json(metadata),
            count,
            _combine(created.date(), created.time(), UTC),
            _combine(updated.date(), updated.time(), UTC),
            None if expires is None else _combine(expires.date(), expires.time(), UTC),
        )
    except _UNREADABLE as exc:
        fields = {"metadata": metadata, "created_at": created, "updated_at": updated}
        session = session_id.decode()
        raise damaged_record(f"session {session!r}", fields, exc, session_id=session) from exc


def sessions_from_rows(rows: Sequence[Sequence[Any]]) -> list[Session]:
    """Rows -> sessions: a listing's path, one comprehension (see messages_from_rows)."""
    build, decode, combine, utc = build_session, decode_json, _combine, UTC
    try:
        return [
            build(
                session_id.decode(),
                None if agent_id is None else agent_id.decode(),
                None if user_id is None else user_id.decode(),
                None if tenant_id is None else tenant_id.decode(),
                status,
                {} if metadata == "{}" else decode(metadata),
                count,
                combine(created.date(), created.time(), utc),
                combine(updated.date(), updated.time(), utc),
                None if expires is None else combine(expires.date(), expires.time(), utc),
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


def messages_from_rows(session_id: str, rows: Sequence[Sequence[Any]]) -> list[Message]:
    """Rows -> messages. The hot path of every load: one comprehension, positional fields,
    no call for the common empty metadata."""
    build, roles, utc, decode, combine = build_message, ROLES, UTC, decode_json, _combine
    try:
        return [
            build(
                session_id,
                seq,
                roles[role],
                content,
                {} if metadata == "{}" else decode(metadata),
                combine(stamp.date(), stamp.time(), utc),
                message_id,
            )
            for message_id, seq, role, content, metadata, stamp in rows
        ]
    except _UNREADABLE as exc:  # find the row: only now is each one checked on its own
        for _id, seq, role, _content, metadata, stamp in rows:
            fields = {"role": role, "metadata": metadata, "timestamp": stamp}
            if unreadable_field(fields) is not None:
                record = f"message {seq} of session {session_id!r}"
                raise damaged_record(record, fields, exc, session_id=session_id) from exc
        raise


def agent_from_row(row: Sequence[Any]) -> Agent:
    try:
        return Agent(
            id=row[0].decode(),
            name=row[1],
            state=row[2],
            started_at=aware(row[3]),
            provider=row[4],
            model=row[5],
            description=row[6],
            created_at=aware(row[7]),
            updated_at=aware(row[8]),
            tenant_id=None if row[9] is None else row[9].decode(),
        )
    except _UNREADABLE as exc:
        fields = {"started_at": row[3], "created_at": row[7], "updated_at": row[8]}
        raise damaged_record(f"agent {row[0].decode()!r}", fields, exc) from exc


def state_from_row(session_id: str, row: Sequence[Any]) -> AgentState:
    try:
        return AgentState(session_id, row[0], decode_json(row[1]), aware(row[2]))
    except _UNREADABLE as exc:
        raise damaged_record(
            f"state version {row[0]} of session {session_id!r}",
            {"state": row[1], "created_at": row[2]},
            exc,
            session_id=session_id,
        ) from exc
