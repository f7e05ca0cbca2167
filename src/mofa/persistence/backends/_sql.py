"""SQL shared by the SQL backends: constant fragments only, every value a bound parameter."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from mofa.persistence._entities import Owner, SessionConditions
from mofa.persistence._health import HealthFacts
from mofa.persistence._prune import PruneRule

__all__ = [
    "ANY",
    "COUNTS",
    "EQUAL",
    "HEALTH",
    "IS_NULL",
    "FilterKey",
    "SessionConditions",
    "delete_sessions_statement",
    "health_facts",
    "list_sessions_statements",
    "owner_condition",
    "owner_params",
    "prune_parameters",
    "session_filters",
]

#: How a session listing filters one of its columns: not at all, ``= value``, ``IS NULL``.
ANY: Final = 0
EQUAL: Final = 1
IS_NULL: Final = 2
#: How a session listing filters (agent_id, user_id, tenant_id), then whether it has a
#: status, a ``since`` and an ``until`` condition.
FilterKey = tuple[int, int, int, bool, bool, bool]
_FILTER_COLUMNS = ("agent_id", "user_id", "tenant_id")
#: The status and creation-time conditions, each followed by its placeholder.
_EXTRA_CONDITIONS = ("status = ", "created_at >= ", "created_at < ")
_EXTRA_KEYS = tuple(itertools.product((False, True), repeat=3))
#: The owner scope's columns, in the order of :func:`owner_params`.
_OWNER_COLUMNS = ("tenant_id", "user_id", "agent_id")


def list_sessions_statements(columns: str, mark: Callable[[int], str]) -> dict[FilterKey, str]:
    """The session-listing statement for each combination of filters.

    One statement per combination, so each gets a plan that uses its index (``IS NULL`` is
    an index condition too). The id filters pick the index; ``created_at`` bounds are a range
    on its next column, and a status is checked on the rows read in the index's order, so no
    statement sorts. Its parameters are the values :func:`session_filters` returns, then
    LIMIT and OFFSET; ``mark(n)`` writes the dialect's n-th placeholder (from 1).
    """
    statements: dict[FilterKey, str] = {}
    ids = itertools.product((ANY, EQUAL, IS_NULL), repeat=3)
    for (agent, user, tenant), extra in itertools.product(ids, _EXTRA_KEYS):
        key: FilterKey = (agent, user, tenant, *extra)  # type: ignore[assignment]
        conditions, count = [], 0
        for name, how in zip(_FILTER_COLUMNS, key[:3], strict=True):
            if how == EQUAL:
                count += 1
                conditions.append(f"{name} = {mark(count)}")
            elif how == IS_NULL:
                conditions.append(f"{name} IS NULL")
        for condition, wanted in zip(_EXTRA_CONDITIONS, extra, strict=True):
            if wanted:
                count += 1
                conditions.append(condition + mark(count))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        statements[key] = (
            f"SELECT {columns} FROM sessions{where} "  # noqa: S608 - constant fragments
            "ORDER BY created_at DESC, session_id DESC "
            f"LIMIT {mark(count + 1)} OFFSET {mark(count + 2)}"
        )
    return statements


def session_filters(
    agent_id: str | None,
    user_id: str | None,
    tenant_id: str | None,
    owner: Owner | None,
    extra: SessionConditions | None = None,
    wire_time: Callable[[datetime], Any] = lambda value: value,
) -> tuple[FilterKey, list[Any]]:
    """The key of the listing statement for these filters, and its filter parameters.

    Through an ``owner`` the filters are the owner's, and its ``None`` fields are ``IS
    NULL`` (the store has already answered a filter that contradicts the scope).
    ``wire_time`` turns a ``since`` / ``until`` time into what the dialect compares with
    ``created_at`` (SQLite's text, MySQL's naive UTC).
    """
    key, parameters = _id_filters(agent_id, user_id, tenant_id, owner)
    extra = extra or SessionConditions()
    values = (extra.status, extra.since, extra.until)
    for value in values:
        if value is not None:
            parameters.append(value if isinstance(value, str) else wire_time(value))
    present = tuple(value is not None for value in values)
    return (*key, *present), parameters  # type: ignore[return-value]


def _id_filters(
    agent_id: str | None, user_id: str | None, tenant_id: str | None, owner: Owner | None
) -> tuple[tuple[int, int, int], list[Any]]:
    if owner is None:
        values = (agent_id, user_id, tenant_id)
        key = (
            EQUAL if agent_id is not None else ANY,
            EQUAL if user_id is not None else ANY,
            EQUAL if tenant_id is not None else ANY,
        )
    else:
        values = (owner.agent_id, owner.user_id, owner.tenant_id)
        key = (
            EQUAL if owner.agent_id is not None else IS_NULL,
            EQUAL if owner.user_id is not None else IS_NULL,
            EQUAL if owner.tenant_id is not None else IS_NULL,
        )
    return key, [value for value in values if value is not None]


def owner_condition(
    equal: str, mark: Callable[[int], str], first: int, table: str = "sessions"
) -> str:
    """``AND``-ed conditions that ``table``'s row is inside an owner scope.

    ``equal`` is the dialect's NULL-safe equality (``IS NOT DISTINCT FROM``, ``<=>``,
    ``IS``), since a scope's ``None`` must match a NULL column and nothing else; the
    parameters are :func:`owner_params`, the first of them numbered ``first``.
    """
    return " AND ".join(
        f"{table}.{name} {equal} {mark(first + offset)}"
        for offset, name in enumerate(_OWNER_COLUMNS)
    )


def owner_params(owner: Owner) -> tuple[str | None, str | None, str | None]:
    """The parameters of :func:`owner_condition`, in its order."""
    return owner.tenant_id, owner.user_id, owner.agent_id


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
