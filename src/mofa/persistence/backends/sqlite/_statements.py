"""The SQLite store's SQL: constant text, every value a ``?`` parameter.

Each variant (scoped by an owner or not, with RETURNING or not) is a constant of its own,
built once at import, so ``sqlite3``'s statement cache prepares each text once. Plain text
only: nothing here runs a statement.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from mofa.persistence.backends._sql import list_sessions_statements, owner_condition

__all__ = [
    "BUMP_COUNT",
    "BUMP_COUNT_RETURNING",
    "BUMP_OWNED_COUNT",
    "BUMP_OWNED_COUNT_RETURNING",
    "DELETE_OWNED_SESSION",
    "DELETE_SESSION",
    "ENSURE_AGENT",
    "HAS_RETURNING",
    "INSERT_MESSAGE",
    "INSERT_OWNED_STATE",
    "INSERT_OWNED_STATE_RETURNING",
    "INSERT_SESSION",
    "INSERT_STATE",
    "INSERT_STATE_RETURNING",
    "LIST_SESSIONS",
    "SELECT_AGENT",
    "SELECT_AGENTS",
    "SELECT_COUNT",
    "SELECT_LATEST_STATE",
    "SELECT_MESSAGES",
    "SELECT_OWNED_LATEST_STATE",
    "SELECT_OWNED_MESSAGES",
    "SELECT_OWNED_RECENT_MESSAGES",
    "SELECT_OWNED_SESSION",
    "SELECT_OWNED_STATE",
    "SELECT_OWNED_STATES",
    "SELECT_RECENT_MESSAGES",
    "SELECT_SESSION",
    "SELECT_STATE",
    "SELECT_STATES",
    "SELECT_STATE_VERSION",
    "UPDATE_OWNED_SESSION",
    "UPDATE_SESSION",
    "UPSERT_AGENT",
    "UPSERT_OWNED_AGENT",
]

#: RETURNING arrived in SQLite 3.35; older libraries read the counter back with a SELECT.
HAS_RETURNING: Final = sqlite3.sqlite_version_info >= (3, 35, 0)

#: Placeholders of an owner scope (see _sql.owner_condition): SQLite's NULL-safe equality is
#: IS, so a scope's None matches a NULL column and nothing else. Its parameters are
#: owner_params(owner).
_OWNER = owner_condition("IS", lambda _: "?", 1)
_OWNER_OF_S = owner_condition("IS", lambda _: "?", 1, "s")  # the same, of `sessions AS s`
#: The session is inside the scope: added to a read of messages or states, so a foreign
#: session reads as empty in the same statement (the subquery is not correlated: SQLite
#: evaluates it once, by the primary key). Parameters: session_id, *owner_params(owner).
_IN_SCOPE = (
    "EXISTS (SELECT 1 FROM sessions "  # noqa: S608 - constant fragments
    f"WHERE sessions.session_id = ? AND {_OWNER})"
)

_AGENT_COLUMNS = (
    "id, name, state, started_at, provider, model, description, created_at, updated_at, tenant_id"
)
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
UPSERT_OWNED_AGENT = UPSERT_AGENT + " WHERE agents.tenant_id IS excluded.tenant_id"
SELECT_AGENT = f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = ?"  # noqa: S608
SELECT_AGENTS = (
    f"SELECT {_AGENT_COLUMNS} FROM agents "  # noqa: S608
    "ORDER BY updated_at DESC, id DESC LIMIT ?"
)
#: The placeholder agent a session names (see _toolkit.placeholder_agent): the session's tenant.
ENSURE_AGENT = (
    "INSERT OR IGNORE INTO agents (id, name, state, started_at, created_at, updated_at, "
    "tenant_id) VALUES (?, ?, 'unknown', ?, ?, ?, ?)"
)
INSERT_SESSION = (
    "INSERT INTO sessions (session_id, agent_id, user_id, tenant_id, status, metadata, "
    "message_count, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"
)
_SESSION_COLUMNS = (
    "session_id, agent_id, user_id, tenant_id, status, metadata, message_count, "
    "created_at, updated_at, expires_at"
)
SELECT_SESSION = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?"  # noqa: S608
SELECT_OWNED_SESSION = f"{SELECT_SESSION} AND {_OWNER}"
UPDATE_SESSION = (
    "UPDATE sessions SET status = coalesce(?, status), metadata = coalesce(?, metadata), "
    "expires_at = CASE WHEN ? THEN ? ELSE expires_at END, updated_at = ? WHERE session_id = ?"
)
UPDATE_OWNED_SESSION = f"{UPDATE_SESSION} AND {_OWNER}"
DELETE_SESSION = "DELETE FROM sessions WHERE session_id = ?"
DELETE_OWNED_SESSION = f"{DELETE_SESSION} AND {_OWNER}"
BUMP_COUNT = (
    "UPDATE sessions SET message_count = message_count + ?, updated_at = ? WHERE session_id = ?"
)
# The owner check is in the UPDATE that takes the session's next seqs, inside the write
# transaction that then inserts the messages: a foreign session gets nothing.
BUMP_OWNED_COUNT = f"{BUMP_COUNT} AND {_OWNER}"
BUMP_COUNT_RETURNING = BUMP_COUNT + " RETURNING message_count"
BUMP_OWNED_COUNT_RETURNING = BUMP_OWNED_COUNT + " RETURNING message_count"
SELECT_COUNT = "SELECT message_count FROM sessions WHERE session_id = ?"
INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
SELECT_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "
    "WHERE session_id = ? AND seq > ? "
    "ORDER BY seq LIMIT ?"
)
SELECT_OWNED_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "  # noqa: S608
    f"WHERE session_id = ? AND seq > ? AND {_IN_SCOPE} "
    "ORDER BY seq LIMIT ?"
)
SELECT_RECENT_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "
    "WHERE session_id = ? ORDER BY seq DESC LIMIT ?"
)
SELECT_OWNED_RECENT_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "  # noqa: S608
    f"WHERE session_id = ? AND {_IN_SCOPE} ORDER BY seq DESC LIMIT ?"
)
INSERT_STATE = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "
    "SELECT ?, coalesce(max(version), 0) + 1, ?, ? FROM agent_state WHERE session_id = ?"
)
INSERT_STATE_RETURNING = INSERT_STATE + " RETURNING version"
#: With an owner the row comes from the session's own row inside the scope: a missing or
#: foreign session inserts nothing (an aggregate alone would still give one row).
INSERT_OWNED_STATE = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "  # noqa: S608
    "SELECT s.session_id, (SELECT coalesce(max(version), 0) + 1 FROM agent_state "
    "WHERE agent_state.session_id = s.session_id), ?, ? "
    f"FROM sessions AS s WHERE s.session_id = ? AND {_OWNER_OF_S}"
)
INSERT_OWNED_STATE_RETURNING = INSERT_OWNED_STATE + " RETURNING version"
SELECT_STATE_VERSION = "SELECT max(version) FROM agent_state WHERE session_id = ?"
SELECT_LATEST_STATE = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = ? "
    "ORDER BY version DESC LIMIT 1"
)
SELECT_OWNED_LATEST_STATE = (
    "SELECT version, state, created_at FROM agent_state "  # noqa: S608
    f"WHERE session_id = ? AND {_IN_SCOPE} ORDER BY version DESC LIMIT 1"
)
SELECT_STATE = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = ? AND version = ?"
)
SELECT_OWNED_STATE = f"{SELECT_STATE} AND {_IN_SCOPE}"
SELECT_STATES = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = ? "
    "ORDER BY version DESC LIMIT ?"
)
SELECT_OWNED_STATES = (
    "SELECT version, state, created_at FROM agent_state "  # noqa: S608
    f"WHERE session_id = ? AND {_IN_SCOPE} ORDER BY version DESC LIMIT ?"
)

LIST_SESSIONS = list_sessions_statements(_SESSION_COLUMNS, lambda _: "?")
