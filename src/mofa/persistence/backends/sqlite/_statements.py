"""The SQLite store's SQL: constant text, every value a ``?`` parameter.

Each variant (scoped by an owner or not, with RETURNING or not) is a constant of its own,
built once at import, so ``sqlite3``'s statement cache prepares each text once. Plain text
only: nothing here runs a statement.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from mofa.persistence.backends._sql import list_sessions_statements, owner_condition

#: RETURNING arrived in SQLite 3.35; older libraries read the counter back with a SELECT.
_HAS_RETURNING: Final = sqlite3.sqlite_version_info >= (3, 35, 0)

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
_UPSERT_AGENT = (
    "INSERT INTO agents (id, name, state, started_at, provider, model, description, "
    "created_at, updated_at, tenant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, state = excluded.state, "
    "started_at = excluded.started_at, provider = excluded.provider, model = excluded.model, "
    "description = excluded.description, updated_at = excluded.updated_at"
)
#: With an owner (whose tenant the inserted row carries) a conflict updates only an agent of
#: the same tenant; another tenant's row is left as it is and the statement changes no row,
#: which the same transaction turns into AgentExistsError.
_UPSERT_OWNED_AGENT = _UPSERT_AGENT + " WHERE agents.tenant_id IS excluded.tenant_id"
_SELECT_AGENT = f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = ?"  # noqa: S608
_SELECT_AGENTS = (
    f"SELECT {_AGENT_COLUMNS} FROM agents "  # noqa: S608
    "ORDER BY updated_at DESC, id DESC LIMIT ?"
)
#: The placeholder agent a session names (see _toolkit.placeholder_agent): the session's tenant.
_ENSURE_AGENT = (
    "INSERT OR IGNORE INTO agents (id, name, state, started_at, created_at, updated_at, "
    "tenant_id) VALUES (?, ?, 'unknown', ?, ?, ?, ?)"
)
_INSERT_SESSION = (
    "INSERT INTO sessions (session_id, agent_id, user_id, tenant_id, status, metadata, "
    "message_count, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"
)
_SESSION_COLUMNS = (
    "session_id, agent_id, user_id, tenant_id, status, metadata, message_count, "
    "created_at, updated_at, expires_at"
)
_SELECT_SESSION = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?"  # noqa: S608
_SELECT_OWNED_SESSION = f"{_SELECT_SESSION} AND {_OWNER}"
_UPDATE_SESSION = (
    "UPDATE sessions SET status = coalesce(?, status), metadata = coalesce(?, metadata), "
    "expires_at = CASE WHEN ? THEN ? ELSE expires_at END, updated_at = ? WHERE session_id = ?"
)
_UPDATE_OWNED_SESSION = f"{_UPDATE_SESSION} AND {_OWNER}"
_DELETE_SESSION = "DELETE FROM sessions WHERE session_id = ?"
_DELETE_OWNED_SESSION = f"{_DELETE_SESSION} AND {_OWNER}"
_BUMP_COUNT = (
    "UPDATE sessions SET message_count = message_count + ?, updated_at = ? WHERE session_id = ?"
)
# The owner check is in the UPDATE that takes the session's next seqs, inside the write
# transaction that then inserts the messages: a foreign session gets nothing.
_BUMP_OWNED_COUNT = f"{_BUMP_COUNT} AND {_OWNER}"
_BUMP_COUNT_RETURNING = _BUMP_COUNT + " RETURNING message_count"
_BUMP_OWNED_COUNT_RETURNING = _BUMP_OWNED_COUNT + " RETURNING message_count"
_SELECT_COUNT = "SELECT message_count FROM sessions WHERE session_id = ?"
_INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "
    "WHERE session_id = ? AND seq > ? "
    "ORDER BY seq LIMIT ?"
)
_SELECT_OWNED_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "  # noqa: S608
    f"WHERE session_id = ? AND seq > ? AND {_IN_SCOPE} "
    "ORDER BY seq LIMIT ?"
)
_SELECT_RECENT_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "
    "WHERE session_id = ? ORDER BY seq DESC LIMIT ?"
)
_SELECT_OWNED_RECENT_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "  # noqa: S608
    f"WHERE session_id = ? AND {_IN_SCOPE} ORDER BY seq DESC LIMIT ?"
)
_INSERT_STATE = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "
    "SELECT ?, coalesce(max(version), 0) + 1, ?, ? FROM agent_state WHERE session_id = ?"
)
_INSERT_STATE_RETURNING = _INSERT_STATE + " RETURNING version"
#: With an owner the row comes from the session's own row inside the scope: a missing or
#: foreign session inserts nothing (an aggregate alone would still give one row).
_INSERT_OWNED_STATE = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "  # noqa: S608
    "SELECT s.session_id, (SELECT coalesce(max(version), 0) + 1 FROM agent_state "
    "WHERE agent_state.session_id = s.session_id), ?, ? "
    f"FROM sessions AS s WHERE s.session_id = ? AND {_OWNER_OF_S}"
)
_INSERT_OWNED_STATE_RETURNING = _INSERT_OWNED_STATE + " RETURNING version"
_SELECT_STATE_VERSION = "SELECT max(version) FROM agent_state WHERE session_id = ?"
_SELECT_LATEST_STATE = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = ? "
    "ORDER BY version DESC LIMIT 1"
)
_SELECT_OWNED_LATEST_STATE = (
    "SELECT version, state, created_at FROM agent_state "  # noqa: S608
    f"WHERE session_id = ? AND {_IN_SCOPE} ORDER BY version DESC LIMIT 1"
)
_SELECT_STATE = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = ? AND version = ?"
)
_SELECT_OWNED_STATE = f"{_SELECT_STATE} AND {_IN_SCOPE}"
_SELECT_STATES = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = ? "
    "ORDER BY version DESC LIMIT ?"
)
_SELECT_OWNED_STATES = (
    "SELECT version, state, created_at FROM agent_state "  # noqa: S608
    f"WHERE session_id = ? AND {_IN_SCOPE} ORDER BY version DESC LIMIT ?"
)

_LIST_SESSIONS = list_sessions_statements(_SESSION_COLUMNS, lambda _: "?")
