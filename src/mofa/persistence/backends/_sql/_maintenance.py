"""The SQL of the maintenance calls, written once for every dialect: a prune's batch, the
store's counts, and the facts of a health check (see :mod:`mofa.persistence._maintenance`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from mofa.persistence._health import HealthFacts
from mofa.persistence._prune import PruneRule

__all__ = [
    "COUNTS",
    "HEALTH",
    "INDEX_NAMES",
    "SETTINGS",
    "delete_sessions_statement",
    "health_facts",
    "prune_parameters",
]

#: The indexes a health check finds, per dialect (SQLite's own, for keys, start with sqlite_).
INDEX_NAMES: Final = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'",
    "postgres": "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()",
    "mysql": "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = DATABASE()",
}
#: The settings a health check reports, per dialect: name -> the statement that reads it.
SETTINGS: Final = {
    "sqlite": {
        name: f"PRAGMA {name}"
        for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
    },
    "postgres": {"server_version": "SHOW server_version"},
    "mysql": {"server_version": "SELECT VERSION()"},
}


def delete_sessions_statement(count: int, mark: Callable[[int], str], tail: str = "") -> str:
    """Delete ``count`` sessions by id that a prune rule still selects (their messages and
    state go by cascade).

    Parameters: the ids, then the rule's ``older_than`` twice and its ``now`` twice (each
    ``None`` when that condition is not part of the rule), as :func:`prune_parameters`
    gives them; ``tail`` ends the statement (``RETURNING session_id``, ``FOR UPDATE``).
    """
    ids = ", ".join(mark(n) for n in range(1, count + 1))
    older, now = count + 1, count + 3
    return (
        f"DELETE FROM sessions WHERE session_id IN ({ids})"  # noqa: S608 - constant fragments
        f" AND ({mark(older)} IS NULL OR updated_at < {mark(older + 1)})"
        f" AND ({mark(now)} IS NULL OR expires_at <= {mark(now + 1)}){tail}"
    )


def prune_parameters(
    session_ids: list[str], rule: PruneRule, wire_time: Callable[[datetime], Any]
) -> list[Any]:
    """The parameters of :func:`delete_sessions_statement`."""
    older = None if rule.older_than is None else wire_time(rule.older_than)
    now = wire_time(rule.now) if rule.expired else None
    return [*session_ids, older, older, now, now]


#: The store's counts: agents, sessions, and messages from the counters kept on write.
COUNTS: Final = (
    "SELECT (SELECT COUNT(*) FROM agents), (SELECT COUNT(*) FROM sessions), "
    "(SELECT COALESCE(SUM(message_count), 0) FROM sessions)"
)
#: Rows whose parent is gone (messages, agent_state, sessions without their agent), then the
#: sessions whose message_count disagrees with their messages: possible only after another
#: program wrote with foreign keys off. Reads whole tables (``mofa db doctor`` only).
HEALTH: Final = (
    "SELECT (SELECT COUNT(*) FROM messages WHERE NOT EXISTS (SELECT 1 FROM sessions "
    "WHERE sessions.session_id = messages.session_id)), "
    "(SELECT COUNT(*) FROM agent_state WHERE NOT EXISTS (SELECT 1 FROM sessions "
    "WHERE sessions.session_id = agent_state.session_id)), "
    "(SELECT COUNT(*) FROM sessions WHERE agent_id IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM agents WHERE agents.id = sessions.agent_id)), "
    "(SELECT COUNT(*) FROM sessions WHERE message_count <> (SELECT COUNT(*) FROM messages "
    "WHERE messages.session_id = sessions.session_id))"
)


def health_facts(
    indexes: list[str], settings: dict[str, str], row: tuple[Any, ...] | list[Any]
) -> HealthFacts:
    """:class:`HealthFacts` from the index names and a :data:`HEALTH` row."""
    messages, states, sessions, miscounted = (int(value) for value in row)
    return HealthFacts(
        indexes=frozenset(indexes),
        settings=settings,
        orphans={"messages": messages, "agent_state": states, "sessions": sessions},
        miscounted=miscounted,
    )
