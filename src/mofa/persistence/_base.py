"""The base class every backend builds on.

:class:`BaseStore` implements the public methods of the :class:`~mofa.persistence.Store`
contract once: it validates and encodes every argument (so each backend accepts and rejects
exactly the same input), then calls the backend's private ``_``-methods with values that are
already checked. A backend implements only those.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Self

from mofa.persistence._checked import check_session_query
from mofa.persistence._codec import (
    MAX_SEQ,
    check_datetime,
    check_id,
    check_limit,
    check_optional_id,
    check_short_text,
    check_text,
    decode_json,
    encode_json,
)
from mofa.persistence._contract import UNSET, Unset
from mofa.persistence._encoded import EncodedMessage, check_owner, encode_message
from mofa.persistence._entities import (
    Agent,
    AgentState,
    Message,
    NewMessage,
    Owner,
    Role,
    Session,
    new_session_id,
    utc_now,
)
from mofa.persistence._hooks import BackendHooks
from mofa.persistence._maintenance import Maintenance
from mofa.persistence._registry import display_name
from mofa.persistence._restore import (
    check_policy,
    check_restored_agent,
    check_restored_owner,
    check_restored_session,
    restore_batches,
)
from mofa.persistence._url import DatabaseURL
from mofa.persistence.errors import InvalidInputError, SessionNotFoundError, StoreClosedError

__all__ = ["BaseStore", "EncodedMessage"]

_MAX_STATUS = 50
_MAX_AGENT_NAME = 255
_MAX_AGENT_STATE = 50
_MAX_PROVIDER = 100


class BaseStore(Maintenance, BackendHooks):
    """Validation, lifecycle and derived operations shared by every backend."""

    #: The backend's name as used in URLs and messages ("sqlite", "postgres", …).
    backend: ClassVar[str]

    def __init__(self, url: DatabaseURL) -> None:
        self._url = url
        self._closed = False
        #: Set by stores whose connections belong to the event loop that opened them.
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Schema versions that opening this store applied (empty: it was already current).
        #: ``mofa db init -u`` reports from this.
        self.applied_migrations: tuple[int, ...] = ()

    @classmethod
    @abc.abstractmethod
    async def connect(cls, url: str | DatabaseURL, **options: Any) -> Self:
        """Open the store at ``url`` (creating or upgrading its schema unless
        ``create_schema=False``); ``options`` are the backend's own keyword settings."""

    @property
    def url(self) -> DatabaseURL:
        """The URL the store was opened with (its ``str()`` masks any password)."""
        return self._url

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url.masked!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Release connections and threads. Closing twice is harmless."""
        if not self._closed:
            self._closed = True
            owner = self._loop
            if owner is None or asyncio.get_running_loop() is owner:
                await self._close()
            elif owner.is_running():  # in another thread: close it there
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close(), owner))
            else:
                # Nothing can be sent on connections whose loop has stopped: drop them.
                with contextlib.suppress(Exception):
                    self._drop_connections()

    def _drop_connections(self) -> None:
        """Drop the connections without awaiting anything (close() from a foreign loop)."""

    @property
    def _name(self) -> str:
        return display_name(self.backend)

    def _closed_meanwhile(self, waiting_for: str = "a connection") -> StoreClosedError:
        """For a call that was still waiting (for a connection, its turn…) when ``close()``
        began: it was never run."""
        return StoreClosedError(
            f"The {self._name} store was closed while this call waited for {waiting_for}; "
            "it was not run."
        )

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"The {self._name} store was used after close().")
        if self._loop is not None and asyncio.get_running_loop() is not self._loop:
            raise StoreClosedError(
                f"The {self._name} store was opened in another event loop, which its "
                "connections belong to; open the store inside the event loop that uses it "
                "(one store per asyncio.run)."
            )

    # ---------------------------------------------------------------- agents

    async def upsert_agent(
        self,
        agent_id: str,
        *,
        name: str | None = None,
        state: str = "running",
        provider: str | None = None,
        model: str | None = None,
        description: str | None = None,
        started_at: datetime | None = None,
        owner: Owner | None = None,
    ) -> Agent:
        """Create the agent record, or update every field of an existing one.

        ``created_at`` of an existing agent is kept; ``name`` defaults to the id. With an
        ``owner`` a new record belongs to the owner's tenant, and a record another tenant
        registered is left as it is (:class:`AgentExistsError`); without one the tenant of an
        existing record is kept.
        """
        self._check_open()
        scope = check_owner(owner)
        now = utc_now()
        agent = Agent(
            id=check_id(agent_id, "agent id"),
            name=check_short_text(
                agent_id if name is None else name, "agent name", _MAX_AGENT_NAME
            ),
            state=check_short_text(state, "agent state", _MAX_AGENT_STATE),
            started_at=now if started_at is None else check_datetime(started_at, "started_at"),
            provider=None
            if provider is None
            else check_short_text(provider, "provider", _MAX_PROVIDER),
            model=None if model is None else check_short_text(model, "model", _MAX_PROVIDER),
            description=None if description is None else check_text(description, "description"),
            created_at=now,
            updated_at=now,
            tenant_id=None if scope is None else scope.tenant_id,
        )
        return await self._upsert_agent(agent, scope)

    async def get_agent(self, agent_id: str) -> Agent | None:
        self._check_open()
        return await self._get_agent(check_id(agent_id, "agent id"))

    async def list_agents(self, *, limit: int | None = None) -> list[Agent]:
        """Agents, most recently updated first."""
        self._check_open()
        return await self._list_agents(check_limit(limit))

    # -------------------------------------------------------------- sessions

    async def create_session(
        self,
        session_id: str | None = None,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        tenant_id: str | None = None,
        status: str = "active",
        metadata: Mapping[str, Any] | None = None,
        expires_at: datetime | None = None,
    ) -> Session:
        """Create a session (a UUIDv7 id when none is given).

        An agent id with no agent record gets a minimal one (name = id, state ``unknown``),
        so the foreign key holds. Raises :class:`SessionExistsError` if the id is taken.
        """
        self._check_open()
        now = utc_now()
        metadata_json = encode_json(metadata, "session metadata")
        session = Session(
            session_id=new_session_id() if session_id is None else check_id(session_id),
            agent_id=check_optional_id(agent_id, "agent id"),
            user_id=check_optional_id(user_id, "user id"),
            tenant_id=check_optional_id(tenant_id, "tenant id"),
            status=check_short_text(status, "session status", _MAX_STATUS),
            metadata=decode_json(metadata_json),
            message_count=0,
            created_at=now,
            updated_at=now,
            expires_at=None if expires_at is None else check_datetime(expires_at, "expires_at"),
        )
        return await self._create_session(session, metadata_json)

    async def get_session(self, session_id: str, *, owner: Owner | None = None) -> Session | None:
        """The session, ``None`` when missing (or, through ``owner``, not the owner's)."""
        self._check_open()
        scope = check_owner(owner)
        return await self._get_session(check_id(session_id), scope)

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        tenant_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        owner: Owner | None = None,
    ) -> list[Session]:
        """Sessions matching every filter given, newest (by ``created_at``) first.

        A filter left ``None`` matches any value; through ``owner`` only the owner's sessions
        are listed (its ``None`` fields match sessions without that value), so a filter
        that names another value lists nothing. ``status`` matches the stored status (an
        expired session keeps its own); ``since`` and ``until`` bound ``created_at``
        (``since <= created_at < until``). The agent, user and tenant filters choose the
        index the listing reads in order; the others are checked on the rows it reads, so
        nothing is sorted. Reads no messages: ``message_count`` is kept on write.
        """
        self._check_open()
        query = check_session_query(
            agent_id, user_id, tenant_id, limit, offset, status, since, until
        )
        scope = check_owner(owner)
        if scope is not None and query.outside(scope):
            return []  # a filter outside the scope: nothing of the owner's matches
        return await self._list_sessions(query, scope)

    async def update_session(
        self,
        session_id: str,
        *,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expires_at: datetime | Unset | None = UNSET,
        owner: Owner | None = None,
    ) -> Session:
        """Change status, replace metadata and/or set or clear ``expires_at``.

        Raises :class:`SessionNotFoundError` when the session does not exist.
        """
        self._check_open()
        checked_id = check_id(session_id)
        scope = check_owner(owner)
        checked_status = (
            None if status is None else check_short_text(status, "session status", _MAX_STATUS)
        )
        metadata_json = None if metadata is None else encode_json(metadata, "session metadata")
        checked_expiry: datetime | Unset | None = expires_at
        if isinstance(expires_at, datetime):
            checked_expiry = check_datetime(expires_at, "expires_at")
        elif expires_at is not None and expires_at is not UNSET:
            raise InvalidInputError("expires_at must be a datetime or None.")
        return await self._update_session(
            checked_id, checked_status, metadata_json, checked_expiry, utc_now(), scope
        )

    async def delete_session(self, session_id: str, *, owner: Owner | None = None) -> bool:
        """Delete a session with its messages and state; False if there was none."""
        self._check_open()
        scope = check_owner(owner)
        return await self._delete_session(check_id(session_id), scope)

    # -------------------------------------------------------------- messages

    async def append_message(
        self,
        session_id: str,
        role: Role | str,
        content: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
        owner: Owner | None = None,
    ) -> Message:
        """Append one message; it gets the session's next ``seq``.

        Raises :class:`SessionNotFoundError` when the session does not exist.
        """
        self._check_open()
        checked_id = check_id(session_id)
        scope = check_owner(owner)
        now = utc_now()
        message = encode_message(role, content, metadata, timestamp, now)
        return await self._append_message(checked_id, message, now, scope)

    async def append_messages(
        self, session_id: str, messages: Sequence[NewMessage], *, owner: Owner | None = None
    ) -> list[Message]:
        """Append several messages atomically and in order (all or none)."""
        self._check_open()
        checked_id = check_id(session_id)
        scope = check_owner(owner)
        now = utc_now()
        encoded = []
        for position, item in enumerate(messages):
            if not isinstance(item, NewMessage):
                raise InvalidInputError(
                    f"Message {position} of the batch is a {type(item).__name__}; "
                    "pass mofa.persistence.NewMessage objects."
                )
            encoded.append(
                encode_message(item.role, item.content, item.metadata, item.timestamp, now)
            )
        if not encoded:
            if await self._get_session(checked_id, scope) is None:
                raise SessionNotFoundError(checked_id)
            return []
        return await self._append_messages(checked_id, encoded, now, scope)

    async def list_messages(
        self,
        session_id: str,
        *,
        limit: int | None = None,
        after_seq: int = 0,
        owner: Owner | None = None,
    ) -> list[Message]:
        """Messages in ``seq`` order; page with ``after_seq`` (the last ``seq`` you saw)."""
        self._check_open()
        checked_id = check_id(session_id)
        checked_limit = check_limit(limit)
        after = check_limit(after_seq, "after_seq") or 0
        scope = check_owner(owner)
        if after >= MAX_SEQ:
            return []  # no seq is larger (and PostgreSQL could not even compare with it)
        return await self._list_messages(checked_id, checked_limit, after, scope)

    async def list_recent_messages(
        self, session_id: str, *, limit: int, owner: Owner | None = None
    ) -> list[Message]:
        """The newest ``limit`` messages, returned in chronological order."""
        self._check_open()
        checked_limit = check_limit(limit)
        if checked_limit is None:
            raise InvalidInputError("list_recent_messages needs a limit.")
        checked_id = check_id(session_id)
        scope = check_owner(owner)
        if checked_limit == 0:
            return []  # nothing to read (backends are called with limit >= 1)
        return await self._list_recent_messages(checked_id, checked_limit, scope)

    async def iter_messages(
        self, session_id: str, *, batch_size: int = 1000, owner: Owner | None = None
    ) -> AsyncIterator[Message]:
        """Every message of the session in order, read ``batch_size`` at a time."""
        self._check_open()
        checked_id = check_id(session_id)
        scope = check_owner(owner)
        size = check_limit(batch_size, "batch_size")
        if not size:
            raise InvalidInputError("batch_size must be a positive integer.")
        after = 0
        while True:
            self._check_open()  # the store may be closed between two batches
            # The scope is in every batch's statement: a session deleted and re-created by
            # another owner between two batches yields nothing more.
            batch = await self._list_messages(checked_id, size, after, scope)
            for message in batch:
                yield message
            if len(batch) < size:
                return
            after = batch[-1].seq

    async def count_messages(self, session_id: str, *, owner: Owner | None = None) -> int:
        """How many messages the session holds (0 for a missing session)."""
        self._check_open()
        scope = check_owner(owner)
        session = await self._get_session(check_id(session_id), scope)
        return 0 if session is None else session.message_count

    # ----------------------------------------------------------------- state

    async def save_state(
        self, session_id: str, state: Mapping[str, Any], *, owner: Owner | None = None
    ) -> AgentState:
        """Save a new snapshot; versions count 1, 2, 3… per session."""
        self._check_open()
        checked_id = check_id(session_id)
        scope = check_owner(owner)
        if not isinstance(state, Mapping):
            raise InvalidInputError(
                f"The agent state must be a JSON object (a dict), not {type(state).__name__}."
            )
        state_json = encode_json(state, "agent state")
        return await self._save_state(
            checked_id, decode_json(state_json), state_json, utc_now(), scope
        )

    async def get_state(
        self, session_id: str, version: int | None = None, *, owner: Owner | None = None
    ) -> AgentState | None:
        """The latest snapshot, or the given version; ``None`` when there is none."""
        self._check_open()
        checked_id = check_id(session_id)
        scope = check_owner(owner)
        if version is not None:
            check_limit(version, "version")
            if version > MAX_SEQ:
                return None  # no store holds such a version
        return await self._get_state(checked_id, version, scope)

    async def list_states(
        self, session_id: str, *, limit: int | None = None, owner: Owner | None = None
    ) -> list[AgentState]:
        """Snapshots, newest version first."""
        self._check_open()
        scope = check_owner(owner)
        return await self._list_states(check_id(session_id), check_limit(limit), scope)

    # --------------------------------------------------------------- restore

    async def restore_session(
        self,
        session: Session,
        records: Iterable[Message | AgentState] | AsyncIterable[Message | AgentState] = (),
        *,
        agent: Agent | None = None,
        on_conflict: str = "fail",
        owner: Owner | None = None,
    ) -> Session | None:
        """Write ``session`` back exactly as given, with its messages and states, atomically.

        Every field is kept: the session's times, status and ``message_count``, each
        message's ``seq``, timestamp and metadata, each state's version and time. ``records``
        (an iterable or async iterable, read once, in flat memory) holds the messages with
        ``seq`` 1, 2, 3… and the states with version 1, 2, 3…; there must be exactly
        ``message_count`` messages. ``agent`` is the record to create when the store has
        none of the session's agent (one it has is left as it is; without ``agent`` it gets
        the placeholder :meth:`create_session` makes).

        When the id is taken, ``on_conflict`` decides: ``"fail"`` raises
        :class:`SessionExistsError`, ``"skip"`` changes nothing and returns ``None``,
        ``"replace"`` swaps the stored session for this one in the same transaction. All or
        nothing: a record that fails its checks (:class:`InvalidInputError`), or an error
        raised by ``records`` itself, leaves the store as it was.

        Through ``owner`` the session must be the owner's (else :class:`InvalidInputError`),
        a created agent record gets the owner's tenant, and an id that another owner holds
        is refused with :class:`SessionExistsError` whatever ``on_conflict`` says (the one
        refusal a scope can see, as for :meth:`create_session`): it is never replaced.
        """
        self._check_open()
        checked, metadata_json = check_restored_session(session)
        scope = check_owner(owner)
        checked_agent = check_restored_owner(checked, check_restored_agent(agent, checked), scope)
        policy = check_policy(on_conflict)
        batches = restore_batches(checked, records)
        try:
            return await self._restore_session(
                checked, metadata_json, checked_agent, batches, policy, scope
            )
        finally:
            # A backend that gave up waiting may leave it running; it then ends on its own.
            with contextlib.suppress(RuntimeError):
                await batches.aclose()
