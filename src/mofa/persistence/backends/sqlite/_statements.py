"""The SQLite store's SQL: constant text, every value a ``?`` parameter.

Each variant (scoped by an owner or not, with RETURNING or not) is a constant of its own,
built once at import, so ``sqlite3``'s statement cache prepares each text once. Plain text
only: nothing here runs a statement.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from mofa.persistence._codec import format_time
from mofa.persistence.backends._sql import Dialect, owner_condition, positional, reads
from mofa.persistence.backends.sqlite._rows import (
    agent_from_row,
    messages_from_rows,
    session_from_row,
    state_from_row,
)

__all__ = [
    "BUMP_COUNT",
    "BUMP_COUNT_OWNED",
    "BUMP_COUNT_OWNED_RETURNING",
    "BUMP_COUNT_RETURNING",
    "DELETE_SESSION",
    "DELETE_SESSION_OWNED",
    "DIALECT",
    "ENSURE_AGENT",
    "HAS_RETURNING",
    "INSERT_MESSAGE",
    "INSERT_SESSION",
    "INSERT_STATE",
    "INSERT_STATE_OWNED",
    "INSERT_STATE_OWNED_RETURNING",
    "INSERT_STATE_RETURNING",
    "READS",
    "SELECT_COUNT",
    "SELECT_STATE_VERSION",
    "UPDATE_SESSION",
    "UPDATE_SESSION_OWNED",
    "UPSERT_AGENT",
    "UPSERT_AGENT_OWNED",
]

#: RETURNING arrived in SQLite 3.35; older libraries read the counter back with a SELECT.
HAS_RETURNING: Final = sqlite3.sqlite_version_info >= (3, 35, 0)

DIALECT: Final = Dialect(
    name="sqlite",
    mark=positional("?"),
    null_safe_equal="IS",
    no_limit=-1,  # a negative LIMIT means none
    json_text=str,  # JSON is TEXT
    session_from_row=session_from_row,
    agent_from_row=agent_from_row,
    messages_from_rows=messages_from_rows,
    state_from_row=state_from_row,
    wire_time=format_time,  # times are fixed-width UTC text
)
READS: Final = reads(DIALECT)

#: An owner scope (see _sql.owner_condition): SQLite's NULL-safe equality is IS, so a
#: scope's None matches a NULL column and nothing else. Its parameters are
#: owner_params(owner).
_OWNER = owner_condition(DIALECT.null_safe_equal, DIALECT.mark, 1)
_OWNER_OF_S = owner_condition(DIALECT.null_safe_equal, DIALECT.mark, 1, "s")  # of `sessions AS s`

#: Without an owner a conflict updates every field but tenant_id: the stored tenant stays.
UPSERT_AGENT = (
    "INSERT INTO agents (id, name, state, started_at, provider, model, description, "
    "created_at, updated_at, tenant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, state = excluded.state, "
    "started_at = excluded.started_at, provider = excluded.provider, model = excluded.model, "
    "description = excluded.description, updated_at = excluded.updated_at"
)
#: With an owner (whose tenant the inserted row carries) a conflict updates only an agent of
#: the same tenant; another tenant's row is left as it is and the statement changes no row,
#: which the same transaction turns into AgentExistsError.
UPSERT_AGENT_OWNED = UPSERT_AGENT + " WHERE agents.tenant_id IS excluded.tenant_id"
#: The placeholder agent a session names (see _toolkit.placeholder_agent): the session's tenant.
ENSURE_AGENT = (
    "INSERT OR IGNORE INTO agents (id, name, state, started_at, created_at, updated_at, "
    "tenant_id) VALUES (?, ?, 'unknown', ?, ?, ?, ?)"
)
INSERT_SESSION = (
    "INSERT INTO sessions (session_id, agent_id, user_id, tenant_id, status, metadata, "
    "message_count, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"
)
UPDATE_SESSION = (
    "UPDATE sessions SET status = coalesce(?, status), metadata = coalesce(?, metadata), "
    "expires_at = CASE WHEN ? THEN ? ELSE expires_at END, updated_at = ? WHERE session_id = ?"
)
UPDATE_SESSION_OWNED = f"{UPDATE_SESSION} AND {_OWNER}"
DELETE_SESSION = "DELETE FROM sessions WHERE session_id = ?"
DELETE_SESSION_OWNED = f"{DELETE_SESSION} AND {_OWNER}"
BUMP_COUNT = (
    "UPDATE sessions SET message_count = message_count + ?, updated_at = ? WHERE session_id = ?"
)
# The owner check is in the UPDATE that takes the session's next seqs, inside the write
# transaction that then inserts the messages: a foreign session gets nothing.
BUMP_COUNT_OWNED = f"{BUMP_COUNT} AND {_OWNER}"
BUMP_COUNT_RETURNING = BUMP_COUNT + " RETURNING message_count"
BUMP_COUNT_OWNED_RETURNING = BUMP_COUNT_OWNED + " RETURNING message_count"
SELECT_COUNT = "SELECT message_count FROM sessions WHERE session_id = ?"
INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_STATE = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "
    "SELECT ?, coalesce(max(version), 0) + 1, ?, ? FROM agent_state WHERE session_id = ?"
)
INSERT_STATE_RETURNING = INSERT_STATE + " RETURNING version"
#: With an owner the row comes from the session's own row inside the scope: a missing or
#: foreign session inserts nothing (an aggregate alone would still give one row).
INSERT_STATE_OWNED = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "  # noqa: S608
    "SELECT s.session_id, (SELECT coalesce(max(version), 0) + 1 FROM agent_state "
    "WHERE agent_state.session_id = s.session_id), ?, ? "
    f"FROM sessions AS s WHERE s.session_id = ? AND {_OWNER_OF_S}"
)
INSERT_STATE_OWNED_RETURNING = INSERT_STATE_OWNED + " RETURNING version"
SELECT_STATE_VERSION = "SELECT max(version) FROM agent_state WHERE session_id = ?"
