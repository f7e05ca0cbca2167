"""The read calls of the SQL stores, written once: :class:`SqlStore`.

A SQL backend subclasses it, names its :class:`~._dialect.Dialect` and its
:class:`~._statements.Reads`, and implements :meth:`SqlStore._select` (run one statement,
hand its rows to a reader) and the writes, which differ by dialect (one CTE on PostgreSQL,
a multi-statement transaction on MySQL, a transaction on the worker thread on SQLite).
Every read is one statement and one round trip, with the owner scope inside the statement.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from mofa.persistence._base import BaseStore
from mofa.persistence._checked import SessionQuery
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._health import HealthFacts, StoreCounts
from mofa.persistence.backends._sql._dialect import Dialect
from mofa.persistence.backends._sql._maintenance import (
    COUNTS,
    HEALTH,
    INDEX_NAMES,
    SETTINGS,
    health_facts,
)
from mofa.persistence.backends._sql._statements import Reads, owner_params, session_filters

__all__ = ["SqlStore"]

_T = TypeVar("_T")
_Entity = TypeVar("_Entity")


# Readers: what a read makes of its rows. The store names one with its arguments instead of
# building a closure per call; SQLite runs it on its worker thread, next to the query.
def _first(from_row: Callable[[Any], _Entity], rows: Sequence[Any]) -> _Entity | None:
    return from_row(rows[0]) if rows else None


def _each(from_row: Callable[[Any], _Entity], rows: Sequence[Any]) -> list[_Entity]:
    return [from_row(row) for row in rows]


def _first_of(
    from_row: Callable[[str, Any], _Entity], session_id: str, rows: Sequence[Any]
) -> _Entity | None:
    return from_row(session_id, rows[0]) if rows else None


def _each_of(
    from_row: Callable[[str, Any], _Entity], session_id: str, rows: Sequence[Any]
) -> list[_Entity]:
    return [from_row(session_id, row) for row in rows]


def _oldest_first(
    from_rows: Callable[[str, Sequence[Any]], list[Message]], session_id: str, rows: Sequence[Any]
) -> list[Message]:
    return from_rows(session_id, rows[::-1])  # read newest first, through the index


class SqlStore(BaseStore):
    """The reads every SQL backend shares (see the module docstring)."""

    #: The backend's dialect and its read statements, set by each subclass.
    _dialect: ClassVar[Dialect]
    _reads: ClassVar[Reads]

    @abc.abstractmethod
    async def _select(
        self, sql: str, args: Sequence[Any], read: Callable[..., _T], *read_args: Any
    ) -> _T:
        """Run the read statement ``sql`` and return ``read(*read_args, rows)``.

        A read is safe to repeat, so a backend may retry it on a broken connection.
        """

    def _limit(self, limit: int | None) -> int | None:
        return self._dialect.no_limit if limit is None else limit

    # ---------------------------------------------------------------- agents

    async def _get_agent(self, agent_id: str) -> Agent | None:
        return await self._select(
            self._reads.get_agent, (agent_id,), _first, self._dialect.agent_from_row
        )

    async def _list_agents(self, limit: int | None) -> list[Agent]:
        return await self._select(
            self._reads.list_agents, (self._limit(limit),), _each, self._dialect.agent_from_row
        )

    # -------------------------------------------------------------- sessions

    async def _get_session(self, session_id: str, owner: Owner | None) -> Session | None:
        args: tuple[Any, ...]
        if owner is None:
            sql, args = self._reads.get_session, (session_id,)
        else:
            sql, args = self._reads.get_session_owned, (session_id, *owner_params(owner))
        return await self._select(sql, args, _first, self._dialect.session_from_row)

    async def _list_sessions(self, query: SessionQuery, owner: Owner | None) -> list[Session]:
        key, filters = session_filters(query, owner, self._dialect.wire_time)
        args = (*filters, self._limit(query.limit), query.offset)
        return await self._select(
            self._reads.list_sessions[key], args, _each, self._dialect.session_from_row
        )

    # -------------------------------------------------------------- messages

    async def _list_messages(
        self, session_id: str, limit: int | None, after_seq: int, owner: Owner | None
    ) -> list[Message]:
        count = self._limit(limit)
        args: tuple[Any, ...]
        if owner is None:
            sql, args = self._reads.list_messages, (session_id, after_seq, count)
        else:
            sql = self._reads.list_messages_owned
            args = (session_id, after_seq, session_id, *owner_params(owner), count)
        return await self._select(sql, args, self._dialect.messages_from_rows, session_id)

    async def _list_recent_messages(
        self, session_id: str, limit: int, owner: Owner | None
    ) -> list[Message]:
        args: tuple[Any, ...]
        if owner is None:
            sql, args = self._reads.recent_messages, (session_id, limit)
        else:
            sql = self._reads.recent_messages_owned
            args = (session_id, session_id, *owner_params(owner), limit)
        return await self._select(
            sql, args, _oldest_first, self._dialect.messages_from_rows, session_id
        )

    # ----------------------------------------------------------------- state

    async def _get_state(
        self, session_id: str, version: int | None, owner: Owner | None
    ) -> AgentState | None:
        reads = self._reads
        args: tuple[Any, ...]
        if owner is None:
            if version is None:
                sql, args = reads.latest_state, (session_id,)
            else:
                sql, args = reads.state_version, (session_id, version)
        elif version is None:
            sql, args = reads.latest_state_owned, (session_id, session_id, *owner_params(owner))
        else:
            sql = reads.state_version_owned
            args = (session_id, version, session_id, *owner_params(owner))
        return await self._select(sql, args, _first_of, self._dialect.state_from_row, session_id)

    async def _list_states(
        self, session_id: str, limit: int | None, owner: Owner | None
    ) -> list[AgentState]:
        count = self._limit(limit)
        args: tuple[Any, ...]
        if owner is None:
            sql, args = self._reads.list_states, (session_id, count)
        else:
            sql = self._reads.list_states_owned
            args = (session_id, session_id, *owner_params(owner), count)
        return await self._select(sql, args, _each_of, self._dialect.state_from_row, session_id)

    # ----------------------------------------------------------- maintenance

    async def _get_counts(self) -> StoreCounts:
        row = await self._select(COUNTS, (), _first, tuple)
        return StoreCounts(*(int(value) for value in row or (0, 0, 0)))

    async def _get_health(self) -> HealthFacts:
        dialect = self._dialect.name
        names = await self._select(INDEX_NAMES[dialect], (), _each, _text_of_first)
        settings = {
            name: str((await self._select(sql, (), _first, tuple) or ("",))[0])
            for name, sql in SETTINGS[dialect].items()
        }
        row = await self._select(HEALTH, (), _first, tuple)
        return health_facts(names, settings, row or (0, 0, 0, 0))


def _text_of_first(row: Any) -> str:
    value = row[0]
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)
