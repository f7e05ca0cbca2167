"""Driver exceptions to :mod:`mofa.persistence.errors`: the error numbers and the messages."""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import Final

from mofa.persistence.backends._toolkit import RETRY_SECONDS
from mofa.persistence.backends.mysql._connect import Target
from mofa.persistence.errors import (
    AuthenticationError,
    DatabaseNotFoundError,
    InvalidInputError,
    PermissionDeniedError,
    PersistenceError,
    QueryError,
    SchemaError,
    StoreConnectionError,
)

__all__ = [
    "CONNECT_ERRORS",
    "ER_DUP_ENTRY",
    "NO_SESSION",
    "RETRYABLE",
    "error_code",
    "is_connection_loss",
    "translate",
]

# MySQL / MariaDB error numbers the store reacts to.
_ER_DBACCESS_DENIED: Final = 1044
_ER_ACCESS_DENIED: Final = 1045
# MariaDB answers a failed login with 1698 instead of 1045 when no password check ran for the
# account it matched (no such account over this route, or a socket-auth account): the same
# refusal to the user.
_ER_ACCESS_DENIED_NO_PASSWORD: Final = 1698
_LOGIN_REFUSED: Final = frozenset({_ER_ACCESS_DENIED, _ER_ACCESS_DENIED_NO_PASSWORD})
_ER_BAD_NULL: Final = 1048
_ER_BAD_DB: Final = 1049
ER_DUP_ENTRY: Final = 1062
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
CONNECT_ERRORS: Final = frozenset({_CR_CONNECTION_ERROR, _CR_CONN_HOST_ERROR})
_LOST_ERRORS: Final = frozenset({_CR_SERVER_GONE, _CR_SERVER_LOST, _CR_SERVER_LOST_EXTENDED})
RETRYABLE: Final = frozenset({_ER_LOCK_DEADLOCK, _ER_LOCK_WAIT_TIMEOUT})
# A write naming a missing session fails its foreign key; a scoped append naming a session
# outside the scope writes NULL as the session id (strict mode: 1048; otherwise '', which
# fails the foreign key).
NO_SESSION: Final = frozenset({_ER_NO_REFERENCED_ROW, _ER_BAD_NULL})
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


def error_code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def is_connection_loss(exc: BaseException) -> bool:
    """Whether ``exc`` means the link to the server broke (or was never made)."""
    code = error_code(exc)
    if code in _LOST_ERRORS or code in CONNECT_ERRORS:
        return True
    name = type(exc).__name__
    return name == "InterfaceError" or isinstance(
        exc, OSError | ConnectionError | asyncio.IncompleteReadError | EOFError
    )


def translate(
    exc: BaseException, target: Target, max_packet: int | None = None, write: bool = False
) -> PersistenceError:
    """The one place a driver exception becomes a :mod:`mofa.persistence.errors` error.

    Messages name the user, host and database, never the password.
    """
    code = error_code(exc)
    label, where = target.label, target.where
    message = str(exc.args[1]) if len(getattr(exc, "args", ())) > 1 else str(exc)
    if code in CONNECT_ERRORS:
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
    if code in _LOGIN_REFUSED:
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
    if is_connection_loss(exc):
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
    if code in RETRYABLE:
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
