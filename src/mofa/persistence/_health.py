"""What a store can tell about itself: its counts (``mofa info``) and the facts a health check
reads (``mofa db doctor``).

:meth:`BaseStore.get_counts <mofa.persistence.BaseStore.get_counts>` reads the counters the
store keeps on write (``sessions.message_count``), never the messages;
:meth:`BaseStore.get_health <mofa.persistence.BaseStore.get_health>` asks the database for
its indexes, its connection settings and the rows no foreign key holds any more.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any, Final, NamedTuple

__all__ = ["HealthFacts", "StoreCounts", "expected_indexes"]

#: An empty mapping no caller can change (the default of the fields that hold one).
_NOTHING: Final[Mapping[Any, Any]] = MappingProxyType({})
_INDEX_NAME = re.compile(r"\bINDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(idx_\w+)", re.IGNORECASE)
#: An index a later migration removes: drops, or makes a key of (PostgreSQL's ``ADD
#: CONSTRAINT … USING INDEX`` renames the index to the constraint's name).
_INDEX_GONE = re.compile(
    r"\b(?:DROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?|USING\s+INDEX\s+)(idx_\w+)",
    re.IGNORECASE,
)


class StoreCounts(NamedTuple):
    """How many agents, sessions and messages a store holds."""

    agents: int
    sessions: int
    messages: int


class HealthFacts(NamedTuple):
    """What a store's database says about itself.

    ``indexes``: the names of the indexes present (``None``: the store has no indexes to
    check, as the file and in-memory stores). ``settings``: connection settings that matter
    (SQLite's ``journal_mode``, ``busy_timeout``, ``foreign_keys``). ``orphans``: rows that
    point at a parent that is gone (``messages``, ``agent_state``, ``sessions`` without their
    agent), and ``miscounted``: sessions whose kept ``message_count`` disagrees with their
    messages — both possible only after another program changed the tables with its
    foreign keys off.
    """

    indexes: frozenset[str] | None = None
    settings: Mapping[str, str] = _NOTHING
    orphans: Mapping[str, int] = _NOTHING
    miscounted: int = 0


@cache
def expected_indexes(dialect: str) -> frozenset[str]:
    """The indexes the schema's migrations create on ``dialect`` and no later one removes
    (version 4 turns ``idx_messages_session`` into messages' primary key)."""
    from mofa.persistence import schema

    found: set[str] = set()
    for migration in schema.migrations(dialect):
        gone = set(_INDEX_GONE.findall(migration.sql))
        found |= set(_INDEX_NAME.findall(_INDEX_GONE.sub("", migration.sql)))
        found -= gone
    return frozenset(found)
