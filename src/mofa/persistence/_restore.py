"""The checks behind :meth:`Store.restore_session`: a session written back exactly as it was
stored — its times, its counter, every message with its ``seq`` and timestamp, every state
version — and the batches a backend writes it in.

A restore is what an import (``mofa session import``) and a copy between stores are built
on. The session and its agent are checked before anything is written; the messages and
states are checked as the backend pulls them, batch by batch, so a session of any size goes
through in flat memory. A record that fails a check ends the iteration with
:class:`InvalidInputError`, inside the backend's transaction, which then writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Literal

from mofa.persistence._codec import (
    MAX_SEQ,
    check_datetime,
    check_id,
    check_optional_id,
    check_role,
    check_short_text,
    check_text,
    decode_json,
    encode_json,
)
from mofa.persistence._encoded import EncodedMessage
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Role, Session
from mofa.persistence.errors import InvalidInputError, SessionExistsError

__all__ = [
    "BATCH_BYTES",
    "BATCH_ROWS",
    "CONFLICT_POLICIES",
    "ConflictPolicy",
    "RestoreBatch",
    "RestoredMessage",
    "RestoredState",
    "SourceError",
    "check_policy",
    "check_restored_agent",
    "check_restored_owner",
    "check_restored_session",
    "next_batch",
    "replaces",
    "restore_batches",
]

#: What :meth:`Store.restore_session` does when the session id is taken: refuse
#: (:class:`SessionExistsError`), leave the stored session as it is (returns ``None``), or
#: replace it in the same transaction (the old one stays whole if the restore fails).
ConflictPolicy = Literal["fail", "skip", "replace"]
CONFLICT_POLICIES: Final = ("fail", "skip", "replace")

#: A batch ends at this many records, or once its text reaches this many UTF-8 bytes: far
#: below MariaDB's default packet limit (16 MB), whatever the characters; a single larger
#: record travels alone (the store accepts nothing a server would refuse to append either).
BATCH_ROWS: Final = 1000
BATCH_BYTES: Final = 4 * 1024 * 1024

_MAX_STATUS = 50
_MAX_SHORT = 255
_MAX_AGENT_STATE = 50
_MAX_PROVIDER = 100


class RestoredMessage(EncodedMessage):
    """A checked message with the ``seq`` it had where it was exported."""

    __slots__ = ("seq",)

    def __init__(
        self,
        seq: int,
        role: Role,
        content: str,
        metadata: dict[str, Any],
        metadata_json: str,
        timestamp: datetime,
    ) -> None:
        super().__init__(role, content, metadata, metadata_json, timestamp)
        self.seq = seq


class RestoredState:
    """A checked state snapshot: its version, its JSON text and when it was saved."""

    __slots__ = ("created_at", "state_json", "version")

    def __init__(self, version: int, state_json: str, created_at: datetime) -> None:
        self.version = version
        self.state_json = state_json
        self.created_at = created_at


class RestoreBatch:
    """The next records to write, in ``seq`` and ``version`` order."""

    __slots__ = ("messages", "states")

    def __init__(self) -> None:
        self.messages: list[RestoredMessage] = []
        self.states: list[RestoredState] = []


class SourceError(Exception):
    """An exception raised while the records were read (a bad record, a failing file),
    carried through a backend's database error handling to be raised as it is."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


async def next_batch(batches: AsyncIterator[RestoreBatch]) -> RestoreBatch | None:
    """The next batch (``None`` at the end); what reading it raised comes as
    :class:`SourceError`, so a backend never takes it for an error of its database."""
    try:
        return await anext(batches, None)
    except Exception as exc:
        raise SourceError(exc) from exc


def check_policy(on_conflict: object) -> ConflictPolicy:
    if on_conflict == "fail":
        return "fail"
    if on_conflict == "skip":
        return "skip"
    if on_conflict == "replace":
        return "replace"
    raise InvalidInputError(
        f"on_conflict must be one of {', '.join(CONFLICT_POLICIES)}, not {on_conflict!r}."
    )


def replaces(
    session_id: str,
    on_conflict: ConflictPolicy,
    owner: Owner | None,
    held_by: tuple[str | None, str | None, str | None],
) -> bool:
    """What a restore does with a taken id, given whose session holds it (its tenant, user
    and agent ids): True replaces it, False skips it. Raises :class:`SessionExistsError`
    for ``"fail"``, and through ``owner`` for another owner's session whatever the policy:
    a scope never replaces (nor reports skipping) a session it cannot see."""
    if on_conflict == "fail" or (
        owner is not None and held_by != (owner.tenant_id, owner.user_id, owner.agent_id)
    ):
        raise SessionExistsError(session_id)
    return on_conflict == "replace"


def check_restored_owner(
    session: Session, agent: Agent | None, owner: Owner | None
) -> Agent | None:
    """Through ``owner``: the session must be the owner's, and an agent record to create
    gets the owner's tenant (as :meth:`upsert_agent` through an owner gives it)."""
    if owner is None:
        return agent
    if not owner.owns(session):
        raise InvalidInputError(
            f"Session {session.session_id!r} belongs to tenant {session.tenant_id!r}, user "
            f"{session.user_id!r} and agent {session.agent_id!r}, outside the owner scope it is "
            f"restored through (tenant {owner.tenant_id!r}, user {owner.user_id!r}, agent "
            f"{owner.agent_id!r})."
        )
    if agent is None or agent.tenant_id == owner.tenant_id:
        return agent
    return dataclasses.replace(agent, tenant_id=owner.tenant_id)


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise InvalidInputError(
            f"The {what} must be an integer from 0 to {MAX_SEQ}, not {value!r}."
        )
    return value


def check_restored_session(session: object) -> tuple[Session, str]:
    """The session to restore with every field checked, and its metadata's JSON text."""
    if not isinstance(session, Session):
        raise InvalidInputError(
            f"restore_session takes a mofa.persistence.Session, not {type(session).__name__}."
        )
    metadata_json = encode_json(session.metadata, "session metadata")
    checked = Session(
        session_id=check_id(session.session_id),
        agent_id=check_optional_id(session.agent_id, "agent id"),
        user_id=check_optional_id(session.user_id, "user id"),
        tenant_id=check_optional_id(session.tenant_id, "tenant id"),
        status=check_short_text(session.status, "session status", _MAX_STATUS),
        metadata=decode_json(metadata_json),
        message_count=_count(session.message_count, "message_count"),
        created_at=check_datetime(session.created_at, "created_at"),
        updated_at=check_datetime(session.updated_at, "updated_at"),
        expires_at=None
        if session.expires_at is None
        else check_datetime(session.expires_at, "expires_at"),
    )
    return checked, metadata_json


def check_restored_agent(agent: object, session: Session) -> Agent | None:
    """The session's agent record to create if the store has none, checked; ``None``: the
    store makes its usual placeholder when it has no record of the session's agent."""
    if agent is None:
        return None
    if not isinstance(agent, Agent):
        raise InvalidInputError(
            f"agent must be a mofa.persistence.Agent, not {type(agent).__name__}."
        )
    if agent.id != session.agent_id:
        raise InvalidInputError(
            f"The agent record is {agent.id!r}, but the session's agent is {session.agent_id!r}."
        )

    def optional(value: object, what: str, limit: int) -> str | None:
        return None if value is None else check_short_text(value, what, limit)

    return Agent(
        id=check_id(agent.id, "agent id"),
        name=check_short_text(agent.name, "agent name", _MAX_SHORT),
        state=check_short_text(agent.state, "agent state", _MAX_AGENT_STATE),
        started_at=check_datetime(agent.started_at, "started_at"),
        provider=optional(agent.provider, "provider", _MAX_PROVIDER),
        model=optional(agent.model, "model", _MAX_PROVIDER),
        description=None
        if agent.description is None
        else check_text(agent.description, "description"),
        created_at=check_datetime(agent.created_at, "agent created_at"),
        updated_at=check_datetime(agent.updated_at, "agent updated_at"),
        tenant_id=check_optional_id(agent.tenant_id, "agent tenant id"),
    )


def _next_number(value: object, expected: int, what: str) -> int:
    """``value`` if it is ``expected`` (the stores number 1, 2, 3… with no gap), else a
    sentence that says how it is out of order."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"A {what} must be an integer, not {value!r}.")
    if value == expected:
        return value
    if value == expected - 1:
        raise InvalidInputError(f"{what} {value} appears twice.")
    if value < expected:
        raise InvalidInputError(
            f"{what} {value} follows {what} {expected - 1}; they must be strictly increasing."
        )
    raise InvalidInputError(
        f"{what} {value} follows {what} {expected - 1}; a store numbers them 1, 2, 3… "
        f"with no gap, so {expected} is missing."
    )


def _restored_message(item: Message, session_id: str, expected: int) -> RestoredMessage:
    seq = _next_number(item.seq, expected, "message seq")
    if item.session_id != session_id:
        raise InvalidInputError(
            f"Message {seq} belongs to session {item.session_id!r}, not {session_id!r}."
        )
    metadata = item.metadata
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(
            f"The metadata of message {seq} must be a JSON object, not {type(metadata).__name__}."
        )
    metadata_json = encode_json(metadata, f"metadata of message {seq}")
    return RestoredMessage(
        seq,
        check_role(item.role),
        check_text(item.content, f"content of message {seq}"),
        # The backends write metadata_json and a read decodes that: this object is not kept.
        metadata,
        metadata_json,
        check_datetime(item.timestamp, f"timestamp of message {seq}"),
    )


def _restored_state(item: AgentState, session_id: str, expected: int) -> RestoredState:
    version = _next_number(item.version, expected, "state version")
    if item.session_id != session_id:
        raise InvalidInputError(
            f"State version {version} belongs to session {item.session_id!r}, not {session_id!r}."
        )
    if not isinstance(item.state, Mapping):
        raise InvalidInputError(
            f"State version {version} must be a JSON object, not {type(item.state).__name__}."
        )
    return RestoredState(
        version,
        encode_json(item.state, f"agent state version {version}"),
        check_datetime(item.created_at, f"created_at of state version {version}"),
    )


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


async def _each(
    records: Iterable[Message | AgentState] | AsyncIterable[Message | AgentState],
) -> AsyncIterator[Message | AgentState]:
    if isinstance(records, AsyncIterable):
        async for item in records:
            yield item
    else:
        for item in records:
            yield item


async def restore_batches(
    session: Session,
    records: Iterable[Message | AgentState] | AsyncIterable[Message | AgentState],
) -> AsyncGenerator[RestoreBatch]:
    """``records`` checked and grouped into batches (see :data:`BATCH_ROWS`).

    Messages must come with ``seq`` 1, 2, 3… and states with version 1, 2, 3…, each kind in
    its own order (they may interleave), all of ``session``; there must be exactly
    ``session.message_count`` messages. Any other input ends the iteration with
    :class:`InvalidInputError`.
    """
    if not isinstance(records, Iterable | AsyncIterable) or isinstance(records, str | bytes):
        raise InvalidInputError(
            "restore_session takes the session's messages and states as an iterable "
            f"(or async iterable), not {type(records).__name__}."
        )
    session_id = session.session_id
    next_seq = next_version = 1
    batch, size = RestoreBatch(), 0
    async for item in _each(records):
        if isinstance(item, Message):
            message = _restored_message(item, session_id, next_seq)
            next_seq += 1
            if next_seq - 1 > session.message_count:
                raise InvalidInputError(
                    f"The session holds {session.message_count} messages (its "
                    f"message_count), but message {message.seq} was given."
                )
            batch.messages.append(message)
            size += _utf8_size(message.content) + _utf8_size(message.metadata_json)
        elif isinstance(item, AgentState):
            state = _restored_state(item, session_id, next_version)
            next_version += 1
            batch.states.append(state)
            size += _utf8_size(state.state_json)
        else:
            raise InvalidInputError(
                f"restore_session takes Message and AgentState records, not {type(item).__name__}."
            )
        if len(batch.messages) + len(batch.states) >= BATCH_ROWS or size >= BATCH_BYTES:
            yield batch
            batch, size = RestoreBatch(), 0
    if next_seq - 1 != session.message_count:
        raise InvalidInputError(
            f"The session holds {session.message_count} messages (its message_count), "
            f"but {next_seq - 1} were given."
        )
    if batch.messages or batch.states:
        yield batch
