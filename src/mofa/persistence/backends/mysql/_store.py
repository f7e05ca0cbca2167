"""The MySQL / MariaDB store: :class:`MySqlStore` (usage in the package's docstring)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import re
import ssl
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, Self

from mofa.persistence import schema
from mofa.persistence._base import BaseStore, EncodedMessage
from mofa.persistence._codec import ROLES, damaged_record, decode_json, unreadable_field
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._url import DatabaseURL, parse_url
from mofa.persistence.backends._outage import OutageLog
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
from mofa.persistence.backends.mysql._connect import (
    DRIVER_TIMEOUT_LIMIT,
    Target,
    ssl_context,
    within_connect_timeout,
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

__all__ = ["MySqlStore"]

# The package's name, as before the split: outage records keep their logger.
_log = logging.getLogger("mofa.persistence.backends.mysql")

_NO_LIMIT: Final = 18446744073709551615  # MySQL's documented "every row" LIMIT
_FOUND_ROWS: Final = 1 << 1  # CLIENT_FOUND_ROWS: UPDATE reports matched, not changed, rows
_PACKET_MARGIN: Final = 64 * 1024  # statement text and protocol overhead around the values
_ESCAPED: Final = ("\\", "'", '"', "\n", "\r", "\x1a")  # each sent as two bytes

# MySQL / MariaDB error numbers this module reacts to.
_ER_DBACCESS_DENIED: Final = 1044
_ER_ACCESS_DENIED: Final = 1045
_ER_BAD_NULL: Final = 1048
_ER_BAD_DB: Final = 1049
_ER_DUP_ENTRY: Final = 1062
_ER_TABLEACCESS_DENIED: Final = 1142
_ER_COLUMNACCESS_DENIED: Final = 1143
_ER_NO_SUCH_TABLE: Final = 1146
_ER_NET_PACKET_TOO_LARGE: Final = 1153
_ER_LOCK_WAIT_TIMEOUT: Final = 1205
_ER_LOCK_DEADLOCK: Final = 1213
_ER_SPECIFIC_ACCESS_DENIED: Final = 1227
_ER_NO_REFERENCED_ROW: Final = 1452
_ER_TOO_MANY_CONNECTIONS: Final = 1040
_CR_CONNECTION_ERROR: Final = 2002
_CR_CONN_HOST_ERROR: Final = 2003
_CR_SERVER_GONE: Final = 2006
_CR_SERVER_LOST: Final = 2013
_CR_SERVER_LOST_EXTENDED: Final = 2055
_CONNECT_ERRORS: Final = frozenset({_CR_CONNECTION_ERROR, _CR_CONN_HOST_ERROR})
_LOST_ERRORS: Final = frozenset({_CR_SERVER_GONE, _CR_SERVER_LOST, _CR_SERVER_LOST_EXTENDED})
_RETRYABLE: Final = frozenset({_ER_LOCK_DEADLOCK, _ER_LOCK_WAIT_TIMEOUT})
# A write naming a missing session fails its foreign key; a scoped append naming a session
# outside the scope writes NULL as the session id (strict mode: 1048; otherwise '', which
# fails the foreign key).
_NO_SESSION: Final = frozenset({_ER_NO_REFERENCED_ROW, _ER_BAD_NULL})
_DENIED: Final = frozenset(
    {
        _ER_DBACCESS_DENIED,
        _ER_TABLEACCESS_DENIED,
        _ER_COLUMNACCESS_DENIED,
        _ER_SPECIFIC_ACCESS_DENIED,
    }
)
# "INSERT command denied to user 'u'@'h' for table `db`.`agents`" (MariaDB) / "… 'agents'"
_TABLE_IN_MESSAGE = re.compile(r"for table (?:[`'\"]?[^`'\"\s.]+[`'\"]?\.)?[`'\"]?([^`'\"\s.]+)")
_COMMAND_IN_MESSAGE = re.compile(r"^(\w+) command denied")

# ------------------------------------------------------------------------------ statements

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
_UPSERT_AGENT = (
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
_UPSERT_OWNED_AGENT = (
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
_GET_AGENT = f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = %s"  # noqa: S608
_LIST_AGENTS = f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY updated_at DESC, id DESC LIMIT %s"  # noqa: S608

_INSERT_SESSION = (
    "INSERT INTO sessions (session_id, agent_id, user_id, tenant_id, status, metadata, "
    "message_count, created_at, updated_at, expires_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, 0, %s, %s, %s)"
)
# The agent row must exist for the foreign key; both inserts commit together or not at all.
# A placeholder agent belongs to the session's tenant (placeholder_agent()).
_CREATE_SESSION_WITH_AGENT = (
    "START TRANSACTION;\n"
    "INSERT INTO agents (id, name, state, started_at, created_at, updated_at, tenant_id) "
    "VALUES (%s, %s, 'unknown', %s, %s, %s, %s) ON DUPLICATE KEY UPDATE id = id;\n"
    + _INSERT_SESSION
    + ";\nCOMMIT"
)
_GET_SESSION = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = %s"  # noqa: S608
_GET_OWNED_SESSION = f"{_GET_SESSION} AND {_OWNED}"
_SET_SESSION = (
    "UPDATE sessions SET updated_at = %s, status = COALESCE(%s, status), "
    "metadata = COALESCE(%s, metadata), expires_at = IF(%s, %s, expires_at) "
    "WHERE session_id = %s"
)
_UPDATE_SESSION = f"{_SET_SESSION};\n{_GET_SESSION}"
_UPDATE_OWNED_SESSION = f"{_SET_SESSION} AND {_OWNED};\n{_GET_OWNED_SESSION}"
_DELETE_SESSION = "DELETE FROM sessions WHERE session_id = %s"
_DELETE_OWNED_SESSION = f"{_DELETE_SESSION} AND {_OWNED}"
#: (agent?, user?, tenant?) -> statement.
_LIST_SESSIONS = list_sessions_statements(_SESSION_COLUMNS, lambda _: "%s")

_APPEND_ONE = (
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
_APPEND_OWNED_ONE = (
    "START TRANSACTION;\n"
    "UPDATE sessions SET message_count = LAST_INSERT_ID(message_count + 1), updated_at = %s "
    f"WHERE session_id = %s AND {_OWNED};\n"
    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
    "VALUES (IF(ROW_COUNT() = 1, %s, NULL), LAST_INSERT_ID(), %s, %s, %s, %s);\n"
    "COMMIT"
)
_LIST_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "
    "WHERE session_id = %s AND seq > %s ORDER BY seq LIMIT %s"
)
_LIST_OWNED_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "  # noqa: S608
    f"WHERE session_id = %s AND seq > %s AND {_IN_SCOPE} ORDER BY seq LIMIT %s"
)
_RECENT_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "
    "WHERE session_id = %s ORDER BY seq DESC LIMIT %s"
)
_RECENT_OWNED_MESSAGES = (
    "SELECT id, seq, role, content, metadata, timestamp FROM messages "  # noqa: S608
    f"WHERE session_id = %s AND {_IN_SCOPE} ORDER BY seq DESC LIMIT %s"
)

# The new version comes back in the OK packet through LAST_INSERT_ID(expr); a concurrent
# snapshot of the same session makes one of the two hit the primary key and retry.
_SAVE_STATE = (
    "INSERT INTO agent_state (session_id, version, state, created_at) "
    "SELECT %s, LAST_INSERT_ID(COALESCE(MAX(version), 0) + 1), %s, %s "
    "FROM agent_state WHERE session_id = %s"
)
# Through an owner: the aggregate's one row is kept only when the session is in scope (a
# WHERE would still leave MAX()'s row), so out of scope nothing is inserted (0 rows). The
# scope check and the insert are one statement; INSERT … SELECT reads sessions with a shared
# lock (REPEATABLE READ, the default) and the foreign key check locks it too, until commit.
_SAVE_OWNED_STATE = f"{_SAVE_STATE} HAVING {_IN_SCOPE}"
_LATEST_STATE = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = %s "
    "ORDER BY version DESC LIMIT 1"
)
_LATEST_OWNED_STATE = (
    "SELECT version, state, created_at FROM agent_state "  # noqa: S608
    f"WHERE session_id = %s AND {_IN_SCOPE} ORDER BY version DESC LIMIT 1"
)
_STATE_VERSION = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = %s AND version = %s"
)
_OWNED_STATE_VERSION = f"{_STATE_VERSION} AND {_IN_SCOPE}"
_LIST_STATES = (
    "SELECT version, state, created_at FROM agent_state WHERE session_id = %s "
    "ORDER BY version DESC LIMIT %s"
)
_LIST_OWNED_STATES = (
    "SELECT version, state, created_at FROM agent_state "  # noqa: S608
    f"WHERE session_id = %s AND {_IN_SCOPE} ORDER BY version DESC LIMIT %s"
)

_MIGRATIONS_TABLE_EXISTS = (
    "SELECT COUNT(*) FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_name = %s"
)
_SCHEMA_VERSION = "SELECT COALESCE(MAX(version), 0) FROM mofa_schema_migrations"
#: mofa's tables that exist already (before the first migration), with their columns.
_EXISTING_COLUMNS = (
    "SELECT table_name, column_name, column_type FROM information_schema.columns "
    "WHERE table_schema = DATABASE() AND table_name IN ({marks})"
)


@functools.lru_cache(maxsize=64)  # batch sizes repeat; a one-off huge batch is not kept forever
def _append_many_statement(count: int, owned: bool = False) -> str:
    # Row i of n gets seq = new_count - (n - 1 - i); LAST_INSERT_ID() is the new count. When
    # the session is missing, the UPDATE sets nothing and LAST_INSERT_ID() is whatever this
    # connection had (0 when fresh): signed arithmetic lets the INSERT reach the foreign key,
    # which reports the missing session, instead of failing on an unsigned underflow.
    # ``owned``: the owner scope is in the UPDATE, and the first row's session id is NULL
    # unless the UPDATE matched the session (see _APPEND_OWNED_ONE): one failing row fails
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


# ------------------------------------------------------------------------------ conversions


def _wire(value: datetime | None) -> datetime | None:
    """Aware UTC -> the naive UTC value a DATETIME(6) column holds."""
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


_combine = datetime.combine


def _aware(value: datetime) -> datetime:
    """The driver's naive UTC datetime, made aware.

    ``combine(date, time, UTC)`` is measured 10x faster than ``replace(tzinfo=UTC)`` here
    (120 ns vs 1.3 µs), and loads make one per row.
    """
    return _combine(value.date(), value.time(), UTC)


#: What decoding a hand-edited row raises (a zero date reaches us as None: AttributeError).
_UNREADABLE: Final = (AttributeError, KeyError, TypeError, ValueError)


def _session(row: Sequence[Any]) -> Session:
    (
        session_id,
        agent_id,
        user_id,
        tenant_id,
        status,
        metadata,
        count,
        created,
        updated,
        expires,
    ) = row
    try:
        return Session(
            session_id.decode(),
            None if agent_id is None else agent_id.decode(),
            None if user_id is None else user_id.decode(),
            None if tenant_id is None else tenant_id.decode(),
            status,
            {} if metadata == "{}" else decode_json(metadata),
            count,
            _combine(created.date(), created.time(), UTC),
            _combine(updated.date(), updated.time(), UTC),
            None if expires is None else _combine(expires.date(), expires.time(), UTC),
        )
    except _UNREADABLE as exc:
        fields = {"metadata": metadata, "created_at": created, "updated_at": updated}
        session = session_id.decode()
        raise damaged_record(f"session {session!r}", fields, exc, session_id=session) from exc


def _messages(session_id: str, rows: Sequence[Sequence[Any]]) -> list[Message]:
    """Rows -> messages. The hot path of every load: one comprehension, positional fields,
    no call for the common empty metadata."""
    roles, utc, decode, combine = ROLES, UTC, decode_json, _combine
    try:
        return [
            Message(
                session_id,
                seq,
                roles[role],
                content,
                {} if metadata == "{}" else decode(metadata),
                combine(stamp.date(), stamp.time(), utc),
                message_id,
            )
            for message_id, seq, role, content, metadata, stamp in rows
        ]
    except _UNREADABLE as exc:  # find the row: only now is each one checked on its own
        for _id, seq, role, _content, metadata, stamp in rows:
            fields = {"role": role, "metadata": metadata, "timestamp": stamp}
            if unreadable_field(fields) is not None:
                record = f"message {seq} of session {session_id!r}"
                raise damaged_record(record, fields, exc, session_id=session_id) from exc
        raise


def _agent(row: Sequence[Any]) -> Agent:
    try:
        return Agent(
            id=row[0].decode(),
            name=row[1],
            state=row[2],
            started_at=_aware(row[3]),
            provider=row[4],
            model=row[5],
            description=row[6],
            created_at=_aware(row[7]),
            updated_at=_aware(row[8]),
            tenant_id=None if row[9] is None else row[9].decode(),
        )
    except _UNREADABLE as exc:
        fields = {"started_at": row[3], "created_at": row[7], "updated_at": row[8]}
        raise damaged_record(f"agent {row[0].decode()!r}", fields, exc) from exc


def _state(session_id: str, row: Sequence[Any]) -> AgentState:
    try:
        return AgentState(session_id, row[0], decode_json(row[1]), _aware(row[2]))
    except _UNREADABLE as exc:
        raise damaged_record(
            f"state version {row[0]} of session {session_id!r}",
            {"state": row[1], "created_at": row[2]},
            exc,
            session_id=session_id,
        ) from exc


def _error_code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _is_connection_loss(exc: BaseException) -> bool:
    """Whether ``exc`` means the link to the server broke (or was never made)."""
    code = _error_code(exc)
    if code in _LOST_ERRORS or code in _CONNECT_ERRORS:
        return True
    name = type(exc).__name__
    return name == "InterfaceError" or isinstance(
        exc, OSError | ConnectionError | asyncio.IncompleteReadError | EOFError
    )


class MySqlStore(BaseStore):
    """Sessions, messages and agent state in MySQL 8 or MariaDB 10.11+ (InnoDB)."""

    backend = "mysql"

    def __init__(self, url: DatabaseURL, pool: Any, target: Target) -> None:
        super().__init__(url)
        self._pool = pool
        self._target = target
        self._loop = asyncio.get_running_loop()  # the pool's connections belong to it
        self._in_flight = InFlight()
        self._outage = OutageLog(_log, f"{target.label} at {target.where}")
        #: The server's max_allowed_packet, read on connect (16 MiB is MariaDB's default).
        self._max_packet = 16 * 1024 * 1024

    @property
    def _name(self) -> str:
        return self._target.label  # MySQL, or MariaDB for a mariadb:// URL

    # ------------------------------------------------------------------ connecting

    @classmethod
    async def connect(
        cls,
        url: str | DatabaseURL,
        *,
        pool_size: int = 10,
        connect_timeout: float | None = None,
        schema_lock_timeout: int = 60,
        create_schema: bool = True,
        **options: Any,
    ) -> Self:
        """Open a pool on the database ``url`` names and create or upgrade the schema.

        ``create_schema=False`` changes nothing in the database and refuses one without the
        mofa schema or with an older one (:class:`SchemaError`).

        Raises:
            InvalidURLError: the URL is malformed or has an unknown parameter.
            StoreConnectionError: the server cannot be reached, or did not answer the
                handshake within ``connect_timeout`` (or one of its subclasses:
                AuthenticationError, DatabaseNotFoundError).
            PermissionDeniedError: the user may not create the missing schema.
            SchemaError: the database holds a newer schema than this version knows.
            MissingDependencyError: asyncmy is not installed.
        """
        parsed = parse_url(url) if isinstance(url, str) else url
        if parsed.backend != "mysql":
            raise InvalidURLError(
                f"MySqlStore needs a mysql:// or mariadb:// URL, not {parsed.masked!r}."
            )
        reject_unknown_options(
            "MySqlStore",
            options,
            ("pool_size", "connect_timeout", "schema_lock_timeout", "create_schema"),
        )
        check_option("pool_size", pool_size, integer=True, minimum=1)
        check_flag("create_schema", create_schema)
        if connect_timeout is not None:
            check_option("connect_timeout", connect_timeout)
        check_option("schema_lock_timeout", schema_lock_timeout, integer=True)
        try:
            import asyncmy
        except ImportError as exc:
            raise MissingDependencyError("MySQL", "asyncmy", "mysql") from exc
        target = Target(parsed, connect_timeout)
        kwargs: dict[str, Any] = {
            "user": target.user,
            "password": target.password,
            "database": target.database,
            "charset": "utf8mb4",
            "autocommit": True,
            "init_command": "SET time_zone = '+00:00'",
            # The TCP connect only; within_connect_timeout bounds the whole opening.
            "connect_timeout": min(target.connect_timeout, DRIVER_TIMEOUT_LIMIT),
            "client_flag": _FOUND_ROWS,
            # Server-side prepared statements for the parameterised reads (binary protocol);
            # multi-statements cannot be prepared and go through the text protocol.
            "stmt_cache_size": 64,
        }
        if target.socket:
            kwargs["unix_socket"] = target.socket
        else:
            kwargs["host"] = target.host
            kwargs["port"] = target.port
        context = ssl_context(target, parsed)
        if context is not None:
            kwargs["ssl"] = context
        pool = await within_connect_timeout(
            cls._open_pool(asyncmy, target, kwargs, pool_size), target
        )
        store = cls(parsed, pool, target)
        try:
            await store._prepare_schema(schema_lock_timeout, create_schema)
        except BaseException:
            await store.close()
            raise
        return store

    @classmethod
    async def _open_pool(
        cls, driver: Any, target: Target, kwargs: dict[str, Any], pool_size: int
    ) -> Any:
        try:
            return await driver.create_pool(minsize=1, maxsize=pool_size, **kwargs)
        except Exception as exc:
            tls_refused = isinstance(exc.__cause__, ssl.SSLError) or isinstance(exc, ssl.SSLError)
            if tls_refused and target.ssl_mode == "PREFERRED":
                # PREFERRED means TLS when the server offers it, plain otherwise.
                kwargs.pop("ssl", None)
                target.ssl_mode = "DISABLED"
                return await cls._open_pool(driver, target, kwargs, pool_size)
            raise _translate(exc, target) from exc

    async def _prepare_schema(self, lock_timeout: int, create_schema: bool) -> None:
        """Create or upgrade the schema, serialized across processes by GET_LOCK (with
        ``create_schema`` False: only check it)."""
        # GET_LOCK names are server-wide: include the database so two databases don't wait.
        lock_name = f"mofa_schema.{self._target.database}"[:64]
        try:
            async with self._pool.acquire() as connection:
                cursor = connection.cursor()
                await cursor.execute(
                    "SELECT GET_LOCK(%s, %s), @@max_allowed_packet, CURRENT_USER()",
                    (lock_name, lock_timeout),
                )
                locked, max_packet, account = (await cursor.fetchall())[0]
                self._max_packet = int(max_packet)
                user, _, host = str(account).rpartition("@")
                self._target.account = f"'{user}'@'{host}'"
                if locked != 1:
                    raise SchemaError(
                        f"Timed out after {lock_timeout}s waiting for another process to finish "
                        f"creating the schema in {self._target.label} database "
                        f"{self._target.database!r}; retry, or check for a stuck connection."
                    )
                try:
                    self.applied_migrations = await self._migrate(cursor, create_schema)
                finally:
                    await cursor.execute("SELECT RELEASE_LOCK(%s)", (lock_name,))
                    await cursor.fetchall()
        except PersistenceError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc

    async def _migrate(self, cursor: Any, create_schema: bool) -> tuple[int, ...]:
        await cursor.execute(_MIGRATIONS_TABLE_EXISTS, (schema.MIGRATIONS_TABLE,))
        version = 0
        if (await cursor.fetchall())[0][0]:
            await cursor.execute(_SCHEMA_VERSION)
            version = int((await cursor.fetchall())[0][0])
        where = f"{self._target.label} database {self._target.database!r}"
        if not create_schema:
            schema.check_ready("mysql", version, where)
            return ()
        applied = schema.check_version("mysql", version, where)
        if version == 0:
            tables = schema.table_names("mysql")
            await cursor.execute(
                _EXISTING_COLUMNS.format(marks=", ".join(["%s"] * len(tables))), tables
            )
            schema.check_existing_tables(
                "mysql",
                await cursor.fetchall(),
                where,
            )
        # DDL commits implicitly in MySQL, so each statement is written to be safe to re-run
        # (CREATE TABLE IF NOT EXISTS, INSERT IGNORE, an index created only when missing)
        # should a run be interrupted.
        for statement in schema.pending_statements("mysql", version):
            await cursor.execute(statement)
        return applied

    async def _close(self) -> None:
        await self._in_flight.drained(seconds=10)  # calls already made finish first
        self._pool.close()
        await self._pool.wait_closed()

    def _drop_connections(self) -> None:
        # Not terminate(): it schedules a task on the pool's loop, which is not running.
        self._pool.close()

    # ------------------------------------------------------------------ plumbing

    def _error(self, exc: BaseException, write: bool = False) -> PersistenceError:
        """The error a call raises for ``exc``; an unreachable server is logged once."""
        error = _translate(exc, self._target, self._max_packet, write)
        detail = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        self._outage.failed(error, detail or type(exc).__name__, exc)
        return error

    async def _fetch(self, sql: str, args: Sequence[Any]) -> Any:
        """Run one read statement and return its rows.

        A read is retried once when its pooled connection turns out to be broken (the server
        restarted since it was last used); a read has no effect to duplicate.
        """
        with self._in_flight:
            for attempt in (0, 1):
                try:
                    async with self._pool.acquire() as connection:
                        cursor = connection.cursor()
                        await cursor.execute(sql, args)
                        rows = await cursor.fetchall()
                        self._outage.answered()
                        return rows
                except Exception as exc:
                    if self._closed and _error_code(exc) is None:  # the pool refused: closing
                        raise self._closed_meanwhile() from exc
                    if (
                        attempt == 0
                        and _is_connection_loss(exc)
                        and _error_code(exc) not in (_CONNECT_ERRORS)
                    ):
                        continue
                    raise self._error(exc) from exc
            raise AssertionError("unreachable")  # pragma: no cover

    async def _write(
        self,
        sql: str,
        args: Sequence[Any],
        *,
        session_id: str | None = None,
        creates_session: bool = False,
        retry_duplicates: bool = False,
    ) -> list[tuple[int, int, Any]]:
        """Run a write (one statement or a multi-statement transaction) in one round trip.

        Returns ``(rowcount, lastrowid, rows)`` per statement. Deadlocks and lock-wait
        timeouts roll back and run it again. For a write about ``session_id``, a row that
        names a missing session raises :class:`SessionNotFoundError`, and, when the write
        ``creates_session``, a duplicate key raises :class:`SessionExistsError`.
        """
        with self._in_flight:
            deadline = time.monotonic() + RETRY_SECONDS
            attempt = 0
            while True:
                attempt += 1
                try:
                    async with self._pool.acquire() as connection:
                        cursor = connection.cursor()
                        try:
                            await cursor.execute(sql, args)
                            results = [(cursor.rowcount, cursor.lastrowid, None)]
                            while await cursor.nextset():
                                rows = await cursor.fetchall() if cursor.description else None
                                results.append((cursor.rowcount, cursor.lastrowid, rows))
                            self._outage.answered()
                            return results
                        except Exception:
                            await _abandon(connection)
                            raise
                        except BaseException:
                            connection.close()  # cancelled mid-call: its state is unknown
                            raise
                except Exception as exc:
                    code = _error_code(exc)
                    if self._closed and code is None:  # the pool refused: close() has begun
                        raise self._closed_meanwhile() from exc
                    retry = code in _RETRYABLE or (retry_duplicates and code == _ER_DUP_ENTRY)
                    if retry and time.monotonic() < deadline:
                        await asyncio.sleep(backoff(attempt))
                        continue
                    if session_id is not None:
                        if creates_session and code == _ER_DUP_ENTRY:
                            raise SessionExistsError(session_id) from exc
                        if not creates_session and code in _NO_SESSION:
                            raise SessionNotFoundError(session_id) from exc
                    raise self._error(exc, write=True) from exc

    def _check_packet(self, *texts: str) -> None:
        """Refuse, before sending, a write the server would reject for its packet size.

        Cheap for the common case: only when 4 bytes per character could exceed the limit is
        the exact size (UTF-8, plus one byte per character the text protocol escapes) counted.
        """
        if sum(map(len, texts)) * 4 + _PACKET_MARGIN <= self._max_packet:
            return
        size = sum(len(text.encode()) + sum(map(text.count, _ESCAPED)) for text in texts)
        if size + _PACKET_MARGIN > self._max_packet:
            raise InvalidInputError(
                f"The write is {size} bytes, more than the {self._target.label} server's "
                f"max_allowed_packet ({self._max_packet} bytes) allows; raise it on the server "
                "(SET GLOBAL max_allowed_packet = ..., and in my.cnf) or store smaller messages."
            )

    # ------------------------------------------------------------------ agents

    async def _upsert_agent(self, agent: Agent, owner: Owner | None) -> Agent:
        values = (
            agent.id,
            agent.name,
            agent.state,
            _wire(agent.started_at),
            agent.provider,
            agent.model,
            agent.description,
            _wire(agent.created_at),
            _wire(agent.updated_at),
        )
        if owner is None:  # a new agent has no tenant (agent.tenant_id is None): the default
            results = await self._write(_UPSERT_AGENT, (*values, agent.id))
            stored = results[1][2][0]
        else:
            # [START TRANSACTION, INSERT, SELECT (created_at, tenant_id), COMMIT]
            results = await self._write(_UPSERT_OWNED_AGENT, (*values, agent.tenant_id, agent.id))
            stored = results[2][2][0]
        created_at = _aware(stored[0])
        tenant_id = None if stored[1] is None else stored[1].decode()
        if owner is not None and tenant_id != owner.tenant_id:
            raise AgentExistsError(agent.id)  # another tenant's: the statement changed nothing
        if created_at == agent.created_at and tenant_id == agent.tenant_id:
            return agent
        return dataclasses.replace(agent, created_at=created_at, tenant_id=tenant_id)

    async def _get_agent(self, agent_id: str) -> Agent | None:
        rows = await self._fetch(_GET_AGENT, (agent_id,))
        return _agent(rows[0]) if rows else None

    async def _list_agents(self, limit: int | None) -> list[Agent]:
        rows = await self._fetch(_LIST_AGENTS, (_NO_LIMIT if limit is None else limit,))
        return [_agent(row) for row in rows]

    # ------------------------------------------------------------------ sessions

    async def _create_session(self, session: Session, metadata_json: str) -> Session:
        created = _wire(session.created_at)
        session_values = (
            session.session_id,
            session.agent_id,
            session.user_id,
            session.tenant_id,
            session.status,
            metadata_json,
            created,
            _wire(session.updated_at),
            _wire(session.expires_at),
        )
        statement = _INSERT_SESSION
        args: tuple[Any, ...] = session_values
        if session.agent_id is not None:  # the foreign key: a placeholder agent if none yet
            statement = _CREATE_SESSION_WITH_AGENT
            args = (
                session.agent_id,
                session.agent_id,
                created,
                created,
                created,
                session.tenant_id,
                *args,
            )
        await self._write(statement, args, session_id=session.session_id, creates_session=True)
        return session

    async def _get_session(self, session_id: str, owner: Owner | None) -> Session | None:
        if owner is None:
            rows = await self._fetch(_GET_SESSION, (session_id,))
        else:
            rows = await self._fetch(_GET_OWNED_SESSION, (session_id, *owner_params(owner)))
        return _session(rows[0]) if rows else None

    async def _list_sessions(
        self,
        agent_id: str | None,
        user_id: str | None,
        tenant_id: str | None,
        limit: int | None,
        offset: int,
        owner: Owner | None,
    ) -> list[Session]:
        key, filters = session_filters(agent_id, user_id, tenant_id, owner)
        args = (*filters, _NO_LIMIT if limit is None else limit, offset)
        return [_session(row) for row in await self._fetch(_LIST_SESSIONS[key], args)]

    async def _update_session(
        self,
        session_id: str,
        status: str | None,
        metadata_json: str | None,
        expires_at: datetime | Unset | None,
        now: datetime,
        owner: Owner | None,
    ) -> Session:
        set_expiry = not isinstance(expires_at, Unset)
        values = (
            _wire(now),
            status,
            metadata_json,
            set_expiry,
            _wire(expires_at) if isinstance(expires_at, datetime) else None,
            session_id,
        )
        if owner is None:
            results = await self._write(_UPDATE_SESSION, (*values, session_id))
        else:
            scope = owner_params(owner)
            results = await self._write(
                _UPDATE_OWNED_SESSION, (*values, *scope, session_id, *scope)
            )
        rows = results[1][2]
        # [UPDATE (matched rows: CLIENT_FOUND_ROWS), SELECT]: the UPDATE must have found it.
        if not results[0][0] or not rows:
            raise SessionNotFoundError(session_id)
        return _session(rows[0])

    async def _delete_session(self, session_id: str, owner: Owner | None) -> bool:
        if owner is None:
            results = await self._write(_DELETE_SESSION, (session_id,))
        else:
            results = await self._write(_DELETE_OWNED_SESSION, (session_id, *owner_params(owner)))
        return results[0][0] > 0

    # ------------------------------------------------------------------ messages

    async def _append_message(
        self, session_id: str, message: EncodedMessage, now: datetime, owner: Owner | None
    ) -> Message:
        self._check_packet(message.content, message.metadata_json)
        wired_now = _wire(now)
        args: tuple[Any, ...] = (
            wired_now,
            session_id,
            session_id,
            message.role.value,
            message.content,
            message.metadata_json,
            wired_now if message.timestamp is now else _wire(message.timestamp),
        )
        statement = _APPEND_ONE
        if owner is not None:  # the owner's three after the UPDATE's session id
            statement, args = _APPEND_OWNED_ONE, (*args[:2], *owner_params(owner), *args[2:])
        results = await self._write(statement, args, session_id=session_id)
        # [START TRANSACTION, UPDATE (insert id = new count = seq), INSERT (id), COMMIT]
        return message.stored(session_id, results[1][1], results[2][1])

    async def _append_messages(
        self,
        session_id: str,
        messages: list[EncodedMessage],
        now: datetime,
        owner: Owner | None,
    ) -> list[Message]:
        count = len(messages)
        self._check_packet(*(text for m in messages for text in (m.content, m.metadata_json)))
        statement = _append_many_statement(count, owner is not None)
        wired_now = _wire(now)
        args: list[Any] = [count, wired_now, session_id]
        if owner is not None:
            args += owner_params(owner)
        for message in messages:
            args += (
                session_id,
                message.role.value,
                message.content,
                message.metadata_json,
                wired_now if message.timestamp is now else _wire(message.timestamp),
            )

        results = await self._write(statement, args, session_id=session_id)
        last_seq, first_id = results[1][1], results[2][1]
        # A multi-row INSERT reserves one consecutive block of auto-increment ids.
        return [
            message.stored(session_id, last_seq - count + 1 + index, first_id + index)
            for index, message in enumerate(messages)
        ]

    async def _list_messages(
        self, session_id: str, limit: int | None, after_seq: int, owner: Owner | None
    ) -> list[Message]:
        count = _NO_LIMIT if limit is None else limit
        if owner is None:
            rows = await self._fetch(_LIST_MESSAGES, (session_id, after_seq, count))
        else:
            rows = await self._fetch(
                _LIST_OWNED_MESSAGES,
                (session_id, after_seq, session_id, *owner_params(owner), count),
            )
        return _messages(session_id, rows)

    async def _list_recent_messages(
        self, session_id: str, limit: int, owner: Owner | None
    ) -> list[Message]:
        if owner is None:
            rows = await self._fetch(_RECENT_MESSAGES, (session_id, limit))
        else:
            rows = await self._fetch(
                _RECENT_OWNED_MESSAGES, (session_id, session_id, *owner_params(owner), limit)
            )
        return _messages(session_id, rows[::-1])

    # ------------------------------------------------------------------ agent state

    async def _save_state(
        self,
        session_id: str,
        state: dict[str, Any],
        state_json: str,
        now: datetime,
        owner: Owner | None,
    ) -> AgentState:
        self._check_packet(state_json)

        args: tuple[Any, ...] = (session_id, state_json, _wire(now), session_id)
        if owner is None:
            statement = _SAVE_STATE
        else:
            statement, args = _SAVE_OWNED_STATE, (*args, session_id, *owner_params(owner))
        results = await self._write(statement, args, session_id=session_id, retry_duplicates=True)
        if not results[0][0]:  # out of scope (or missing): nothing was inserted
            raise SessionNotFoundError(session_id)
        return AgentState(session_id, results[0][1], state, now)

    async def _get_state(
        self, session_id: str, version: int | None, owner: Owner | None
    ) -> AgentState | None:
        if owner is None:
            if version is None:
                rows = await self._fetch(_LATEST_STATE, (session_id,))
            else:
                rows = await self._fetch(_STATE_VERSION, (session_id, version))
        elif version is None:
            rows = await self._fetch(
                _LATEST_OWNED_STATE, (session_id, session_id, *owner_params(owner))
            )
        else:
            rows = await self._fetch(
                _OWNED_STATE_VERSION, (session_id, version, session_id, *owner_params(owner))
            )
        return _state(session_id, rows[0]) if rows else None

    async def _list_states(
        self, session_id: str, limit: int | None, owner: Owner | None
    ) -> list[AgentState]:
        count = _NO_LIMIT if limit is None else limit
        if owner is None:
            rows = await self._fetch(_LIST_STATES, (session_id, count))
        else:
            rows = await self._fetch(
                _LIST_OWNED_STATES, (session_id, session_id, *owner_params(owner), count)
            )
        return [_state(session_id, row) for row in rows]


async def _abandon(connection: Any) -> None:
    """Leave no transaction open on a connection that goes back to the pool."""
    if not getattr(connection, "connected", False):
        return
    if connection.server_status & 1:  # SERVER_STATUS_IN_TRANS
        try:
            await connection.rollback()
        except Exception:
            connection.close()


def _translate(
    exc: BaseException, target: Target, max_packet: int | None = None, write: bool = False
) -> PersistenceError:
    """The one place a driver exception becomes a :mod:`mofa.persistence.errors` error.

    Messages name the user, host and database, never the password.
    """
    code = _error_code(exc)
    label, where = target.label, target.where
    message = str(exc.args[1]) if len(getattr(exc, "args", ())) > 1 else str(exc)
    if code in _CONNECT_ERRORS:
        cause = exc.__cause__ or exc
        if isinstance(cause, ssl.SSLError) and target.ssl_mode != "DISABLED":
            return StoreConnectionError(
                f"Failed to connect to {label} at {where}: the TLS handshake failed "
                f"({cause.reason or cause}) — with ssl-mode={target.ssl_mode} the server must "
                "have SSL enabled (have_ssl=YES); enable it or use ssl-mode=DISABLED."
            )
        reason = _connect_reason(cause, target)
        return StoreConnectionError(
            f"Failed to connect to {label} at {where}: {reason} — is the server running? "
            f"Check with: {target.ping_hint()}"
        )
    if code == _ER_ACCESS_DENIED:
        return AuthenticationError(
            f"{label} at {where} refused user {target.user!r}: access denied (wrong user name "
            f"or password) — check the credentials in the URL{target.denied_hint()}."
        )
    if code == _ER_BAD_DB:
        return DatabaseNotFoundError(
            f"Failed to connect to {label} at {where}: database {target.database!r} does not "
            f"exist — create it with: CREATE DATABASE {target.database}"
        )
    if code in _DENIED:
        return PermissionDeniedError(_denied_message(code, message, target))
    if _is_connection_loss(exc):
        return StoreConnectionError(
            f"Lost the connection to {label} at {where} during the call (the server may have "
            "restarted); "
            + (
                "if the reply to a COMMIT was what got lost, the write may have been saved — "
                "check before retrying it."
                if write
                else "retry it."
            )
        )
    if code == _ER_NET_PACKET_TOO_LARGE:
        return InvalidInputError(
            f"The write is larger than the {label} server's max_allowed_packet"
            + (f" ({max_packet} bytes)" if max_packet else "")
            + "; raise it on the server (SET GLOBAL max_allowed_packet = ...) or store less."
        )
    if code == _ER_TOO_MANY_CONNECTIONS:
        return StoreConnectionError(
            f"{label} at {where} has too many connections; lower pool_size or raise the "
            "server's max_connections."
        )
    if code == _ER_NO_SUCH_TABLE:
        return SchemaError(
            f"SQL error: {message} — the mofa tables are missing from database "
            f"{target.database!r}; reopen the store (or run mofa db init) to create them."
        )
    if code in _RETRYABLE:
        return QueryError(
            f"{label} kept reporting lock conflicts ({message}) for {RETRY_SECONDS:g} seconds; "
            "retry later."
        )
    return QueryError(f"SQL error ({label} error {code}): {message}.")


def _connect_reason(cause: BaseException, target: Target) -> str:
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, FileNotFoundError):
        return f"no socket file at {target.socket}"
    if isinstance(cause, TimeoutError):
        return "the connection timed out"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return str(cause.args[1] if len(cause.args) > 1 else cause)


def _denied_message(code: int, message: str, target: Target) -> str:
    # The account is known once connected, which every table or command denial follows.
    account = target.account or f"'{target.user}'@'%'"
    grant = f"GRANT SELECT, INSERT, UPDATE, DELETE ON {target.database}.* TO {account}"
    table = _TABLE_IN_MESSAGE.search(message)
    command = _COMMAND_IN_MESSAGE.search(message)
    if command and command.group(1).upper() in ("CREATE", "ALTER", "INDEX", "REFERENCES", "DROP"):
        return (
            f"SQL error: permission denied for table {table.group(1) if table else '?'} "
            f"(user {target.user!r} may not create the mofa schema) — let an administrator run "
            f"'mofa db init' once, or grant CREATE, ALTER, INDEX, REFERENCES ON "
            f"{target.database}.* to the user."
        )
    if table:
        return (
            f"SQL error: permission denied for table {table.group(1)} — grant the privileges "
            f"the store needs: {grant}"
        )
    if code == _ER_DBACCESS_DENIED:
        return (
            f"SQL error: permission denied for database {target.database} to user "
            f"{target.user!r} — grant the privileges the store needs: {grant}"
        )
    return f"SQL error: permission denied ({message}) — grant the privileges: {grant}"
