"""The PostgreSQL store's statements: the SQL text of every call, as constants.

asyncpg prepares and caches each text once per connection, so each variant (scoped by an
owner or not, a batch's shared values) is a constant of its own, built once at import.
Plain text only: nothing here runs a statement.
"""

from __future__ import annotations

from typing import Final

from mofa.persistence.backends._sql import (
    Dialect,
    numbered,
    owner_condition,
    reads,
    sessions_columns,
)
from mofa.persistence.backends.postgres._rows import (
    agent_from_row,
    messages_from_rows,
    session_from_row,
    state_from_row,
)

__all__ = [
    "APPEND_BATCH",
    "APPEND_BATCH_OWNED",
    "APPEND_ONE",
    "APPEND_ONE_OWNED",
    "CREATE_SESSION",
    "DELETE_SESSION",
    "DELETE_SESSIONS",
    "DELETE_SESSION_OWNED",
    "DIALECT",
    "READS",
    "SAVE_STATE",
    "SAVE_STATE_OWNED",
    "UPDATE_SESSION",
    "UPDATE_SESSION_OWNED",
    "UPSERT_AGENT",
    "UPSERT_AGENT_OWNED",
]

DIALECT: Final = Dialect(
    name="postgres",
    mark=numbered("$"),
    null_safe_equal="IS NOT DISTINCT FROM",
    no_limit=None,  # LIMIT NULL: every row
    json_text="{}::text".format,  # JSON travels as text and is decoded once, with orjson
    session_from_row=session_from_row,
    agent_from_row=agent_from_row,
    messages_from_rows=messages_from_rows,
    state_from_row=state_from_row,
)
READS: Final = reads(DIALECT)
_SESSION_COLUMNS: Final = sessions_columns(DIALECT)


def _owned(first: int, table: str = "sessions") -> str:
    """`` AND `` the owner scope on ``table``'s row, its three parameters from ``$first``.

    A scoped statement is a constant of its own (asyncpg prepares and caches each text once
    per connection), the unscoped text unchanged: a call without an owner runs exactly the
    statement it ran before scopes existed. ``IS NOT DISTINCT FROM``, since a scope's
    ``None`` must match a NULL column and nothing else; the row is always found by its key
    first, so the condition only filters that one row (it needs no index).
    """
    return " AND " + owner_condition(DIALECT.null_safe_equal, DIALECT.mark, first, table)


# Without an owner an existing agent keeps its tenant (tenant_id is not in the SET list);
# RETURNING gives the stored created_at and tenant_id.
UPSERT_AGENT: Final = (
    "INSERT INTO agents (id, name, state, started_at, provider, model, description, "
    "created_at, updated_at, tenant_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
    "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, state = EXCLUDED.state, "
    "started_at = EXCLUDED.started_at, provider = EXCLUDED.provider, model = EXCLUDED.model, "
    "description = EXCLUDED.description, updated_at = EXCLUDED.updated_at "
    "RETURNING created_at, tenant_id"
)
# With an owner ($10 is its tenant): the conflict updates only a record of that tenant. The
# conflicting row is locked and its WHERE checked on its latest version; a refused update
# returns no row and changes nothing (-> AgentExistsError), still one statement.
UPSERT_AGENT_OWNED: Final = UPSERT_AGENT.replace(
    " RETURNING", " WHERE agents.tenant_id IS NOT DISTINCT FROM EXCLUDED.tenant_id RETURNING"
)

# One statement: the agent row (when the session names an agent that has none and the
# session id is free; it belongs to the session's tenant) and the session. The foreign key
# is checked at the end of the statement, so it sees the agent the CTE inserted.
CREATE_SESSION: Final = (
    "WITH new_agent AS ("
    " INSERT INTO agents (id, name, state, started_at, created_at, updated_at, tenant_id)"
    " SELECT $2::varchar, $2::varchar, 'unknown', $7, $7, $7, $4::varchar"
    " WHERE $2::varchar IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM sessions WHERE session_id = $1)"
    " ON CONFLICT (id) DO NOTHING) "
    "INSERT INTO sessions (session_id, agent_id, user_id, tenant_id, status, metadata, "
    "message_count, created_at, updated_at, expires_at) "
    "VALUES ($1, $2, $3, $4, $5, $6::jsonb, 0, $7, $7, $8) "
    "ON CONFLICT (session_id) DO NOTHING RETURNING session_id"
)


def _update_session_query(scope: str) -> str:
    return (
        "UPDATE sessions SET status = COALESCE($2::varchar, status), "  # noqa: S608
        "metadata = COALESCE($3::jsonb, metadata), "
        "expires_at = CASE WHEN $4::boolean THEN $5::timestamptz ELSE expires_at END, "
        f"updated_at = $6 WHERE session_id = $1{scope} RETURNING {_SESSION_COLUMNS}"
    )


UPDATE_SESSION: Final = _update_session_query("")
UPDATE_SESSION_OWNED: Final = _update_session_query(_owned(7))
DELETE_SESSION: Final = "DELETE FROM sessions WHERE session_id = $1 RETURNING 1"
DELETE_SESSION_OWNED: Final = f"DELETE FROM sessions WHERE session_id = $1{_owned(2)} RETURNING 1"  # noqa: S608
#: A prune's batch: the ids, then the rule's older_than and now (NULL: not in the rule).
DELETE_SESSIONS: Final = (
    "DELETE FROM sessions WHERE session_id = ANY($1::text[])"
    " AND ($2::timestamptz IS NULL OR updated_at < $2)"
    " AND ($3::timestamptz IS NULL OR expires_at <= $3) RETURNING session_id"
)


# An append is one statement and so one round trip: the UPDATE locks the session row (a
# concurrent append waits, then re-reads the new count), the INSERT takes the new count as
# its seq. No session row -> no rows -> SessionNotFoundError. The owner scope goes into the
# UPDATE's WHERE: a row of another owner is not touched, so nothing is inserted either, and
# a session deleted (and re-created by someone else) meanwhile is skipped, never written.
def _append_one_query(scope: str) -> str:
    return (
        "WITH s AS (UPDATE sessions SET message_count = message_count + 1, updated_at = $6"  # noqa: S608
        f" WHERE session_id = $1{scope} RETURNING message_count) "
        "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
        "SELECT $1, s.message_count, $2, $3, $4::jsonb, $5 FROM s RETURNING id, seq"
    )


APPEND_ONE: Final = _append_one_query("")
APPEND_ONE_OWNED: Final = _append_one_query(_owned(7))


def _append_batch_query(shared_metadata: bool, shared_timestamp: bool, scope: str) -> str:
    """The batch statement; a value every message shares is bound once, not as an array.

    Each array parameter costs encoding and an unnest column: binding the common cases (no
    metadata, the default timestamp) as single values makes a 50-message batch ~10% faster.
    ``scope`` is empty or the owner condition on the UPDATE (parameters $8…$10).
    """
    arrays = ["$3::varchar[]", "$4::text[]"]
    columns = ["role", "content"]
    if shared_metadata:
        metadata = "$5::jsonb"
    else:
        metadata = "m.metadata::jsonb"
        arrays.append("$5::text[]")
        columns.append("metadata")
    if shared_timestamp:
        stamp = "$6::timestamptz"
    else:
        stamp = "m.stamp"
        arrays.append("$6::timestamptz[]")
        columns.append("stamp")
    # Only the fixed fragments above go into the text; every value is a bound parameter.
    return (
        "WITH s AS (UPDATE sessions SET message_count = message_count + $2, updated_at = $7"  # noqa: S608
        f" WHERE session_id = $1{scope} RETURNING message_count - $2 AS base) "
        "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
        f"SELECT $1, s.base + m.position, m.role, m.content, {metadata}, {stamp} "
        f"FROM s, unnest({', '.join(arrays)}) "
        f"WITH ORDINALITY AS m({', '.join(columns)}, position) "
        "ORDER BY m.position RETURNING id, seq"
    )


#: (metadata shared by all, timestamp shared by all) -> statement.
APPEND_BATCH: Final = {
    (metadata, timestamp): _append_batch_query(metadata, timestamp, "")
    for metadata in (False, True)
    for timestamp in (False, True)
}
APPEND_BATCH_OWNED: Final = {
    (metadata, timestamp): _append_batch_query(metadata, timestamp, _owned(8))
    for metadata in (False, True)
    for timestamp in (False, True)
}


SAVE_STATE: Final = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "
    "SELECT s.session_id, COALESCE((SELECT MAX(a.version) FROM agent_state a "
    "WHERE a.session_id = $1), 0) + 1, $2::jsonb, $3 "
    "FROM sessions s WHERE s.session_id = $1 RETURNING version"
)  # MAX() in a subquery is one backward step on the primary key, however many versions exist
# With an owner the session row is also key-share locked as it is read: the scope is then
# checked on the row the foreign key will see. Without the lock a session deleted and
# re-created by another owner after this statement's snapshot would pass the scope (on the
# old row) and the foreign key (on the new one), and receive this owner's state; locked, the
# deleted row is skipped (SessionNotFoundError). KEY SHARE does not wait for appends (their
# UPDATE takes NO KEY UPDATE), and the foreign-key check takes the same lock anyway.
SAVE_STATE_OWNED: Final = SAVE_STATE.replace(
    " RETURNING", f"{_owned(4, 's')} FOR KEY SHARE OF s RETURNING"
)
