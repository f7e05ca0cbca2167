"""The one translation of driver and network exceptions to the store's errors."""

from __future__ import annotations

import asyncio
from typing import Final

from mofa.persistence._url import DatabaseURL
from mofa.persistence.backends.postgres._url import DEFAULT_PORT, Target
from mofa.persistence.errors import (
    AuthenticationError,
    DatabaseNotFoundError,
    InvalidInputError,
    InvalidURLError,
    PermissionDeniedError,
    PersistenceError,
    QueryError,
    StoreConnectionError,
)

__all__ = [
    "CALL",
    "CONNECT",
    "FOREIGN_KEY_VIOLATION",
    "LOCK_NOT_AVAILABLE",
    "RETRY_STATES",
    "UNIQUE_VIOLATION",
    "is_connection_error",
    "scrub",
    "sqlstate",
    "translate",
]

#: SQLSTATEs a store retries itself: serialization failure and deadlock. Neither happens
#: with the store's statements under READ COMMITTED, but if one ever surfaces it is retried
#: here, never handed to the caller.
RETRY_STATES: Final = frozenset({"40001", "40P01"})
#: A lock not granted within lock_timeout.
LOCK_NOT_AVAILABLE: Final = "55P03"
UNIQUE_VIOLATION: Final = "23505"
FOREIGN_KEY_VIOLATION: Final = "23503"
#: SQLSTATEs that mean the connection, not the statement, failed.
_CONNECTION_STATES: Final = frozenset({"57P01", "57P02", "57P03", "53300"})

# Stage of a call at which an error happened: it decides what we can say about a write.
CONNECT: Final = "connect"
CALL: Final = "call"


def scrub(text: str, url: DatabaseURL) -> str:
    """Remove the password from a driver message, in case one ever quotes it."""
    if url.password:
        text = text.replace(url.password, "****")
    return text


def sqlstate(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else ""


def is_connection_error(exc: BaseException) -> bool:
    state = sqlstate(exc)
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


def translate(exc: BaseException, url: DatabaseURL, *, stage: str, write: bool) -> PersistenceError:
    """The one place where a driver or network exception becomes a :mod:`errors` class.

    Args:
        exc: what asyncpg (or the socket) raised.
        url: the store's URL; only its masked form and non-secret parts are shown.
        stage: ``CONNECT`` when no statement was sent yet (connecting or acquiring a
            pooled connection), ``CALL`` when the statement was on its way.
        write: whether the call changes data (decides what a broken connection means).
    """
    target = Target(url)
    state = sqlstate(exc)
    detail = scrub(str(getattr(exc, "message", None) or exc), url).rstrip(".")
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
        flags = "" if local and target.port == DEFAULT_PORT else f"{target.client_flags()} "
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
    if stage == CONNECT and state in ("42704", "22023"):
        # asyncpg sends URL parameters it does not know to the server as settings.
        return InvalidURLError(
            f"The PostgreSQL URL {url.masked!r} has a parameter the server refused "
            f"({detail}); remove it or correct its value."
        )
    if isinstance(exc, ValueError) and stage == CONNECT and not state:
        return InvalidURLError(
            f"The PostgreSQL URL {url.masked!r} cannot be used: {detail}; see the "
            "'Connection URLs' section of the docs."
        )
    if is_connection_error(exc):
        refused = isinstance(exc, ConnectionRefusedError | FileNotFoundError) or (
            "refused" in detail.lower()
        )
        if not refused and "SSL" in detail and "rejected" in detail:
            return StoreConnectionError(
                f"Failed to connect to PostgreSQL at {target.address}: the server does not "
                f"accept SSL, but the URL asks for sslmode={url.query.get('sslmode')} — "
                "enable SSL on the server or use sslmode=prefer or disable."
            )
        if refused or stage == CONNECT:
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
