"""The records of ``mofa-session/1``: entities to canonical objects and back, checked.

Canonical means equal data gives equal bytes: keys sorted, times in UTC as
``YYYY-MM-DDTHH:MM:SS.ffffffZ``, JSON written by one encoder (orjson) with fixed options. The
integrity hash is the SHA-256 of every message's compact canonical JSON, one per line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from mofa.persistence._codec import format_time
from mofa.persistence._entities import Agent, AgentState, Message, Role, Session
from mofa.persistence.errors import InvalidInputError

__all__ = [
    "FORMAT",
    "MINOR",
    "ExportFormatError",
    "Header",
    "MessageHash",
    "agent_object",
    "header_from",
    "header_object",
    "message_from",
    "message_object",
    "state_from",
    "state_object",
    "time_text",
]

#: The format's name and major version, written in every export's ``format`` key.
FORMAT: Final = "mofa-session/1"
#: The newest minor version this package reads and writes (``mofa-session/1`` is 1.0).
MINOR: Final = 0
_FORMAT_TEXT = re.compile(r"mofa-session/(\d+)(?:\.(\d+))?")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: A time as :func:`time_text` writes it (then it needs no formatting again for the hash).
_CANONICAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
#: The session's columns that ``metadata`` holds beside the session's own keys (the seeds'
#: shape); own keys of those names go in ``shadowed_metadata``.
COLUMN_KEYS: Final = ("agent_id", "user_id", "tenant_id")
_ROLES: Final = {role.value for role in Role}


class ExportFormatError(InvalidInputError):
    """A file that is not a valid ``mofa-session`` export; the message starts with where
    (``file:line`` or ``file: $.messages[3].role``)."""


def _fail(where: str, problem: str) -> ExportFormatError:
    return ExportFormatError(f"{where}: {problem}")


def time_text(value: datetime) -> str:
    """``2024-02-28T10:30:05.000000Z``: UTC, always six decimals, four-digit year."""
    return format_time(value).replace(" ", "T", 1) + "Z"


def _time(value: object, where: str, key: str) -> datetime:
    if isinstance(value, datetime):  # YAML reads an unquoted time as one
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _fail(
                where, f"{key} {value!r} is not a time; write 2024-02-28T10:30:05.000000Z"
            ) from None
    else:
        raise _fail(where, f"{key} must be a time text, not {_kind(value)}")
    if parsed.tzinfo is None:
        raise _fail(where, f"{key} {value!s} has no time zone; end it with Z (UTC)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise _fail(where, f"{key} {value!s} falls outside the years 1 to 9999 in UTC") from None


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _object(value: object, where: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"{what} must be an object, not {_kind(value)}")
    return value


def _keys(
    record: Mapping[str, Any], where: str, required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    for key in required:
        if key not in record:
            raise _fail(where, f"the required key {key!r} is missing")
    for key in record:
        if key not in required and key not in optional:
            raise _fail(
                where,
                f"unknown key {key!r} (not in {FORMAT}.{MINOR}; a newer mofa-sdk may have "
                "written it: upgrade to import it)",
            )


def _text(record: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = record.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _fail(where, f"{key} must be a string, not {_kind(value)}")
    return value


def _integer(record: Mapping[str, Any], key: str, where: str) -> int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"{key} must be an integer, not {_kind(value)}")
    return value


# ------------------------------------------------------------------- messages


def message_object(message: Message) -> dict[str, Any]:
    return {
        "content": message.content,
        "metadata": message.metadata,
        "role": message.role.value,
        "seq": message.seq,
        "timestamp": time_text(message.timestamp),
    }


_MESSAGE_KEYS: Final = ("content", "role", "seq", "timestamp")


def message_from(
    value: object, session_id: str, where: str, extra: tuple[str, ...] = ()
) -> tuple[Message, dict[str, Any]]:
    """The message a record describes, and its canonical object (for the integrity hash)."""
    record = _object(value, where, "a message")
    _keys(record, where, _MESSAGE_KEYS, ("metadata", *extra))
    role = _text(record, "role", where)
    if role not in _ROLES:
        raise _fail(where, f"unknown role {role!r}; a role is one of {', '.join(sorted(_ROLES))}")
    metadata = _object(record.get("metadata", {}), where, "metadata")
    stamp = record["timestamp"]
    message = Message(
        session_id,
        _integer(record, "seq", where),
        Role(role),
        _text(record, "content", where),
        metadata,
        _time(stamp, where, "timestamp"),
    )
    if type(stamp) is not str or not _CANONICAL_TIME.fullmatch(stamp):
        stamp = time_text(message.timestamp)
    canonical = {
        "content": message.content,
        "metadata": metadata,
        "role": role,
        "seq": message.seq,
        "timestamp": stamp,
    }
    return message, canonical


class MessageHash:
    """The integrity line's SHA-256, fed one canonical message at a time."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def add(self, canonical: Mapping[str, Any]) -> bytes:
        """Hash the message; its compact canonical JSON (without the newline)."""
        try:
            data = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
        except TypeError as exc:  # a value JSON cannot hold: the store refuses it too
            raise InvalidInputError(f"A message holds a value JSON cannot hold: {exc}.") from exc
        self._hash.update(data + b"\n")
        self.count += 1
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


# --------------------------------------------------------------------- states


def state_object(state: AgentState) -> dict[str, Any]:
    return {
        "created_at": time_text(state.created_at),
        "state": state.state,
        "version": state.version,
    }


def state_from(
    value: object, session_id: str, where: str, extra: tuple[str, ...] = ()
) -> AgentState:
    record = _object(value, where, "a state")
    _keys(record, where, ("created_at", "state", "version"), extra)
    return AgentState(
        session_id,
        _integer(record, "version", where),
        _object(record["state"], where, "state"),
        _time(record["created_at"], where, "created_at"),
    )


# --------------------------------------------------------------------- agents

_AGENT_TEXT: Final = ("id", "name", "state")
_AGENT_OPTIONAL: Final = ("provider", "model", "description", "tenant_id")
_AGENT_TIMES: Final = ("started_at", "created_at", "updated_at")


def agent_object(agent: Agent) -> dict[str, Any]:
    return {
        "created_at": time_text(agent.created_at),
        "description": agent.description,
        "id": agent.id,
        "model": agent.model,
        "name": agent.name,
        "provider": agent.provider,
        "started_at": time_text(agent.started_at),
        "state": agent.state,
        "tenant_id": agent.tenant_id,
        "updated_at": time_text(agent.updated_at),
    }


def _agent_from(value: object, where: str) -> Agent:
    record = _object(value, f"{where} (agent)", "agent")
    here = f"{where} (agent)"
    _keys(record, here, (*_AGENT_TEXT, *_AGENT_TIMES, *_AGENT_OPTIONAL), ())
    return Agent(
        id=_text(record, "id", here),
        name=_text(record, "name", here),
        state=_text(record, "state", here),
        started_at=_time(record["started_at"], here, "started_at"),
        provider=_text(record, "provider", here, optional=True),
        model=_text(record, "model", here, optional=True),
        description=_text(record, "description", here, optional=True),
        created_at=_time(record["created_at"], here, "created_at"),
        updated_at=_time(record["updated_at"], here, "updated_at"),
        tenant_id=_text(record, "tenant_id", here, optional=True),
    )


# -------------------------------------------------------------------- headers


@dataclass(frozen=True, slots=True)
class Header:
    """A session's header: the session as stored, its agent record, the integrity line."""

    session: Session
    agent: Agent | None
    sha256: str


def _metadata(session: Session) -> dict[str, Any]:
    merged: dict[str, Any] = {"agent_id": session.agent_id, "user_id": session.user_id}
    if session.tenant_id is not None:
        merged["tenant_id"] = session.tenant_id
    shadowed = {key: value for key, value in session.metadata.items() if key in COLUMN_KEYS}
    merged.update((key, value) for key, value in session.metadata.items() if key not in COLUMN_KEYS)
    return {"metadata": merged, **({"shadowed_metadata": shadowed} if shadowed else {})}


def header_object(session: Session, agent: Agent | None, sha256: str) -> dict[str, Any]:
    """Every field of the header but the lists (``agent_state`` and ``messages``)."""
    return {
        "agent": None if agent is None else agent_object(agent),
        "created_at": time_text(session.created_at),
        "expires_at": None if session.expires_at is None else time_text(session.expires_at),
        "format": FORMAT,
        "integrity": {"message_count": session.message_count, "sha256": sha256},
        "last_seq": session.message_count,
        "message_count": session.message_count,
        **_metadata(session),
        "session_id": session.session_id,
        "status": session.status,
        "updated_at": time_text(session.updated_at),
    }


_HEADER_REQUIRED: Final = (
    "created_at",
    "format",
    "integrity",
    "message_count",
    "metadata",
    "session_id",
    "status",
    "updated_at",
)
_HEADER_OPTIONAL: Final = ("agent", "expires_at", "last_seq", "shadowed_metadata")


def check_format(record: Mapping[str, Any], where: str) -> None:
    """Refuse a file of another format, or of a version this package cannot read whole."""
    if "format" not in record:
        raise _fail(
            where,
            f'not a {FORMAT} export: it has no "format" key (exports of mofa-sdk before '
            "the versioned format cannot be imported; export the session again)",
        )
    text = record["format"]
    found = _FORMAT_TEXT.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise _fail(where, f"format {text!r} is not a mofa-session format")
    major, minor = int(found[1]), int(found[2] or 0)
    if major != 1 or minor > MINOR:
        raise _fail(
            where,
            f"format {text!r} is not supported: this mofa-sdk reads {FORMAT} up to "
            f"{FORMAT}.{MINOR}; upgrade mofa-sdk to import it",
        )


def header_from(
    value: object, where: str, extra: tuple[str, ...] = (), session_id: str | None = None
) -> Header:
    """The header a record describes; ``session_id`` renames the session."""
    record = _object(value, where, "a session export")
    check_format(record, where)
    _keys(record, where, _HEADER_REQUIRED, (*_HEADER_OPTIONAL, *extra))
    count = _integer(record, "message_count", where)
    last_seq = record.get("last_seq", count)
    if last_seq != count:
        raise _fail(where, f"last_seq {last_seq!r} differs from message_count {count}")
    integrity = _object(record["integrity"], where, "integrity")
    _keys(integrity, f"{where} (integrity)", ("message_count", "sha256"), ())
    if integrity["message_count"] != count:
        raise _fail(
            where,
            f"the integrity line counts {integrity['message_count']!r} messages, "
            f"message_count says {count}",
        )
    sha256 = integrity["sha256"]
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise _fail(where, "the integrity sha256 must be 64 lowercase hex digits")
    metadata = dict(_object(record["metadata"], where, "metadata"))
    columns = {key: metadata.pop(key, None) for key in COLUMN_KEYS}
    for key, column in columns.items():
        if column is not None and not isinstance(column, str):
            raise _fail(where, f"metadata.{key} must be a string or null, not {_kind(column)}")
    shadowed = _object(record.get("shadowed_metadata", {}), where, "shadowed_metadata")
    for key in shadowed:
        if key not in COLUMN_KEYS:
            raise _fail(where, f"shadowed_metadata holds {key!r}, which no column is named")
    metadata.update(shadowed)
    expires_at = record.get("expires_at")
    session = Session(
        session_id=_text(record, "session_id", where) if session_id is None else session_id,
        agent_id=columns["agent_id"],
        user_id=columns["user_id"],
        tenant_id=columns["tenant_id"],
        status=_text(record, "status", where),
        metadata=metadata,
        message_count=count,
        created_at=_time(record["created_at"], where, "created_at"),
        updated_at=_time(record["updated_at"], where, "updated_at"),
        expires_at=None if expires_at is None else _time(expires_at, where, "expires_at"),
    )
    agent = record.get("agent")
    return Header(session, None if agent is None else _agent_from(agent, where), sha256)
