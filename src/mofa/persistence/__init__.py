"""Sessions, conversation history and agent state, stored in any supported database.

Open a store from a URL and use the one contract every backend shares::

    from mofa.persistence import open_store

    async with await open_store("sqlite://./mofa.db") as store:
        session = await store.create_session(agent_id="my-agent", user_id="u1")
        await store.append_message(session.session_id, "user", "Hello")
        history = await store.list_recent_messages(session.session_id, limit=20)

Backend classes (``PostgresStore``, ``MySqlStore``, ``SqliteStore``, ``FileStore``,
``InMemoryStore``) can be imported from here too; their drivers load only when used.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mofa.persistence._base import BaseStore
from mofa.persistence._contract import UNSET, Store
from mofa.persistence._entities import (
    Agent,
    AgentState,
    Message,
    NewMessage,
    Owner,
    Role,
    Session,
    SessionStatus,
    new_session_id,
)
from mofa.persistence._health import HealthFacts, StoreCounts
from mofa.persistence._prune import PruneResult
from mofa.persistence._registry import BACKENDS, backend_class, open_store
from mofa.persistence._url import SHOWN_PARAMETERS, DatabaseURL, mask_url, parse_url
from mofa.persistence.errors import (
    AgentExistsError,
    AuthenticationError,
    ConflictError,
    DamagedRecordError,
    DatabaseNotFoundError,
    InvalidInputError,
    InvalidURLError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    PersistenceError,
    QueryError,
    SchemaError,
    SessionExistsError,
    SessionNotFoundError,
    StoreClosedError,
    StoreConnectionError,
)
from mofa.persistence.plugin import PersistencePlugin

if TYPE_CHECKING:
    from mofa.persistence.backends.files import FileStore
    from mofa.persistence.backends.memory import InMemoryStore
    from mofa.persistence.backends.mysql import MySqlStore
    from mofa.persistence.backends.postgres import PostgresStore
    from mofa.persistence.backends.sqlite import SqliteStore

__all__ = [
    "SHOWN_PARAMETERS",
    "UNSET",
    "Agent",
    "AgentExistsError",
    "AgentState",
    "AuthenticationError",
    "BaseStore",
    "ConflictError",
    "DamagedRecordError",
    "DatabaseNotFoundError",
    "DatabaseURL",
    "FileStore",
    "HealthFacts",
    "InMemoryStore",
    "InvalidInputError",
    "InvalidURLError",
    "Message",
    "MissingDependencyError",
    "MySqlStore",
    "NewMessage",
    "NotFoundError",
    "Owner",
    "PermissionDeniedError",
    "PersistenceError",
    "PersistencePlugin",
    "PostgresStore",
    "PruneResult",
    "QueryError",
    "Role",
    "SchemaError",
    "Session",
    "SessionExistsError",
    "SessionNotFoundError",
    "SessionStatus",
    "SqliteStore",
    "Store",
    "StoreClosedError",
    "StoreConnectionError",
    "StoreCounts",
    "mask_url",
    "new_session_id",
    "open_store",
    "parse_url",
]

# A library leaves logging to its application (the standard library's advice): without a
# handler configured, mofa's records go nowhere instead of to Python's last-resort stderr.
# Every logger of the package is below mofa.persistence, which every backend loads through.
_ROOT_LOGGER = logging.getLogger("mofa")
if not any(isinstance(handler, logging.NullHandler) for handler in _ROOT_LOGGER.handlers):
    _ROOT_LOGGER.addHandler(logging.NullHandler())

#: Store class name -> backend name: a backend's module loads on first use of its class.
_LAZY = {record.class_name: backend for backend, record in BACKENDS.items()}


def __getattr__(name: str) -> Any:
    backend = _LAZY.get(name)
    if backend is None:
        raise AttributeError(f"module 'mofa.persistence' has no attribute {name!r}")
    return backend_class(backend)
