"""The one error tree of :mod:`mofa.persistence`.

Every failure a store reports is a :class:`PersistenceError`; backends translate driver
exceptions into these classes in a single helper and re-raise ``from`` the original, so a
caller never needs to import a database driver to handle an error::

    PersistenceError
    ├── InvalidInputError            bad input; nothing was changed
    │   └── InvalidURLError          a database URL that cannot be used
    ├── NotFoundError
    │   └── SessionNotFoundError
    ├── ConflictError
    │   ├── SessionExistsError
    │   └── AgentExistsError         the agent id is registered by another tenant
    ├── StoreConnectionError         the database cannot be reached (or the link broke)
    │   ├── AuthenticationError      wrong user or password
    │   └── DatabaseNotFoundError    the server answered, the database does not exist
    ├── PermissionDeniedError        the database user lacks a privilege
    ├── SchemaError                  the schema cannot be created or upgraded
    ├── QueryError                   any other error the database reported
    ├── DamagedRecordError           a stored value this version cannot read (names where)
    ├── StoreClosedError             the store was used after ``close()`` (or from another loop)
    └── MissingDependencyError       the driver for a backend is not installed

Messages are one sentence that names the offending value and, where possible, the fix.
They never contain a password.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AgentExistsError",
    "AuthenticationError",
    "ConflictError",
    "DamagedRecordError",
    "DatabaseNotFoundError",
    "InvalidInputError",
    "InvalidURLError",
    "MissingDependencyError",
    "NotFoundError",
    "PermissionDeniedError",
    "PersistenceError",
    "QueryError",
    "SchemaError",
    "SessionExistsError",
    "SessionNotFoundError",
    "StoreClosedError",
    "StoreConnectionError",
]


#: How much of an unreadable value a message quotes.
_MAX_SHOWN: Final = 60


class PersistenceError(Exception):
    """Base class of every error raised by a store."""


class InvalidInputError(PersistenceError, ValueError):
    """A value passed to the store is not acceptable; nothing was written."""


class InvalidURLError(InvalidInputError):
    """A database URL is malformed or names an unknown scheme."""


class NotFoundError(PersistenceError, LookupError):
    """The addressed record does not exist."""


class SessionNotFoundError(NotFoundError):
    """The session does not exist."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"Session not found: {session_id!r}.")
        self.session_id = session_id


class ConflictError(PersistenceError):
    """The write conflicts with data already stored."""


class SessionExistsError(ConflictError):
    """A session with this id already exists."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"A session with id {session_id!r} already exists.")
        self.session_id = session_id


class AgentExistsError(ConflictError):
    """The agent id is registered by another tenant, whose record a scoped call cannot change."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(
            f"The agent id {agent_id!r} is registered by another tenant; agent ids are global "
            "(like session ids), so give this agent an id of its own, for example one that "
            "starts with the tenant's id."
        )
        self.agent_id = agent_id


class StoreConnectionError(PersistenceError, ConnectionError):
    """The database could not be reached, or the connection broke mid-call.

    When raised by a write, the write did not happen unless the message says otherwise.
    """


class AuthenticationError(StoreConnectionError):
    """The server refused the user name or password."""


class DatabaseNotFoundError(StoreConnectionError):
    """The server is up but the named database does not exist."""


class PermissionDeniedError(PersistenceError, PermissionError):
    """The database user lacks a privilege the operation needs."""


class SchemaError(PersistenceError):
    """The schema could not be created, or the database holds a newer schema."""


class QueryError(PersistenceError):
    """The database reported an error not covered by a more specific class."""


class DamagedRecordError(PersistenceError):
    """A stored record holds a value that cannot be read back (written by hand, by another
    program or by an older version).

    Attributes:
        record: which record, e.g. ``session 'abc'`` or ``message 3 of session 'abc'``.
        field: the column or key whose value cannot be read, e.g. ``expires_at``.
        session_id: the session the record belongs to (``None`` for an agent record).
    """

    def __init__(
        self, record: str, field: str, value: object = None, *, session_id: str | None = None
    ) -> None:
        # None: a NULL, a key the record lacks, or a value the driver could not convert.
        shown = "no value" if value is None else repr(value)
        if len(shown) > _MAX_SHOWN:
            shown = shown[: _MAX_SHOWN - 1] + "…"
        super().__init__(
            f"The stored {record} has an unreadable {field} ({shown}); correct or remove "
            "that stored value, or restore it from a backup."
        )
        self.record = record
        self.field = field
        self.session_id = session_id


class StoreClosedError(PersistenceError):
    """The store was used after it was closed, or outside the event loop that opened it."""


class MissingDependencyError(PersistenceError, ImportError):
    """The driver a backend needs is not installed."""

    def __init__(self, backend: str, module: str, extra: str) -> None:
        super().__init__(
            f"The {backend} backend needs the {module!r} package, which is not installed; "
            f"install it with: pip install 'mofa-sdk[{extra}]'"
        )
        self.backend = backend
        self.module = module
        self.extra = extra
