"""The MySQL store's SQL: constant text, every value a ``%s`` parameter.

A write's text may hold several statements, separated by ``;``, sent in one round trip
and, where it says START TRANSACTION, committed together; the store gets one
``_calls.Outcome`` per statement, in the order written here, and unpacks them by name.
"""

from __future__ import annotations

import functools
from typing import Final

from mofa.persistence.backends._sql import (
    Dialect,
    owner_condition,
    positional,
    reads,
    session_in_scope,
)
from mofa.persistence.backends.mysql._rows import (
    agent_from_row,
    messages_from_rows,
    session_from_row,
    state_from_row,
    wire,
)

__all__ = [
    "APPEND_ONE",
    "APPEND_ONE_OWNED",
    "CREATE_SESSION_WITH_AGENT",
    "DELETE_SESSION",
    "DELETE_SESSION_OWNED",
    "DIALECT",
    "INSERT_SESSION",
    "NO_LIMIT",
    "READS",
    "SAVE_STATE",
    "SAVE_STATE_OWNED",
    "UPDATE_SESSION",
    "UPDATE_SESSION_OWNED",
    "UPSERT_AGENT",
    "UPSERT_AGENT_OWNED",
    "append_many_statement",
]

NO_LIMIT: Final = 18446744073709551615  # MySQL's documented "every row" LIMIT

DIALECT: Final = Dialect(
    name="mysql",
    mark=positional("%s"),
    null_safe_equal="<=>",
    no_limit=NO_LIMIT,
    json_text=str,  # JSON columns arrive as text already
    session_from_row=session_from_row,
    agent_from_row=agent_from_row,
    messages_from_rows=messages_from_rows,
    state_from_row=state_from_row,
    wire_time=wire,  # DATETIME(6) holds naive UTC
)
READS: Final = reads(DIALECT)

# An owner scope (mofa.persistence.Owner) inside the statement that addresses the session:
# NULL-safe equality (<=>), since a scope's None matches only a NULL column. Its parameters
# are owner_params(owner). Through a scope another owner's session is exactly a missing one.
_OWNED = owner_condition(DIALECT.null_safe_equal, DIALECT.mark, 1)

# Every value is a %s parameter. The reads are READS, written once for every dialect.
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
UPSERT_AGENT_OWNED = (
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
_SET_SESSION = (
    "UPDATE sessions SET updated_at = %s, status = COALESCE(%s, status), "
    "metadata = COALESCE(%s, metadata), expires_at = IF(%s, %s, expires_at) "
    "WHERE session_id = %s"
)
UPDATE_SESSION = f"{_SET_SESSION};\n{READS.get_session}"
UPDATE_SESSION_OWNED = f"{_SET_SESSION} AND {_OWNED};\n{READS.get_session_owned}"
DELETE_SESSION = "DELETE FROM sessions WHERE session_id = %s"
DELETE_SESSION_OWNED = f"{DELETE_SESSION} AND {_OWNED}"

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
APPEND_ONE_OWNED = (
    "START TRANSACTION;\n"
    "UPDATE sessions SET message_count = LAST_INSERT_ID(message_count + 1), updated_at = %s "
    f"WHERE session_id = %s AND {_OWNED};\n"
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "VALUES (IF(ROW_COUNT() = 1, %s, NULL), LAST_INSERT_ID(), %s, %s, %s, %s);\n"
    "COMMIT"
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
SAVE_STATE_OWNED = f"{SAVE_STATE} HAVING {session_in_scope(DIALECT, 1)}"


@functools.lru_cache(maxsize=64)  # batch sizes repeat; a one-off huge batch is not kept forever
def append_many_statement(count: int, owned: bool = False) -> str:
    # Row i of n gets seq = new_count - (n - 1 - i); LAST_INSERT_ID() is the new count. When
    # the session is missing, the UPDATE sets nothing and LAST_INSERT_ID() is whatever this
    # connection had (0 when fresh): signed arithmetic lets the INSERT reach the foreign key,
    # which reports the missing session, instead of failing on an unsigned underflow.
    # ``owned``: the owner scope is in the UPDATE, and the first row's session id is NULL
    # unless the UPDATE matched the session (see APPEND_ONE_OWNED): one failing row fails
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
