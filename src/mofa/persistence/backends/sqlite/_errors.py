"""``sqlite3`` (and file system) exceptions to :mod:`mofa.persistence.errors`."""

from __future__ import annotations

import sqlite3

from mofa.persistence.errors import (
    PermissionDeniedError,
    PersistenceError,
    QueryError,
    SessionExistsError,
    SessionNotFoundError,
    StoreConnectionError,
)

__all__ = ["is_busy", "translate"]

# Primary result codes (https://sqlite.org/rescode.html).
_SQLITE_PERM = 3
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_CONSTRAINT = 19
_SQLITE_AUTH = 23
_SQLITE_NOTADB = 26


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_busy(exc: sqlite3.Error) -> bool:
    if _primary_code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return True
    return "database is locked" in str(exc) or "database table is locked" in str(exc)


def translate(
    exc: sqlite3.Error | OSError, path: str, session_id: str | None = None
) -> PersistenceError:
    """The one place where a ``sqlite3`` (or file system) error becomes an error of the tree.

    ``session_id`` names the session the failed call addressed, when there is one.
    """
    text = str(exc)
    code = _primary_code(exc) if isinstance(exc, sqlite3.Error) else None
    where = f"the SQLite database {path!r}"
    subject = f"The SQLite database {path!r}"
    if isinstance(exc, OSError):
        return StoreConnectionError(
            f"Cannot create {where} ({exc.strerror or exc}); check that its directory "
            "exists or can be created and is writable."
        )
    if code == _SQLITE_CANTOPEN or "unable to open database file" in text:
        return StoreConnectionError(
            f"Cannot open {where} ({text}); check that the path is a file (not a directory) "
            "in a directory you can write to."
        )
    if code in (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_AUTH) or "readonly" in text:
        return PermissionDeniedError(
            f"Cannot write to {where} ({text}); check the permissions of the file and of "
            "its directory (SQLite also writes the -wal and -shm files next to it)."
        )
    if is_busy(exc):  # exc is a sqlite3.Error from here on
        return StoreConnectionError(
            f"{subject} stayed locked by another connection for too "
            "long; retry, or find the process holding a long transaction on it."
        )
    if code in (_SQLITE_NOTADB, _SQLITE_CORRUPT):
        return StoreConnectionError(
            f"{subject} is not a usable SQLite database ({text}); "
            "point the URL at a SQLite file or a new path."
        )
    if code == _SQLITE_FULL:
        return QueryError(f"The disk holding {where} is full; nothing was written.")
    if code == _SQLITE_IOERR:
        return StoreConnectionError(f"Reading or writing {where} failed ({text}).")
    if code == _SQLITE_CONSTRAINT or isinstance(exc, sqlite3.IntegrityError):
        if session_id is not None and "sessions.session_id" in text:
            return SessionExistsError(session_id)
        if session_id is not None and "FOREIGN KEY" in text:
            return SessionNotFoundError(session_id)
        return QueryError(f"{subject} refused the write ({text}).")
    return QueryError(f"{subject} reported an error: {text}.")
