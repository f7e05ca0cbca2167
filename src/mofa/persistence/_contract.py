"""The store contract, declared once: what every backend offers and callers program against.

:class:`Store` is a :class:`~typing.Protocol`: a third-party store that has these methods
satisfies it without inheriting anything. The backends here all build on
:class:`~mofa.persistence.BaseStore` (``_base``), which validates every argument once and
calls the backend's private ``_``-methods.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, Self, runtime_checkable

from mofa.persistence._entities import (
    Agent,
    AgentState,
    Message,
    NewMessage,
    Owner,
    Role,
    Session,
)

if TYPE_CHECKING:
    from mofa.persistence._health import HealthFacts, StoreCounts
    from mofa.persistence._prune import PruneResult
    from mofa.persistence._url import DatabaseURL

__all__ = ["UNSET", "Store", "Unset"]


class Unset(enum.Enum):
    """Marks an argument that was not given (``None`` is a value: "clear it")."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET


@runtime_checkable
class Store(Protocol):
    """What every backend offers. All methods are coroutines; ``async with`` closes the store.

    Conventions: ``get_*`` returns the record or ``None``; ``delete_*`` returns whether
    something was deleted; ``list_*`` takes a keyword-only ``limit``. Lists of sessions and
    states are newest first; lists of messages are in ``seq`` (chronological) order.

    Every method that addresses a session takes ``owner=`` (an :class:`Owner`): the backend
    puts it into the statement it runs, so through a scope another owner's session reads
    and writes exactly like a missing one. ``upsert_agent(owner=…)`` records the owner's
    tenant on a new agent and refuses to change another tenant's (:class:`AgentExistsError`).
    """

    @property
    def url(self) -> DatabaseURL: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    # Agents
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
    ) -> Agent: ...

    async def get_agent(self, agent_id: str) -> Agent | None: ...

    async def list_agents(self, *, limit: int | None = None) -> list[Agent]: ...

    # Sessions
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
    ) -> Session: ...

    async def get_session(
        self, session_id: str, *, owner: Owner | None = None
    ) -> Session | None: ...

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
    ) -> list[Session]: ...

    async def update_session(
        self,
        session_id: str,
        *,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expires_at: datetime | Unset | None = UNSET,
        owner: Owner | None = None,
    ) -> Session: ...

    async def delete_session(self, session_id: str, *, owner: Owner | None = None) -> bool: ...

    async def prune_sessions(
        self,
        *,
        older_than: datetime | None = None,
        expired: bool = False,
        keep_last: int | None = None,
        agent_id: str | None = None,
        user_id: str | None = None,
        tenant_id: str | None = None,
        dry_run: bool = False,
        batch_size: int = 200,
        on_batch: Callable[[Sequence[Session], bool], object] | None = None,
    ) -> PruneResult: ...

    async def get_counts(self) -> StoreCounts: ...

    async def get_health(self) -> HealthFacts: ...

    # Messages
    async def append_message(
        self,
        session_id: str,
        role: Role | str,
        content: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
        owner: Owner | None = None,
    ) -> Message: ...

    async def append_messages(
        self, session_id: str, messages: Sequence[NewMessage], *, owner: Owner | None = None
    ) -> list[Message]: ...

    async def list_messages(
        self,
        session_id: str,
        *,
        limit: int | None = None,
        after_seq: int = 0,
        owner: Owner | None = None,
    ) -> list[Message]: ...

    async def list_recent_messages(
        self, session_id: str, *, limit: int, owner: Owner | None = None
    ) -> list[Message]: ...

    def iter_messages(
        self, session_id: str, *, batch_size: int = 1000, owner: Owner | None = None
    ) -> AsyncIterator[Message]: ...

    async def count_messages(self, session_id: str, *, owner: Owner | None = None) -> int: ...

    # Agent state
    async def save_state(
        self, session_id: str, state: Mapping[str, Any], *, owner: Owner | None = None
    ) -> AgentState: ...

    async def get_state(
        self, session_id: str, version: int | None = None, *, owner: Owner | None = None
    ) -> AgentState | None: ...

    async def list_states(
        self, session_id: str, *, limit: int | None = None, owner: Owner | None = None
    ) -> list[AgentState]: ...

    # Restoring a session exactly as it was stored (an import, a copy between stores)
    async def restore_session(
        self,
        session: Session,
        records: Iterable[Message | AgentState] | AsyncIterable[Message | AgentState] = (),
        *,
        agent: Agent | None = None,
        on_conflict: str = "fail",
        owner: Owner | None = None,
    ) -> Session | None: ...
