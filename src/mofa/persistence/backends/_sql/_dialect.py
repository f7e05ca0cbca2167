"""What one SQL dialect is to the shared core: how it writes placeholders, JSON columns, "no
limit" and NULL-safe equality, and how it turns its rows into entities.

The shared statements (:mod:`._statements`) and the shared reads (:mod:`._store`) are written
once against a :class:`Dialect`; each backend package builds its one instance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mofa.persistence._entities import Agent, AgentState, Message, Session

__all__ = ["Dialect", "numbered", "positional"]


def _as_is(value: datetime) -> datetime:
    return value


def numbered(prefix: str) -> Callable[[int], str]:
    """Placeholders that carry their position (PostgreSQL's ``$1``, ``$2``…)."""
    return f"{prefix}{{}}".format


def positional(mark: str) -> Callable[[int], str]:
    """Placeholders that do not (``?``, ``%s``): the n-th one in the text is the n-th value."""
    return lambda _position: mark


@dataclass(frozen=True, slots=True)
class Dialect:
    """One SQL dialect, as the shared statements and reads need it.

    The shared statements number their placeholders in the order they appear in the text,
    so one argument tuple serves every dialect, whether its placeholders carry a number or not.
    """

    #: The name ``mofa.persistence.schema`` knows it by (``postgres``, ``mysql``, ``sqlite``).
    name: str
    #: ``mark(n)``: the n-th placeholder (from 1).
    mark: Callable[[int], str]
    #: Equality under which NULL equals NULL and nothing else (an owner's ``None`` fields).
    null_safe_equal: str
    #: The LIMIT value that means "every row" (a limit of ``None``).
    no_limit: int | None
    #: ``json_text(column)``: the column as the text its row reader decodes.
    json_text: Callable[[str], str]
    session_from_row: Callable[[Any], Session]
    agent_from_row: Callable[[Any], Agent]
    #: ``messages_from_rows(session_id, rows)``: a load's hot path, so one call per result.
    messages_from_rows: Callable[[str, Sequence[Any]], list[Message]]
    state_from_row: Callable[[str, Any], AgentState]
    #: ``wire_time(value)``: an aware UTC time as the dialect compares it with a time column
    #: (SQLite's fixed-width text, MySQL's naive UTC; PostgreSQL takes it as it is).
    wire_time: Callable[[datetime], Any] = _as_is
