"""The PostgreSQL store: asyncpg with a connection pool.

Usage::

    from mofa.persistence import PostgresStore

    async with await PostgresStore.connect("postgres://user:pass@localhost/mofa") as store:
        session = await store.create_session(agent_id="my-agent", user_id="u1")
        await store.append_message(session.session_id, "user", "Hello")
        history = await store.list_recent_messages(session.session_id, limit=20)

URLs are libpq's (asyncpg parses them): ``postgresql://user:password@host:port/database``,
percent-encoded passwords, ``?sslmode=disable|prefer|require|verify-full``, a unix socket
(``postgresql:///mofa?host=/var/run/postgresql``), ``?password=``, ``?port=``,
``?connect_timeout=`` (seconds; the ``connect_timeout`` option wins over it); other parameters
are sent to the server as settings (``?application_name=…``). Tuning goes on
:meth:`PostgresStore.connect` (``pool_min_size``, ``pool_max_size``, ``connect_timeout``…).

How it stays close to the raw driver:

* one pooled connection per call, with asyncpg's per-release reset switched off (see
  :func:`_keep_session_state`), and asyncpg's per-connection prepared-statement cache;
* an append is ONE statement (a CTE that bumps ``sessions.message_count`` and inserts the
  row), a batch is ONE statement over ``unnest()`` arrays; the session row lock the ``UPDATE``
  takes serializes concurrent appends, so ``seq`` is gap-free;
* JSON travels as text and is decoded once with orjson; nothing checks the schema per call
  (the schema is created or upgraded once, on connect, under an advisory lock);
* an owner scope (``owner=``) is a condition inside the call's one statement, never a
  separate check: each scoped statement is a constant of its own, and a call without an
  owner runs the unscoped statement unchanged.

Needs the ``postgres`` extra: ``pip install 'mofa-sdk[postgres]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import logging
import math
import operator
import os
import time
from datetime import UTC, datetime
from typing import Any, Final, Self
from urllib.parse import quote, unquote_plus, urlsplit

from mofa.persistence import schema
from mofa.persistence._base import BaseStore, EncodedMessage
from mofa.persistence._codec import ROLES, damaged_record, decode_json
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._url import DatabaseURL, parse_url
from mofa.persistence.backends._outage import OutageLog
from mofa.persistence.backends._postgres_times import bad_time_search, damaged_time_error
from mofa.persistence.backends._sql import (
    list_sessions_statements,
    owner_condition,
    owner_params,
    session_filters,
)
from mofa.persistence.backends._toolkit import (
    RETRY_SECONDS,
    InFlight,
    backoff,
    check_flag,
    check_option,
    reject_unknown_options,
)
from mofa.persistence.errors import (
    AgentExistsError,
    AuthenticationError,
    DatabaseNotFoundError,
    InvalidInputError,
    InvalidURLError,
    MissingDependencyError,
    PermissionDeniedError,
    PersistenceError,
    QueryError,
    SchemaError,
    SessionExistsError,
    SessionNotFoundError,
    StoreConnectionError,
)

__all__ = ["PostgresStore"]

_log = logging.getLogger(__name__)

_DIALECT: Final = "postgres"
#: pg_advisory_xact_lock key that serializes schema creation/upgrade ("mofa_sch" as bytes).
_SCHEMA_LOCK_KEY: Final = 0x6D6F66615F736368
#: mofa's tables that exist already in the schema CREATE TABLE would use, with their columns.
_EXISTING_COLUMNS = (
    "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod) "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1::text[]) "
    "AND a.attnum > 0 AND NOT a.attisdropped"
)
#: Relations of the current schema named like mofa's indexes, with the table of each index.
_EXISTING_INDEXES = (
    "SELECT c.relname::text, COALESCE(t.relname::text, '') FROM pg_class c "
    "LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1::text[])"
)
_DEFAULT_PORT: Final = 5432
_DEFAULT_CONNECT_TIMEOUT: Final = 10.0
_DEFAULT_POOL_SIZE: Final = 10
#: The keyword options of PostgresStore.connect (pool_size: another name for pool_max_size).
_OPTIONS: Final = (
    "pool_min_size",
    "pool_max_size",
    "pool_size",
    "connect_timeout",
    "command_timeout",
    "statement_cache_size",
    "max_inactive_connection_lifetime",
    "create_schema",
)
#: SQLSTATEs a store retries itself: serialization failure and deadlock. Neither happens
#: with the statements below under READ COMMITTED, but if one ever surfaces it is retried
#: here, never handed to the caller.
_RETRY_STATES: Final = frozenset({"40001", "40P01"})
_UNIQUE_VIOLATION: Final = "23505"
_FOREIGN_KEY_VIOLATION: Final = "23503"
#: SQLSTATEs that mean the connection, not the statement, failed.
_CONNECTION_STATES: Final = frozenset({"57P01", "57P02", "57P03", "53300"})

# Stage of a call at which an error happened: it decides what we can say about a write.
_CONNECT: Final = "connect"
_CALL: Final = "call"

_SESSION_COLUMNS: Final = (
    "session_id, agent_id, user_id, tenant_id, status, metadata::text, message_count, "
    "created_at, updated_at, expires_at"
)


def _owned(first: int, table: str = "sessions") -> str:
    """`` AND `` the owner scope on ``table``'s row, its three parameters from ``$first``.

    A scoped statement is a constant of its own (asyncpg prepares and caches each text once
    per connection), the unscoped text unchanged: a call without an owner runs exactly the
    statement it ran before scopes existed. ``IS NOT DISTINCT FROM``, since a scope's
    ``None`` must match a NULL column and nothing else; the row is always found by its key
    first, so the condition only filters that one row (it needs no index).
    """
    return " AND " + owner_condition("IS NOT DISTINCT FROM", "${}".format, first, table)


def _owned_session(first: int) -> str:
    """`` AND `` the session named by ``$1`` exists inside the owner scope (``$first``…).

    For reads of messages and states: uncorrelated, so PostgreSQL evaluates it once, as a
    one-time filter before the index scan, in the statement's own snapshot (a session of
    another owner reads as an empty one, in the same round trip).
    """
    return (
        " AND EXISTS (SELECT 1 FROM sessions"  # noqa: S608 - constant fragments
        f" WHERE sessions.session_id = $1{_owned(first)})"
    )


_AGENT_COLUMNS: Final = (
    "id, name, state, started_at, provider, model, description, created_at, updated_at, tenant_id"
)

# Without an owner an existing agent keeps its tenant (tenant_id is not in the SET list);
# RETURNING gives the stored created_at and tenant_id.
_UPSERT_AGENT: Final = (
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
_UPSERT_AGENT_OWNED: Final = _UPSERT_AGENT.replace(
    " RETURNING", " WHERE agents.tenant_id IS NOT DISTINCT FROM EXCLUDED.tenant_id RETURNING"
)
_GET_AGENT: Final = f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = $1"  # noqa: S608
_LIST_AGENTS: Final = (
    f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY updated_at DESC, id DESC LIMIT $1"  # noqa: S608
)

# One statement: the agent row (when the session names an agent that has none and the
# session id is free; it belongs to the session's tenant) and the session. The foreign key
# is checked at the end of the statement, so it sees the agent the CTE inserted.
_CREATE_SESSION: Final = (
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
_GET_SESSION: Final = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = $1"  # noqa: S608
_GET_SESSION_OWNED: Final = _GET_SESSION + _owned(2)


def _update_session_query(scope: str) -> str:
    return (
        "UPDATE sessions SET status = COALESCE($2::varchar, status), "  # noqa: S608
        "metadata = COALESCE($3::jsonb, metadata), "
        "expires_at = CASE WHEN $4::boolean THEN $5::timestamptz ELSE expires_at END, "
        f"updated_at = $6 WHERE session_id = $1{scope} RETURNING {_SESSION_COLUMNS}"
    )


_UPDATE_SESSION: Final = _update_session_query("")
_UPDATE_SESSION_OWNED: Final = _update_session_query(_owned(7))
_DELETE_SESSION: Final = "DELETE FROM sessions WHERE session_id = $1 RETURNING 1"
_DELETE_SESSION_OWNED: Final = f"DELETE FROM sessions WHERE session_id = $1{_owned(2)} RETURNING 1"  # noqa: S608


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


_APPEND_ONE: Final = _append_one_query("")
_APPEND_ONE_OWNED: Final = _append_one_query(_owned(7))


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
_APPEND_BATCH: Final = {
    (metadata, timestamp): _append_batch_query(metadata, timestamp, "")
    for metadata in (False, True)
    for timestamp in (False, True)
}
_APPEND_BATCH_OWNED: Final = {
    (metadata, timestamp): _append_batch_query(metadata, timestamp, _owned(8))
    for metadata in (False, True)
    for timestamp in (False, True)
}


def _list_messages_query(scope: str) -> str:
    return (
        "SELECT id, seq, role, content, metadata::text, timestamp FROM messages"  # noqa: S608
        f" WHERE session_id = $1 AND seq > $2{scope} "
        "ORDER BY seq LIMIT $3"
    )


_LIST_MESSAGES: Final = _list_messages_query("")
_LIST_MESSAGES_OWNED: Final = _list_messages_query(_owned_session(4))


# Backwards through the unique (session_id, seq) index: cost depends on n, not history size.
def _recent_messages_query(scope: str) -> str:
    return (
        "SELECT id, seq, role, content, metadata::text, timestamp FROM messages"  # noqa: S608
        f" WHERE session_id = $1{scope} ORDER BY seq DESC LIMIT $2"
    )


_RECENT_MESSAGES: Final = _recent_messages_query("")
_RECENT_MESSAGES_OWNED: Final = _recent_messages_query(_owned_session(3))

_SAVE_STATE: Final = (
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
_SAVE_STATE_OWNED: Final = _SAVE_STATE.replace(
    " RETURNING", f"{_owned(4, 's')} FOR KEY SHARE OF s RETURNING"
)
_LATEST_STATE: Final = (
    "SELECT version, state::text, created_at FROM agent_state WHERE session_id = $1 "
    "ORDER BY version DESC LIMIT 1"
)
_LATEST_STATE_OWNED: Final = _LATEST_STATE.replace(" ORDER BY", f"{_owned_session(2)} ORDER BY")
_STATE_VERSION: Final = (
    "SELECT version, state::text, created_at FROM agent_state "
    "WHERE session_id = $1 AND version = $2"
)
_STATE_VERSION_OWNED: Final = _STATE_VERSION + _owned_session(3)
_LIST_STATES: Final = (
    "SELECT version, state::text, created_at FROM agent_state WHERE session_id = $1 "
    "ORDER BY version DESC LIMIT $2"
)
_LIST_STATES_OWNED: Final = _LIST_STATES.replace(" ORDER BY", f"{_owned_session(3)} ORDER BY")


_LIST_SESSIONS: Final = list_sessions_statements(_SESSION_COLUMNS, "${}".format)


async def _schema_version(connection: Any) -> int:
    """The database's schema version (0: no schema yet)."""
    if not await connection.fetchval("SELECT to_regclass('mofa_schema_migrations') IS NOT NULL"):
        return 0
    return int(
        await connection.fetchval("SELECT COALESCE(MAX(version), 0) FROM mofa_schema_migrations")
    )


def _import_asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError as exc:
        raise MissingDependencyError("PostgreSQL", "asyncpg", "postgres") from exc
    return asyncpg


async def _keep_session_state(connection: Any) -> None:
    """The pool's per-release reset, replaced by nothing.

    By default an asyncpg pool sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL;`` every time a connection goes back to the pool: a whole extra
    round trip after every call, which roughly halves the append rate. This store never
    changes session state (no SET, LISTEN, cursors or session-level advisory locks: the
    schema lock is transaction-scoped), so there is nothing to reset. Passing this no-op as
    ``create_pool(reset=...)`` (asyncpg >= 0.30) keeps the one thing that matters, which the
    pool still does itself before calling it: rolling back a transaction left open.
    """


_by_seq = operator.itemgetter(1)


def _utc(value: Any) -> Any:
    """asyncpg writes datetime.min and datetime.max (in UTC) as -infinity and infinity, and
    reads those back naive: give them their zone again, so years 1 and 9999 round-trip."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _row_session(row: Any) -> Session:
    metadata = row[5]
    try:
        return Session(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            {} if metadata == "{}" else decode_json(metadata),
            row[6],
            _utc(row[7]),
            _utc(row[8]),
            _utc(row[9]),
        )
    except ValueError as exc:  # JSONB that is not an object: only a hand-edited row
        raise damaged_record(
            f"session {row[0]!r}", {"metadata": metadata}, exc, session_id=row[0]
        ) from exc


def _row_message(session_id: str, row: Any) -> Message:
    metadata = row[4]  # most messages carry none: skip the call for "{}"
    stamp = row[5]
    try:
        return Message(
            session_id,
            row[1],
            ROLES[row[2]],
            row[3],
            {} if metadata == "{}" else decode_json(metadata),
            stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC),  # see _utc
            row[0],
        )
    except (KeyError, ValueError) as exc:
        raise damaged_record(
            f"message {row[1]} of session {session_id!r}",
            {"role": row[2], "metadata": metadata},
            exc,
            session_id=session_id,
        ) from exc


def _row_agent(row: Any) -> Agent:
    return Agent(
        row[0],
        row[1],
        row[2],
        _utc(row[3]),
        row[4],
        row[5],
        row[6],
        _utc(row[7]),
        _utc(row[8]),
        row[9],
    )


def _row_state(session_id: str, row: Any) -> AgentState:
    try:
        return AgentState(session_id, row[0], decode_json(row[1]), _utc(row[2]))
    except ValueError as exc:
        raise damaged_record(
            f"state version {row[0]} of session {session_id!r}",
            {"state": row[1]},
            exc,
            session_id=session_id,
        ) from exc


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (e.g. a bare container uid)
        return "(the operating-system user)"


class _Target:
    """Where the URL points, for error messages (never holds the password)."""

    __slots__ = ("database", "host", "port", "schema", "user")

    def __init__(self, url: DatabaseURL) -> None:
        query = url.query
        host = url.host or query.get("host") or os.environ.get("PGHOST") or "localhost"
        # A list of hosts ("a,b") or a socket directory: show the first, as libpq would try it.
        self.host = host.split(",")[0]
        # libpq's order: ?port= overrides the authority's port, PGPORT is the fallback (a
        # list of ports, one per host: show the first).
        ports = (query.get("port"), url.port, os.environ.get("PGPORT"))
        port_text = next((str(port) for port in ports if port), "").split(",")[0]
        self.port = _port_number(port_text) or _DEFAULT_PORT
        # libpq's default user: PGUSER, else the operating-system user.
        self.user = url.username or query.get("user") or os.environ.get("PGUSER") or _os_user()
        self.database = url.database or query.get("dbname") or self.user
        # Where the tables are: the first schema of ?search_path= (as the store sets it).
        first = (query.get("search_path") or "").split(",")[0].strip().strip('"')
        self.schema = first if first and first != "$user" else "public"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def client_flags(self) -> str:
        """``-h HOST -p PORT`` for pg_isready / createdb, as the URL would need them."""
        return f"-h {self.host} -p {self.port}"


def _port_number(text: str) -> int | None:
    """``text`` as a TCP port (1-65535), or ``None``."""
    digits = text.lstrip("0")  # bounded before int(): a 5000-digit string is a ValueError
    if text.isascii() and text.isdigit() and 0 < len(digits) <= 5 and int(digits) <= 65535:
        return int(digits)
    return None


def _encode_userinfo(url: DatabaseURL) -> str:
    """``url.raw`` with an unencoded ``@`` in the user name or password percent-encoded.

    Ours and MySQL's parsing split the authority at its last ``@`` (as browsers do), asyncpg
    at its first, which would take the rest of the password for the host name.
    """
    netloc = urlsplit(url.raw).netloc
    userinfo, at, _host = netloc.rpartition("@")
    if not at or "@" not in userinfo:
        return url.raw
    encoded = quote(url.username or "", safe="")
    if url.password is not None and ":" in userinfo:
        encoded += ":" + quote(url.password, safe="")
    return url.raw.replace(netloc, encoded + netloc[len(userinfo) :], 1)


class _DriverURL:
    """The URL as asyncpg is given it, with the libpq parameters asyncpg gets wrong handled here.

    * ``?port=`` must be integers 1–65535 (asyncpg would fail with an OverflowError, or
      ignore the parameter when the URL names a host); the ports go to asyncpg explicitly
      and, as in libpq, override a port in the authority;
    * ``?connect_timeout=`` (seconds) is taken out of the DSN, as asyncpg would send it to the
      server as a setting, and becomes the connect timeout.
    """

    __slots__ = ("connect_timeout", "dsn", "ports")

    def __init__(self, url: DatabaseURL) -> None:
        query = url.query
        self.ports: list[int] | None = None
        if "port" in query:
            ports = [_port_number(part) for part in query["port"].split(",")]
            if None in ports:
                raise InvalidURLError(
                    f"The PostgreSQL URL {url.masked!r} has port={query['port']!r}, which is not "
                    "a port number; write an integer from 1 to 65535 (or one per host, "
                    "comma-separated), e.g. port=5432."
                )
            self.ports = [port for port in ports if port is not None]
        self.connect_timeout: float | None = None
        self.dsn = _encode_userinfo(url)
        if "connect_timeout" in query:
            try:
                seconds = float(query["connect_timeout"])
            except ValueError:
                seconds = math.nan
            if not (math.isfinite(seconds) and seconds > 0):
                raise InvalidURLError(
                    f"The PostgreSQL URL {url.masked!r} has connect_timeout="
                    f"{query['connect_timeout']!r}, which is not a positive number of seconds; "
                    "write e.g. connect_timeout=10, or pass connect_timeout= to open_store()."
                )
            self.connect_timeout = seconds
            # The query starts at the first '?' (a '#' before it would leave no query at all).
            base, _, rest = url.raw.partition("?")
            query_text, hash_mark, fragment = rest.partition("#")
            kept = [
                item
                for item in query_text.split("&")
                if unquote_plus(item.partition("=")[0]) != "connect_timeout"
            ]
            self.dsn = base + ("?" + "&".join(kept) if kept else "") + hash_mark + fragment


def _scrub(text: str, url: DatabaseURL) -> str:
    """Remove the password from a driver message, in case one ever quotes it."""
    if url.password:
        text = text.replace(url.password, "****")
    return text


def _sqlstate(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else ""


def _is_connection_error(exc: BaseException) -> bool:
    state = _sqlstate(exc)
    if state.startswith("08") or state in _CONNECTION_STATES:
        return True
    if isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError | ConnectionError):
        return True
    name = type(exc).__name__
    # asyncpg's protocol caught mid-way by a server that is going away, e.g. "cannot switch
    # to state 12; another operation (2) is in progress" when a FATAL arrived on an idle
    # connection just as a call began: the connection is unusable, not the statement wrong.
    if name == "InternalClientError":
        return True
    # asyncpg's InterfaceError "connection is closed" / "... in the middle of operation".
    return name in ("InterfaceError", "ConnectionDoesNotExistError") and (
        "closed" in str(exc) or "connection" in str(exc)
    )


def _translate(
    exc: BaseException, url: DatabaseURL, *, stage: str, write: bool
) -> PersistenceError:
    """The one place where a driver or network exception becomes a :mod:`errors` class.

    Args:
        exc: what asyncpg (or the socket) raised.
        url: the store's URL; only its masked form and non-secret parts are shown.
        stage: ``_CONNECT`` when no statement was sent yet (connecting or acquiring a
            pooled connection), ``_CALL`` when the statement was on its way.
        write: whether the call changes data (decides what a broken connection means).
    """
    target = _Target(url)
    state = _sqlstate(exc)
    detail = _scrub(str(getattr(exc, "message", None) or exc), url).rstrip(".")
    if state == "28P01":
        return AuthenticationError(
            f"Failed to connect to PostgreSQL at {target.address}: password authentication "
            f"failed for user {target.user!r} — check the user name and "
            "password in the URL."
        )
    if state.startswith("28"):
        return AuthenticationError(
            f"Failed to connect to PostgreSQL at {target.address}: {detail} — check the "
            "user name in the URL and the server's pg_hba.conf."
        )
    if state == "54000" and "index row size" in detail:
        # A btree entry holds at most 2,704 bytes: ids of 255 characters are allowed, but
        # three or four of them in multi-byte characters can pass that in one index entry.
        return InvalidInputError(
            f"The ids are too long together for PostgreSQL ({detail}); use shorter ids "
            "(the agent, tenant, user and session ids of a session share index entries)."
        )
    if state == "3D000":
        database = target.database or "mofa"
        # createdb's own defaults reach a local server on the default port; name any other.
        local = target.host in ("localhost", "127.0.0.1", "/var/run/postgresql")
        flags = "" if local and target.port == _DEFAULT_PORT else f"{target.client_flags()} "
        return DatabaseNotFoundError(
            f'Failed to connect to PostgreSQL at {target.address}: database "{database}" '
            f"does not exist — create it with: createdb {flags}{database}"
        )
    if state == "42501":
        user, where = target.user, target.schema
        if "for sequence" in detail:  # appending takes the next message id from a sequence
            grant = f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {user}"
        else:
            grant = (
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {where} TO {user}"
            )
        return PermissionDeniedError(
            f"SQL error: {detail} — grant the privileges the store needs to {user}, e.g. "
            f"{grant} (and GRANT CREATE ON SCHEMA {where} to create the tables)."
        )
    if stage == _CONNECT and state in ("42704", "22023"):
        # asyncpg sends URL parameters it does not know to the server as settings.
        return InvalidURLError(
            f"The PostgreSQL URL {url.masked!r} has a parameter the server refused "
            f"({detail}); remove it or correct its value."
        )
    if isinstance(exc, ValueError) and stage == _CONNECT and not state:
        return InvalidURLError(
            f"The PostgreSQL URL {url.masked!r} cannot be used: {detail}; see the "
            "'Connection URLs' section of the docs."
        )
    if _is_connection_error(exc):
        refused = isinstance(exc, ConnectionRefusedError | FileNotFoundError) or (
            "refused" in detail.lower()
        )
        if not refused and "SSL" in detail and "rejected" in detail:
            return StoreConnectionError(
                f"Failed to connect to PostgreSQL at {target.address}: the server does not "
                f"accept SSL, but the URL asks for sslmode={url.query.get('sslmode')} — "
                "enable SSL on the server or use sslmode=prefer or disable."
            )
        if refused or stage == _CONNECT:
            if refused:
                reason = "connection refused"
            elif isinstance(exc, TimeoutError):
                reason = "no answer within the connect timeout"
            else:
                reason = detail or type(exc).__name__
            return StoreConnectionError(
                f"Failed to connect to PostgreSQL at {target.address}: {reason} — "
                f"is the server running? Check with: pg_isready {target.client_flags()}"
            )
        outcome = (
            "the write may or may not have been stored, so check before retrying it"
            if write
            else "nothing was changed, retry the call"
        )
        if isinstance(exc, TimeoutError):
            return StoreConnectionError(
                f"PostgreSQL at {target.address} did not answer within the command timeout; "
                f"{outcome}."
            )
        return StoreConnectionError(
            f"The connection to PostgreSQL at {target.address} broke during the call "
            f"({detail or type(exc).__name__}); {outcome}."
        )
    if state:
        return QueryError(f"SQL error: {detail} (SQLSTATE {state}).")
    return QueryError(f"PostgreSQL call failed: {type(exc).__name__}: {detail}.")


class PostgresStore(BaseStore):
    """Sessions, messages and agent state in PostgreSQL (asyncpg, pooled).

    Open it with :meth:`connect` (or ``open_store(url)``), close it with ``close()`` or
    ``async with``. Safe to share between asyncio tasks of one event loop.
    """

    backend = "postgres"

    def __init__(self, url: DatabaseURL, pool: Any) -> None:
        super().__init__(url)
        self._pool = pool
        self._loop = asyncio.get_running_loop()  # the pool's connections belong to it
        self._in_flight = InFlight()
        self._outage = OutageLog(_log, f"PostgreSQL at {_Target(url).address}")

    @classmethod
    async def connect(
        cls,
        url: str | DatabaseURL,
        *,
        pool_min_size: int = 1,
        pool_max_size: int | None = None,
        connect_timeout: float | None = None,
        command_timeout: float | None = None,
        statement_cache_size: int = 100,
        max_inactive_connection_lifetime: float = 300.0,
        create_schema: bool = True,
        **options: Any,
    ) -> Self:
        """Open a pool on ``url`` and create or upgrade the schema.

        Args:
            url: a ``postgres://`` / ``postgresql://`` URL (or a parsed one).
            pool_min_size: connections opened at once (like any other, one left idle for
                ``max_inactive_connection_lifetime`` is closed; the next call reopens one).
            pool_max_size: most connections the store opens, default 10 (concurrent calls beyond
                this wait for a free one).
            connect_timeout: seconds to wait for a new connection (default: the URL's
                ``?connect_timeout=``, else 10; given here, it wins over the URL's).
            command_timeout: seconds a statement may run (``None``: no limit).
            statement_cache_size: prepared statements kept per connection.
            max_inactive_connection_lifetime: seconds before an idle connection is closed.
            create_schema: False: change nothing in the database; refuse one without the
                mofa schema or with an older one (:class:`SchemaError`).
            options: ``pool_size`` is accepted as another name for ``pool_max_size`` (the
                MySQL store's name for it); anything else is refused.

        Raises:
            InvalidInputError: an unknown option or an unusable value.
            StoreConnectionError: the server cannot be reached (or refused the login:
                :class:`AuthenticationError`; or has no such database:
                :class:`DatabaseNotFoundError`).
            SchemaError: the database holds a newer schema than this version knows.
        """
        parsed = parse_url(url) if isinstance(url, str) else url
        if parsed.backend != "postgres":
            raise InvalidURLError(
                f"PostgresStore needs a postgres:// or postgresql:// URL, not {parsed.masked!r}."
            )
        max_size_name = "pool_max_size"
        if "pool_size" in options:
            if pool_max_size is not None:
                raise InvalidInputError(
                    "pool_size and pool_max_size are two names for one option; pass one."
                )
            # Checked under its own name: the user did not write pool_max_size.
            max_size_name = "pool_size"
            pool_max_size = options.pop("pool_size")
            check_option("pool_size", pool_max_size, integer=True, minimum=1)
        if pool_max_size is None:
            pool_max_size = _DEFAULT_POOL_SIZE
        reject_unknown_options("PostgresStore", options, _OPTIONS)
        check_option("pool_min_size", pool_min_size, integer=True)
        check_flag("create_schema", create_schema)
        check_option("pool_max_size", pool_max_size, integer=True)
        check_option("statement_cache_size", statement_cache_size, integer=True)
        if connect_timeout is not None:
            check_option("connect_timeout", connect_timeout)
        check_option("max_inactive_connection_lifetime", max_inactive_connection_lifetime)
        if command_timeout is not None:
            check_option("command_timeout", command_timeout, minimum=0.001)
        if pool_max_size < max(pool_min_size, 1):
            raise InvalidInputError(
                f"{max_size_name} ({pool_max_size}) must be at least 1 and at least "
                f"pool_min_size ({pool_min_size})."
            )
        driver_url = _DriverURL(parsed)
        if connect_timeout is None:
            connect_timeout = driver_url.connect_timeout or _DEFAULT_CONNECT_TIMEOUT
        asyncpg = _import_asyncpg()
        try:
            pool = await asyncpg.create_pool(
                dsn=driver_url.dsn,
                port=driver_url.ports,
                # No floor for asyncpg to keep: newer asyncpg restores one in a background task
                # that logs a WARNING with a traceback for every failed attempt, which an
                # application that configured no logging prints to stderr all through an
                # outage. The store opens pool_min_size connections itself (below), and a
                # call that finds none open opens one.
                min_size=0,
                max_size=pool_max_size,
                timeout=connect_timeout,
                command_timeout=command_timeout,
                statement_cache_size=statement_cache_size,
                max_inactive_connection_lifetime=max_inactive_connection_lifetime,
                reset=_keep_session_state,
            )
        except Exception as exc:
            raise _translate(exc, parsed, stage=_CONNECT, write=False) from exc
        store = cls(parsed, pool)
        try:
            await store._migrate(create_schema)
            await store._open_connections(pool_min_size)
        except BaseException:
            pool.terminate()
            raise
        return store

    async def _open_connections(self, count: int) -> None:
        """Have ``count`` connections open in the pool (one is, after the schema check)."""
        if count <= 1:
            return
        acquired = await asyncio.gather(
            *(self._pool.acquire() for _ in range(count)), return_exceptions=True
        )
        for connection in acquired:
            if not isinstance(connection, BaseException):
                await self._pool.release(connection)
        for failure in acquired:
            if isinstance(failure, BaseException):
                raise _translate(failure, self._url, stage=_CONNECT, write=False) from failure

    async def _migrate(self, create_schema: bool) -> None:
        """Bring the schema to the latest version, in one transaction under an advisory lock.

        Several processes may connect at once: the transaction-scoped advisory lock makes
        them take turns, and each one reads the version only once it holds the lock. With
        ``create_schema`` False the version is only read and checked.
        """
        try:
            connection = await self._pool.acquire()
        except Exception as exc:
            raise _translate(exc, self._url, stage=_CONNECT, write=False) from exc
        where = f"PostgreSQL database at {_Target(self._url).address}"
        try:
            if not create_schema:
                schema.check_ready(_DIALECT, await _schema_version(connection), where)
                self.applied_migrations = ()
                return
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK_KEY)
                current = await _schema_version(connection)
                applied = schema.check_version(_DIALECT, current, where)
                if current == 0:
                    schema.check_existing_tables(
                        _DIALECT,
                        await connection.fetch(_EXISTING_COLUMNS, schema.table_names(_DIALECT)),
                        where,
                        await connection.fetch(
                            _EXISTING_INDEXES, list(schema.index_tables(_DIALECT))
                        ),
                    )
                for statement in schema.pending_statements(_DIALECT, current):
                    await connection.execute(statement)
        except PersistenceError:
            raise  # our own checks above: already the error to show
        except Exception as exc:
            error = _translate(exc, self._url, stage=_CALL, write=True)
            if type(error) is QueryError:
                error = SchemaError(
                    f"Creating or upgrading the schema in PostgreSQL at "
                    f"{_Target(self._url).address} failed: {error}"
                )
            raise error from exc
        finally:
            await self._pool.release(connection)
        self.applied_migrations = applied

    async def _close(self) -> None:
        await self._in_flight.drained(seconds=10)  # calls already made finish first
        try:
            await asyncio.wait_for(self._pool.close(), timeout=10)
        except Exception:
            # The server went away or a call is stuck: drop the sockets instead.
            self._pool.terminate()

    def _drop_connections(self) -> None:
        self._pool.terminate()

    # ------------------------------------------------------------- plumbing

    async def _fetch(
        self,
        query: str,
        *args: Any,
        write: bool,
        retry_duplicates: bool = False,
        session_id: str | None = None,
    ) -> list[Any]:
        """Run one statement on a pooled connection and return its rows.

        Retries a serialization failure or deadlock (never surfaced to the caller), with
        ``retry_duplicates`` a unique violation too, and, for reads only, a connection that
        broke mid-call (a read is safe to repeat; a write whose connection broke may have
        committed, so it is reported, not repeated). A row naming a missing session (a
        foreign-key violation) raises :class:`SessionNotFoundError` for ``session_id``.
        """
        with self._in_flight:
            attempt = 1
            deadline = time.monotonic() + RETRY_SECONDS
            while True:
                try:
                    connection = await self._pool.acquire()
                except Exception as exc:
                    if self._closed:  # close() began while this call waited for a connection
                        raise self._closed_meanwhile() from exc
                    raise self._failure(exc, stage=_CONNECT, write=write) from exc
                undecodable: OverflowError | None = None
                try:
                    rows: list[Any] = await connection.fetch(query, *args)
                    self._outage.answered()
                    return rows
                except OverflowError as exc:  # a stored time Python cannot hold
                    undecodable = exc
                except Exception as exc:
                    if _is_connection_error(exc):
                        # Its protocol state is unknown now: never hand it out again. (asyncpg
                        # may already have detached it from the pool, hence the suppress.)
                        with contextlib.suppress(Exception):
                            connection.terminate()
                    state = _sqlstate(exc)
                    if session_id is not None and state == _FOREIGN_KEY_VIOLATION:
                        raise SessionNotFoundError(session_id) from exc
                    conflict = state in _RETRY_STATES or (
                        retry_duplicates and state == _UNIQUE_VIOLATION
                    )
                    if not (
                        (conflict and time.monotonic() < deadline)
                        or (not write and attempt == 1 and _is_connection_error(exc))
                    ):
                        raise self._failure(exc, stage=_CALL, write=write) from exc
                finally:
                    await self._pool.release(connection)
                if undecodable is not None:
                    raise await self._damaged_time(query, args, undecodable) from undecodable
                await asyncio.sleep(backoff(attempt))
                attempt += 1

    def _failure(self, exc: BaseException, *, stage: str, write: bool) -> PersistenceError:
        """The error a call raises for ``exc``; an unreachable server is logged once."""
        error = _translate(exc, self._url, stage=stage, write=write)
        detail = _scrub(str(getattr(exc, "message", None) or exc), self._url)
        self._outage.failed(error, detail or type(exc).__name__, exc)
        return error

    async def _damaged_time(
        self, query: str, args: tuple[Any, ...], failure: OverflowError
    ) -> PersistenceError:
        """The error for a result asyncpg could not decode (see :mod:`._postgres_times`)."""
        search = bad_time_search(query, args)
        if search is not None:
            found = await self._fetch(*search, write=False)
            if found:
                return damaged_time_error(query, found[0])
        return _translate(failure, self._url, stage=_CALL, write=False)

    # ---------------------------------------------------------------- agents

    async def _upsert_agent(self, agent: Agent, owner: Owner | None) -> Agent:
        rows = await self._fetch(
            _UPSERT_AGENT if owner is None else _UPSERT_AGENT_OWNED,
            agent.id,
            agent.name,
            agent.state,
            agent.started_at,
            agent.provider,
            agent.model,
            agent.description,
            agent.created_at,
            agent.updated_at,
            agent.tenant_id,
            write=True,
        )
        if not rows:  # only the scoped statement returns none: another tenant's record
            raise AgentExistsError(agent.id)
        created_at, tenant_id = rows[0]
        created_at = _utc(created_at)
        if created_at != agent.created_at or tenant_id != agent.tenant_id:
            return dataclasses.replace(agent, created_at=created_at, tenant_id=tenant_id)
        return agent

    async def _get_agent(self, agent_id: str) -> Agent | None:
        rows = await self._fetch(_GET_AGENT, agent_id, write=False)
        return _row_agent(rows[0]) if rows else None

    async def _list_agents(self, limit: int | None) -> list[Agent]:
        return [_row_agent(row) for row in await self._fetch(_LIST_AGENTS, limit, write=False)]

    # -------------------------------------------------------------- sessions

    async def _create_session(self, session: Session, metadata_json: str) -> Session:
        rows = await self._fetch(
            _CREATE_SESSION,
            session.session_id,
            session.agent_id,
            session.user_id,
            session.tenant_id,
            session.status,
            metadata_json,
            session.created_at,
            session.expires_at,
            write=True,
        )
        if not rows:
            raise SessionExistsError(session.session_id)
        return session

    async def _get_session(self, session_id: str, owner: Owner | None) -> Session | None:
        if owner is None:
            rows = await self._fetch(_GET_SESSION, session_id, write=False)
        else:
            rows = await self._fetch(
                _GET_SESSION_OWNED, session_id, *owner_params(owner), write=False
            )
        return _row_session(rows[0]) if rows else None

    async def _list_sessions(
        self,
        agent_id: str | None,
        user_id: str | None,
        tenant_id: str | None,
        limit: int | None,
        offset: int,
        owner: Owner | None,
    ) -> list[Session]:
        key, args = session_filters(agent_id, user_id, tenant_id, owner)
        rows = await self._fetch(_LIST_SESSIONS[key], *args, limit, offset, write=False)
        return [_row_session(row) for row in rows]

    async def _update_session(
        self,
        session_id: str,
        status: str | None,
        metadata_json: str | None,
        expires_at: datetime | Unset | None,
        now: datetime,
        owner: Owner | None,
    ) -> Session:
        change_expiry = not isinstance(expires_at, Unset)
        args = (
            session_id,
            status,
            metadata_json,
            change_expiry,
            expires_at if change_expiry else None,
            now,
        )
        if owner is None:
            rows = await self._fetch(_UPDATE_SESSION, *args, write=True)
        else:
            rows = await self._fetch(_UPDATE_SESSION_OWNED, *args, *owner_params(owner), write=True)
        if not rows:
            raise SessionNotFoundError(session_id)
        return _row_session(rows[0])

    async def _delete_session(self, session_id: str, owner: Owner | None) -> bool:
        if owner is None:
            return bool(await self._fetch(_DELETE_SESSION, session_id, write=True))
        return bool(
            await self._fetch(_DELETE_SESSION_OWNED, session_id, *owner_params(owner), write=True)
        )

    # -------------------------------------------------------------- messages

    async def _append_message(
        self, session_id: str, message: EncodedMessage, now: datetime, owner: Owner | None
    ) -> Message:
        args = (
            session_id,
            message.role.value,
            message.content,
            message.metadata_json,
            message.timestamp,
            now,
        )
        if owner is None:
            rows = await self._fetch(_APPEND_ONE, *args, write=True)
        else:
            rows = await self._fetch(_APPEND_ONE_OWNED, *args, *owner_params(owner), write=True)
        if not rows:
            raise SessionNotFoundError(session_id)
        message_id, seq = rows[0]  # RETURNING id, seq
        return message.stored(session_id, seq, message_id)

    async def _append_messages(
        self,
        session_id: str,
        messages: list[EncodedMessage],
        now: datetime,
        owner: Owner | None,
    ) -> list[Message]:
        metadata = messages[0].metadata_json
        timestamp = messages[0].timestamp
        shared_metadata = all(message.metadata_json == metadata for message in messages)
        shared_timestamp = all(message.timestamp == timestamp for message in messages)
        args = (
            session_id,
            len(messages),
            [message.role.value for message in messages],
            [message.content for message in messages],
            metadata if shared_metadata else [message.metadata_json for message in messages],
            timestamp if shared_timestamp else [message.timestamp for message in messages],
            now,
        )
        if owner is None:
            rows = await self._fetch(
                _APPEND_BATCH[shared_metadata, shared_timestamp], *args, write=True
            )
        else:
            rows = await self._fetch(
                _APPEND_BATCH_OWNED[shared_metadata, shared_timestamp],
                *args,
                *owner_params(owner),
                write=True,
            )
        if not rows:
            raise SessionNotFoundError(session_id)
        # Rows come back in insert order in practice; sorting by seq makes it certain.
        rows.sort(key=_by_seq)
        return [
            message.stored(session_id, seq, message_id)
            for message, (message_id, seq) in zip(messages, rows, strict=True)
        ]

    async def _list_messages(
        self, session_id: str, limit: int | None, after_seq: int, owner: Owner | None
    ) -> list[Message]:
        if owner is None:
            rows = await self._fetch(_LIST_MESSAGES, session_id, after_seq, limit, write=False)
        else:
            rows = await self._fetch(
                _LIST_MESSAGES_OWNED,
                session_id,
                after_seq,
                limit,
                *owner_params(owner),
                write=False,
            )
        return [_row_message(session_id, row) for row in rows]

    async def _list_recent_messages(
        self, session_id: str, limit: int, owner: Owner | None
    ) -> list[Message]:
        if owner is None:
            rows = await self._fetch(_RECENT_MESSAGES, session_id, limit, write=False)
        else:
            rows = await self._fetch(
                _RECENT_MESSAGES_OWNED, session_id, limit, *owner_params(owner), write=False
            )
        return [_row_message(session_id, row) for row in reversed(rows)]

    # ----------------------------------------------------------------- state

    async def _save_state(
        self,
        session_id: str,
        state: dict[str, Any],
        state_json: str,
        now: datetime,
        owner: Owner | None,
    ) -> AgentState:
        # Two concurrent saves can compute the same next version; the primary key rejects
        # the second, which then simply tries again with the new maximum. A session deleted
        # meanwhile fails the foreign key.
        rows = await self._fetch(
            _SAVE_STATE if owner is None else _SAVE_STATE_OWNED,
            session_id,
            state_json,
            now,
            *(() if owner is None else owner_params(owner)),
            write=True,
            retry_duplicates=True,
            session_id=session_id,
        )
        if not rows:
            raise SessionNotFoundError(session_id)
        return AgentState(session_id, rows[0][0], state, now)

    async def _get_state(
        self, session_id: str, version: int | None, owner: Owner | None
    ) -> AgentState | None:
        if owner is None:
            if version is None:
                rows = await self._fetch(_LATEST_STATE, session_id, write=False)
            else:
                rows = await self._fetch(_STATE_VERSION, session_id, version, write=False)
        elif version is None:
            rows = await self._fetch(
                _LATEST_STATE_OWNED, session_id, *owner_params(owner), write=False
            )
        else:
            rows = await self._fetch(
                _STATE_VERSION_OWNED, session_id, version, *owner_params(owner), write=False
            )
        return _row_state(session_id, rows[0]) if rows else None

    async def _list_states(
        self, session_id: str, limit: int | None, owner: Owner | None
    ) -> list[AgentState]:
        if owner is None:
            rows = await self._fetch(_LIST_STATES, session_id, limit, write=False)
        else:
            rows = await self._fetch(
                _LIST_STATES_OWNED, session_id, limit, *owner_params(owner), write=False
            )
        return [_row_state(session_id, row) for row in rows]
