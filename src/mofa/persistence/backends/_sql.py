"""SQL shared by the SQL backends: constant fragments only, every value a bound parameter."""

from __future__ import annotations

import itertools
from collections.abc import Callable

__all__ = ["FilterKey", "list_sessions_statements", "session_filters"]

#: Which of (agent_id, user_id, tenant_id) a session listing filters on.
FilterKey = tuple[bool, bool, bool]
_FILTER_COLUMNS = ("agent_id", "user_id", "tenant_id")


def list_sessions_statements(columns: str, mark: Callable[[int], str]) -> dict[FilterKey, str]:
    """The session-listing statement for each combination of filters.

    One statement per combination, so each gets a plan that uses its index. Its parameters
    are the values :func:`session_filters` returns, then LIMIT and OFFSET; ``mark(n)`` writes
    the dialect's n-th placeholder (counting from 1).
    """
    statements: dict[FilterKey, str] = {}
    for agent, user, tenant in itertools.product((False, True), repeat=3):
        names = [
            name
            for name, given in zip(_FILTER_COLUMNS, (agent, user, tenant), strict=True)
            if given
        ]
        conditions = " AND ".join(f"{name} = {mark(n)}" for n, name in enumerate(names, 1))
        where = f" WHERE {conditions}" if conditions else ""
        statements[agent, user, tenant] = (
            f"SELECT {columns} FROM sessions{where} "  # noqa: S608 - constant fragments
            "ORDER BY created_at DESC, session_id DESC "
            f"LIMIT {mark(len(names) + 1)} OFFSET {mark(len(names) + 2)}"
        )
    return statements


def session_filters(
    agent_id: str | None, user_id: str | None, tenant_id: str | None
) -> tuple[FilterKey, list[str]]:
    """The key of the listing statement for these filters, and its filter parameters."""
    key = (agent_id is not None, user_id is not None, tenant_id is not None)
    return key, [value for value in (agent_id, user_id, tenant_id) if value is not None]
