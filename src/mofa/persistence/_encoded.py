"""Validated values ready for a backend to write: a message with its metadata encoded once,
an owner scope with checked ids. :mod:`._base` builds them; the backends write them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mofa.persistence._codec import (
    check_datetime,
    check_optional_id,
    check_role,
    check_text,
    decode_json,
    encode_json,
)
from mofa.persistence._entities import Message, Owner, Role
from mofa.persistence.errors import InvalidInputError

__all__ = ["EncodedMessage", "check_owner", "encode_message"]


class EncodedMessage:
    """A validated message ready for a backend to write: metadata already encoded once."""

    __slots__ = ("content", "metadata", "metadata_json", "role", "timestamp")

    def __init__(
        self,
        role: Role,
        content: str,
        metadata: dict[str, Any],
        metadata_json: str,
        timestamp: datetime,
    ) -> None:
        self.role = role
        self.content = content
        self.metadata = metadata
        self.metadata_json = metadata_json
        self.timestamp = timestamp

    def stored(self, session_id: str, seq: int, message_id: int | None = None) -> Message:
        """The :class:`Message` this becomes once the store gave it ``seq``."""
        # Positional: this runs once per appended message, and keywords cost 40% more.
        return Message(
            session_id, seq, self.role, self.content, self.metadata, self.timestamp, message_id
        )


def encode_message(
    role: Role | str,
    content: str,
    metadata: Mapping[str, Any] | None,
    timestamp: datetime | None,
    now: datetime,
) -> EncodedMessage:
    checked_role = check_role(role)
    checked_content = check_text(content)
    metadata_json = encode_json(metadata, "message metadata")
    when = now if timestamp is None else check_datetime(timestamp, "message timestamp")
    # Hand back what a read will return (a JSON round trip), not the caller's object.
    return EncodedMessage(
        checked_role, checked_content, decode_json(metadata_json), metadata_json, when
    )


def check_owner(owner: object) -> Owner | None:
    """An owner scope with checked ids (``None``: no scope)."""
    if owner is None:
        return None
    if not isinstance(owner, Owner):
        raise InvalidInputError(
            f"owner must be a mofa.persistence.Owner, not {type(owner).__name__}."
        )
    return Owner(
        tenant_id=check_optional_id(owner.tenant_id, "tenant id"),
        user_id=check_optional_id(owner.user_id, "user id"),
        agent_id=check_optional_id(owner.agent_id, "agent id"),
    )
