"""Public entities: plain frozen dataclasses with UTC-aware datetimes.

Rows never leave the backends; each backend builds these from its rows through the codec.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Agent",
    "AgentState",
    "Message",
    "NewMessage",
    "Owner",
    "Role",
    "Session",
    "SessionStatus",
    "new_session_id",
    "utc_now",
]


class Role(enum.StrEnum):
    """Who wrote a message."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class SessionStatus(enum.StrEnum):
    """Well-known session states; a store accepts any short string."""

    ACTIVE = "active"
    CLOSED = "closed"
    EXPIRED = "expired"


def utc_now() -> datetime:
    """The current time, UTC-aware, in the precision every backend keeps (microseconds)."""
    return datetime.now(UTC)


def new_session_id() -> str:
    """A fresh session id: a UUIDv7 (time-ordered) as text."""
    milliseconds = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    rand_a = (random_bits >> 66) & 0xFFF
    rand_b = random_bits & 0x3FFF_FFFF_FFFF_FFFF
    value = ((milliseconds & 0xFFFF_FFFF_FFFF) << 80) | (0x7 << 76) | (rand_a << 64)  # version 7
    value |= (0b10 << 62) | rand_b  # RFC 4122 variant
    return str(uuid.UUID(int=value))


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent record (the ``agents`` table)."""

    id: str
    name: str
    state: str
    started_at: datetime
    provider: str | None = None
    model: str | None = None
    description: str | None = None
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)
    #: The tenant that registered the agent (``None``: none). Through an owner scope only
    #: that tenant can change the record; agent ids are global, like session ids.
    tenant_id: str | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose sessions a call may touch: the scope a :class:`PersistencePlugin` passes.

    Every session-addressed store method takes ``owner=``; the backend puts it into the
    statement it runs, so through a scope another owner's session looks exactly like a
    missing one. Each field must equal the session's, ``None`` matching only a session
    without that value (a scope without a tenant never sees a tenant's sessions).
    """

    tenant_id: str | None = None
    user_id: str | None = None
    agent_id: str | None = None

    def owns(self, session: Session) -> bool:
        """Whether ``session`` is inside this scope."""
        return (
            session.tenant_id == self.tenant_id
            and session.user_id == self.user_id
            and session.agent_id == self.agent_id
        )


@dataclass(frozen=True, slots=True, init=False)
class Session:
    """One conversation (the ``sessions`` table)."""

    session_id: str
    agent_id: str | None
    user_id: str | None
    tenant_id: str | None
    status: str
    metadata: dict[str, Any]
    message_count: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None

    def __init__(
        self,
        session_id: str,
        agent_id: str | None,
        user_id: str | None,
        tenant_id: str | None,
        status: str,
        metadata: dict[str, Any],
        message_count: int,
        created_at: datetime,
        updated_at: datetime,
        expires_at: datetime | None = None,
    ) -> None:
        # Hand-written (see _fast_setters): listing sessions builds one per row.
        _set_session_id(self, session_id)
        _set_session_agent_id(self, agent_id)
        _set_session_user_id(self, user_id)
        _set_session_tenant_id(self, tenant_id)
        _set_session_status(self, status)
        _set_session_metadata(self, metadata)
        _set_session_message_count(self, message_count)
        _set_session_created_at(self, created_at)
        _set_session_updated_at(self, updated_at)
        _set_session_expires_at(self, expires_at)

    def is_expired(self, now: datetime | None = None) -> bool:
        """True when the session has an expiry time and it has passed."""
        if self.expires_at is None:
            return False
        return self.expires_at <= (now or utc_now())

    @property
    def effective_status(self) -> str:
        """``expired`` once ``expires_at`` has passed, else the stored status."""
        return SessionStatus.EXPIRED.value if self.is_expired() else self.status


@dataclass(frozen=True, slots=True, init=False)
class Message:
    """One stored message. ``seq`` is 1, 2, 3… within its session and gives the order.

    ``(session_id, seq)`` is the message's key on every backend. ``id`` is the database's row
    id where there is one (SQLite, PostgreSQL, MySQL, in-memory) and ``None`` in the file
    store, which has no row ids.
    """

    session_id: str
    seq: int
    role: Role
    content: str
    metadata: dict[str, Any]
    timestamp: datetime
    id: int | None = None

    def __init__(
        self,
        session_id: str,
        seq: int,
        role: Role,
        content: str,
        metadata: dict[str, Any],
        timestamp: datetime,
        id: int | None = None,
    ) -> None:
        # Hand-written (see _fast_setters): every loaded message is built here.
        _set_message_session_id(self, session_id)
        _set_message_seq(self, seq)
        _set_message_role(self, role)
        _set_message_content(self, content)
        _set_message_metadata(self, metadata)
        _set_message_timestamp(self, timestamp)
        _set_message_id(self, id)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append; the store assigns ``seq`` (and ``timestamp`` when omitted)."""

    role: Role | str
    content: str
    metadata: Mapping[str, Any] | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class AgentState:
    """A snapshot of an agent's state within a session; ``version`` counts 1, 2, 3…"""

    session_id: str
    version: int
    state: dict[str, Any]
    created_at: datetime


def _fast_setters(entity: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of a frozen, slotted dataclass, checked against its fields.

    Why: a frozen dataclass's generated ``__init__`` makes one ``object.__setattr__`` call per
    field (about 1.2 µs for a Message); writing the slots through their descriptors costs
    half, and loading history or listing sessions is mostly building these objects. The
    check turns a field added to the class but not to its ``__init__`` into an import error.
    """
    fields = tuple(item.name for item in dataclasses.fields(entity))
    if fields != names:  # pragma: no cover - guards a future edit of this module
        raise RuntimeError(f"{entity.__name__}.__init__ is out of date: fields are {fields}.")
    return tuple(getattr(entity, name).__set__ for name in names)


(
    _set_session_id,
    _set_session_agent_id,
    _set_session_user_id,
    _set_session_tenant_id,
    _set_session_status,
    _set_session_metadata,
    _set_session_message_count,
    _set_session_created_at,
    _set_session_updated_at,
    _set_session_expires_at,
) = _fast_setters(
    Session,
    (
        "session_id",
        "agent_id",
        "user_id",
        "tenant_id",
        "status",
        "metadata",
        "message_count",
        "created_at",
        "updated_at",
        "expires_at",
    ),
)
(
    _set_message_session_id,
    _set_message_seq,
    _set_message_role,
    _set_message_content,
    _set_message_metadata,
    _set_message_timestamp,
    _set_message_id,
) = _fast_setters(Message, ("session_id", "seq", "role", "content", "metadata", "timestamp", "id"))
