"""SQL text the three SQL dialects share: constant fragments only, every value a bound
parameter.

:func:`reads` writes every read statement once for a :class:`~._dialect.Dialect`; each
backend builds its set once, at import, so a driver's statement cache prepares each text
once. An ``*_owned`` statement is the owner-scoped variant of the one without the suffix;
the unscoped text is what the statement was before scopes existed. Placeholders are numbered
in the order they appear, so one argument tuple serves a dialect that numbers them and one
that does not.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from mofa.persistence._checked import SessionQuery
from mofa.persistence._entities import Owner
from mofa.persistence.backends._sql._dialect import Dialect

__all__ = [
    "ANY",
    "EQUAL",
    "IS_NULL",
    "SCHEMA_VERSION",
    "FilterKey",
    "Reads",
    "list_sessions_statements",
    "owner_condition",
    "owner_params",
    "reads",
    "session_filters",
    "session_in_scope",
    "sessions_columns",
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

#: The schema version a database is at, once its bookkeeping table exists.
SCHEMA_VERSION: Final = "SELECT COALESCE(MAX(version), 0) FROM mofa_schema_migrations"

_AGENT_COLUMNS: Final = (
    "id, name, state, started_at, provider, model, description, created_at, updated_at, tenant_id"
)


def sessions_columns(dialect: Dialect) -> str:
    """The columns of ``sessions`` in the order ``dialect.session_from_row`` reads them."""
    return (
        "session_id, agent_id, user_id, tenant_id, status, "
        f"{dialect.json_text('metadata')}, message_count, created_at, updated_at, expires_at"
    )


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
    query: SessionQuery,
    owner: Owner | None,
    wire_time: Callable[[datetime], Any] = lambda value: value,
) -> tuple[FilterKey, list[Any]]:
    """The key of the listing statement for ``query``, and its filter parameters.

    Through an ``owner`` the filters are the owner's, and its ``None`` fields are ``IS
    NULL`` (the store has already answered a filter that contradicts the scope).
    ``wire_time`` turns ``since`` / ``until`` into what the dialect compares with
    ``created_at`` (:attr:`Dialect.wire_time`).
    """
    if owner is None:
        values = (query.agent_id, query.user_id, query.tenant_id)
        ids = (
            EQUAL if query.agent_id is not None else ANY,
            EQUAL if query.user_id is not None else ANY,
            EQUAL if query.tenant_id is not None else ANY,
        )
    else:
        values = (owner.agent_id, owner.user_id, owner.tenant_id)
        ids = (
            EQUAL if owner.agent_id is not None else IS_NULL,
            EQUAL if owner.user_id is not None else IS_NULL,
            EQUAL if owner.tenant_id is not None else IS_NULL,
        )
    parameters: list[Any] = [value for value in values if value is not None]
    if query.status is not None:
        parameters.append(query.status)
    for bound in (query.since, query.until):
        if bound is not None:
            parameters.append(wire_time(bound))
    extra = (query.status is not None, query.since is not None, query.until is not None)
    return (*ids, *extra), parameters


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


def session_in_scope(dialect: Dialect, first: int) -> str:
    """The session named by parameter ``first`` exists inside the owner scope (whose three
    parameters follow it).

    For statements on messages and states: uncorrelated, so the database evaluates it once
    (PostgreSQL as a one-time filter before the index scan), in the statement's own
    snapshot: another owner's session reads as an empty one, in the same round trip.
    """
    mark = dialect.mark
    return (
        "EXISTS (SELECT 1 FROM sessions "  # noqa: S608 - constant fragments
        f"WHERE sessions.session_id = {mark(first)} AND "
        f"{owner_condition(dialect.null_safe_equal, mark, first + 1)})"
    )


@dataclass(frozen=True, slots=True)
class Reads:
    """Every read statement of one dialect (parameters in the order of the comments)."""

    get_agent: str  # agent id
    list_agents: str  # limit
    get_session: str  # session id
    get_session_owned: str  # session id, *owner
    #: FilterKey -> statement (see :func:`session_filters`); filters, limit, offset.
    list_sessions: dict[FilterKey, str]
    list_messages: str  # session id, after seq, limit
    list_messages_owned: str  # session id, after seq, session id, *owner, limit
    recent_messages: str  # session id, limit
    recent_messages_owned: str  # session id, session id, *owner, limit
    latest_state: str  # session id
    latest_state_owned: str  # session id, session id, *owner
    state_version: str  # session id, version
    state_version_owned: str  # session id, version, session id, *owner
    list_states: str  # session id, limit
    list_states_owned: str  # session id, session id, *owner, limit


def reads(dialect: Dialect) -> Reads:
    """The read statements in ``dialect``'s placeholders and column types."""
    mark, equal, text = dialect.mark, dialect.null_safe_equal, dialect.json_text

    def owned(first: int) -> str:
        # The session row is always found by its key first, so the condition only filters
        # that one row (it needs no index).
        return " AND " + owner_condition(equal, mark, first)

    def in_scope(first: int) -> str:
        return " AND " + session_in_scope(dialect, first)

    session_columns = sessions_columns(dialect)
    get_session = f"SELECT {session_columns} FROM sessions WHERE session_id = {mark(1)}"  # noqa: S608
    messages = (
        f"SELECT id, seq, role, content, {text('metadata')}, timestamp FROM messages "  # noqa: S608
        f"WHERE session_id = {mark(1)}"
    )
    states = (
        f"SELECT version, {text('state')}, created_at FROM agent_state "  # noqa: S608
        f"WHERE session_id = {mark(1)}"
    )
    return Reads(
        get_agent=f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = {mark(1)}",  # noqa: S608
        list_agents=(
            f"SELECT {_AGENT_COLUMNS} FROM agents "  # noqa: S608
            f"ORDER BY updated_at DESC, id DESC LIMIT {mark(1)}"
        ),
        get_session=get_session,
        get_session_owned=get_session + owned(2),
        list_sessions=list_sessions_statements(session_columns, mark),
        list_messages=f"{messages} AND seq > {mark(2)} ORDER BY seq LIMIT {mark(3)}",
        list_messages_owned=(
            f"{messages} AND seq > {mark(2)}{in_scope(3)} ORDER BY seq LIMIT {mark(7)}"
        ),
        # Backwards through the unique (session_id, seq) index: the cost depends on the
        # limit, not on the length of the history.
        recent_messages=f"{messages} ORDER BY seq DESC LIMIT {mark(2)}",
        recent_messages_owned=f"{messages}{in_scope(2)} ORDER BY seq DESC LIMIT {mark(6)}",
        latest_state=f"{states} ORDER BY version DESC LIMIT 1",
        latest_state_owned=f"{states}{in_scope(2)} ORDER BY version DESC LIMIT 1",
        state_version=f"{states} AND version = {mark(2)}",
        state_version_owned=f"{states} AND version = {mark(2)}{in_scope(3)}",
        list_states=f"{states} ORDER BY version DESC LIMIT {mark(2)}",
        list_states_owned=f"{states}{in_scope(2)} ORDER BY version DESC LIMIT {mark(6)}",
    )
