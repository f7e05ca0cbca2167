"""The MySQL store's SQL: constant text, every value a ``%s`` parameter.

A write's text may hold several statements, separated by ``;``, sent in one round trip
and, where it says START TRANSACTION, committed together; the store gets one
``_calls.Outcome`` per statement, in the order written here, and unpacks them by name.
"""

from __future__ import annotations

import functools
from typing import Final

from mofa.persistence.backends._sql import list_sessions_statements, owner_condition

__all__ = [
    "APPEND_ONE",
    "APPEND_OWNED_ONE",
    "CREATE_SESSION_WITH_AGENT",
    "DELETE_OWNED_SESSION",
    "DELETE_SESSION",
    "GET_AGENT",
    "GET_OWNED_SESSION",
    "GET_SESSION",
    "INSERT_SESSION",
    "LATEST_OWNED_STATE",
    "LATEST_STATE",
    "LIST_AGENTS",
    "LIST_MESSAGES",
    "LIST_OWNED_MESSAGES",
    "LIST_OWNED_STATES",
    "LIST_SESSIONS",
    "LIST_STATES",
    "NO_LIMIT",
    "OWNED_STATE_VERSION",
    "RECENT_MESSAGES",
    "RECENT_OWNED_MESSAGES",
    "SAVE_OWNED_STATE",
    "SAVE_STATE",
    "STATE_VERSION",
    "UPDATE_OWNED_SESSION",
    "UPDATE_SESSION",
    "UPSERT_AGENT",
    "UPSERT_OWNED_AGENT",
    "append_many_statement",
]

NO_LIMIT: Final = 18446744073709551615  # MySQL's documented "every row" LIMIT

_SESSION_COLUMNS = (
    "session_id, agent_id, user_id, tenant_id, status, metadata, message_count, "
    "created_at, updated_at, expires_at"
)

_AGENT_COLUMNS = (
    "id, name, state, started_at, provider, model, description, created_at, updated_at, tenant_id"
)

# An owner scope (mofa.persistence.Owner) inside the statement that addresses the session:
# NULL-safe equality (<=>), since a scope's None matches only a NULL column. Its parameters
# are owner_params(owner). Through a scope another owner's session is exactly a missing one.
_OWNED = owner_condition("<=>", lambda _: "%s", 1)
#: Reads of messages and states: the one statement reads nothing unless the session is in
#: scope (uncorrelated, so evaluated once; parameters: session_id, then the owner's).
_IN_SCOPE = f"EXISTS (SELECT 1 FROM sessions WHERE sessions.session_id = %s AND {_OWNED})"  # noqa: S608

# Every value is a %s parameter; the column lists come from the constants above, in the
# order the row readers unpack them.
UPSERT_AGENT = (
    "INSERT INTO agents (id, name, state, started_at, provider, model, description, "
    "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE name = VALUES(name), state = VALUES(state), "
    "started_at = VALUES(started_at), provider = VALUES(provider), model = VALUES(model), "
    "description = VALUES(description), updated_at = VALUES(updated_at);\n"
    "SELECT created_at, tenant_id FROM agents WHERE id = %s"
)
# Through an owner: a new agent is the owner's tenant's; an existing one is changed only when
# it is that tenant's (NULL-safe, tenant_id itself is never assigned, so every IF sees the
# stored one), else nothing changes (not even updated_at: an unchanged row is not updated)
# and the SELECT's tenant_id tells the refusal. One transaction: the INSERT's row lock
# holds until the SELECT has read the row it decided on.
_OWNED_FIELDS = ("name", "state", "started_at", "provider", "model", "description", "updated_at")
UPSERT_OWNED_AGENT = (
    "START TRANSACTION;\n"  # noqa: S608 - constant fragments
    "INSERT INTO agents (id, name, state, started_at, provider, model, description, "
    "created_at, updated_at, tenant_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE "
    + ", ".join(
        f"{name} = IF(tenant_id <=> VALUES(tenant_id), VALUES({name}), {name})"
        for name in _OWNED_FIELDS
    )
    + ";\nSELECT created_at, tenant_id FROM agents WHERE id = %s;\n"
    "COMMIT"
)
GET_AGENT = f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = %s"  # noqa: S608
LIST_AGENTS = f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY updated_at DESC, id DESC LIMIT %s"  # noqa: S608

INSERT_SESSION = (
    "INSERT INTO sessions (session_id, agent_id, user_id, tenant_id, status, metadata, "
    "message_count, created_at, updated_at, expires_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, 0, %s, %s, %s)"
)
# The agent row must exist for the foreign key; both inserts commit together or not at all.
# A placeholder agent belongs to the session's tenant (placeholder_agent()).
CREATE_SESSION_WITH_AGENT = (
    "START TRANSACTION;\n"
    "INSERT INTO agents (id, name, state, started_at, created_at, updated_at, tenant_id) "
    "VALUES (%s, %s, 'unknown', %s, %s, %s, %s) ON DUPLICATE KEY UPDATE id = id;\n"
    + INSERT_SESSION
    + ";\nCOMMIT"
)
GET_SESSION = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = %s"  # noqa: S608
GET_OWNED_SESSION = f"{GET_SESSION} AND {_OWNED}"
_SET_SESSION = (
    "UPDATE sessions SET updated_at = %s, status = COALESCE(%s, status), "
    "metadata = COALESCE(%s, metadata), expires_at = IF(%s, %s, expires_at) "
    "WHERE session_id = %s"
)
UPDATE_SESSION = f"{_SET_SESSION};\n{GET_SESSION}"
UPDATE_OWNED_SESSION = f"{_SET_SESSION} AND {_OWNED};\n{GET_OWNED_SESSION}"
DELETE_SESSION = "DELETE FROM sessions WHERE session_id = %s"
DELETE_OWNED_SESSION = f"{DELETE_SESSION} AND {_OWNED}"
#: (agent?, user?, tenant?) -> statement.
LIST_SESSIONS = list_sessions_statements(_SESSION_COLUMNS, lambda _: "%s")

APPEND_ONE = (
    "START TRANSACTION;\n"
    "UPDATE sessions SET message_count = LAST_INSERT_ID(message_count + 1), updated_at = %s "
    "WHERE session_id = %s;\n"
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "VALUES (%s, LAST_INSERT_ID(), %s, %s, %s, %s);\n"
    "COMMIT"
)
# Through an owner the scope is in the UPDATE, which takes the session row's lock for the
# whole transaction (so the session cannot change hands before the INSERT). A session out of
# scope (or missing) matches no row, and the INSERT's session id is then NULL
# (ROW_COUNT() is still the UPDATE's): the INSERT fails and the transaction is rolled back,
# as for a missing session, so nothing changes. The foreign key alone cannot tell: another
# owner's session exists.
APPEND_OWNED_ONE = (
    "START TRANSACTION;\n"
    "UPDATE sessions SET message_count = LAST_INSERT_ID(message_count + 1), updated_at = %s "
    f"WHERE session_id = %s AND {_OWNED};\n"
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "VALUES (IF(ROW_COUNT() = 1, %s, NULL), LAST_INSERT_ID(), %s, %s, %s, %s);\n"
    "COMMIT"
)
LIST_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "
    "WHERE session_id = %s AND seq > %s ORDER BY seq LIMIT %s"
)
LIST_OWNED_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "  # noqa: S608
    f"WHERE session_id = %s AND seq > %s AND {_IN_SCOPE} ORDER BY seq LIMIT %s"
)
RECENT_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "
    "WHERE session_id = %s ORDER BY seq DESC LIMIT %s"
)
RECENT_OWNED_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "  # noqa: S608
    f"WHERE session_id = %s AND {_IN_SCOPE} ORDER BY seq DESC LIMIT %s"
)

# The new version comes back in the OK packet through LAST_INSERT_ID(expr); a concurrent
# snapshot of the same session makes one of the two hit the primary key and retry.
SAVE_STATE = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "
    "SELECT %s, LAST_INSERT_ID(COALESCE(MAX(version), 0) + 1), %s, %s "
    "FROM agent_state WHERE session_id = %s"
)
# Through an owner: the aggregate's one row is kept only when the session is in scope (a
# WHERE would still leave MAX()'s row), so out of scope nothing is inserted (0 rows). The
# scope check and the insert are one statement; INSERT … SELECT reads sessions with a shared
# lock (REPEATABLE READ, the default) and the foreign key check locks it too, until commit.
SAVE_OWNED_STATE = f"{SAVE_STATE} HAVING {_IN_SCOPE}"
LATEST_STATE = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = %s "
    "ORDER BY version DESC LIMIT 1"
)
LATEST_OWNED_STATE = (
    "SELECT version, state, created_at FROM agent_state "  # noqa: S608
    f"WHERE session_id = %s AND {_IN_SCOPE} ORDER BY version DESC LIMIT 1"
)
STATE_VERSION = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = %s AND version = %s"
)
OWNED_STATE_VERSION = f"{STATE_VERSION} AND {_IN_SCOPE}"
LIST_STATES = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = %s "
    "ORDER BY version DESC LIMIT %s"
)
LIST_OWNED_STATES = (
    "SELECT version, state, created_at FROM agent_state "  # noqa: S608
    f"WHERE session_id = %s AND {_IN_SCOPE} ORDER BY version DESC LIMIT %s"
)


@functools.lru_cache(maxsize=64)  # batch sizes repeat; a one-off huge batch is not kept forever
def append_many_statement(count: int, owned: bool = False) -> str:
    # Row i of n gets seq = new_count - (n - 1 - i); LAST_INSERT_ID() is the new count. When
    # the session is missing, the UPDATE sets nothing and LAST_INSERT_ID() is whatever this
    # connection had (0 when fresh): signed arithmetic lets the INSERT reach the foreign key,
    # which reports the missing session, instead of failing on an unsigned underflow.
    # ``owned``: the owner scope is in the UPDATE, and the first row's session id is NULL
    # unless the UPDATE matched the session (see APPEND_OWNED_ONE): one failing row fails
    # the whole INSERT.
    rows = ", ".join(
        f"({'IF(ROW_COUNT() = 1, %s, NULL)' if owned and index == 0 else '%s'}, "
        f"CAST(LAST_INSERT_ID() AS SIGNED) - {count - 1 - index}, %s, %s, %s, %s)"
        for index in range(count)
    )
    return (
        "START TRANSACTION;\n"
        "UPDATE sessions SET message_count = LAST_INSERT_ID(message_count + %s), "
        f"updated_at = %s WHERE session_id = %s{f' AND {_OWNED}' if owned else ''};\n"
        f"INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
        f"VALUES {rows};\n"
        "COMMIT"
    )
