"""The backends, one record each, and the store a URL names, imported only when asked for.

Every fact about a backend that more than one module needs (its URL schemes, class, display
name, pip extra, SQL dialect, example URL) is written here once. This module sits below
everything else in :mod:`mofa.persistence` that knows backends: it imports none of them until
:func:`backend_class` is called, and only the modules its records name import a driver.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mofa.persistence.errors import PersistenceError

if TYPE_CHECKING:
    from mofa.persistence._base import BaseStore
    from mofa.persistence._url import DatabaseURL

__all__ = [
    "ACCEPTED_FORMS",
    "BACKENDS",
    "BackendRecord",
    "backend_class",
    "display_name",
    "open_store",
    "record_for",
    "scheme_backend",
]


@dataclass(frozen=True, slots=True)
class BackendRecord:
    """What the rest of the package knows about one backend."""

    #: The backend's name (``BaseStore.backend``, test marks, ``DatabaseURL.backend``).
    name: str
    #: URL schemes that open it; the first is the one to write.
    schemes: tuple[str, ...]
    #: The module that defines its class (and alone imports its driver).
    module: str
    class_name: str
    #: How messages name it ("the SQLite store", "PostgreSQL at host:port").
    display_name: str
    #: The pip extra that installs its driver (``None``: it needs none).
    extra: str | None
    #: Its SQL dialect in :mod:`mofa.persistence.schema` (``None``: not a SQL database).
    dialect: str | None
    #: The form of its URL, for messages that list what is accepted.
    url_form: str


BACKENDS: dict[str, BackendRecord] = {
    record.name: record
    for record in (
        BackendRecord(
            "postgres",
            ("postgres", "postgresql"),
            "mofa.persistence.backends.postgres",
            "PostgresStore",
            "PostgreSQL",
            "postgres",
            "postgres",
            "postgres://, postgresql://",
        ),
        BackendRecord(
            "mysql",
            ("mysql", "mariadb"),
            "mofa.persistence.backends.mysql",
            "MySqlStore",
            "MySQL",
            "mysql",
            "mysql",
            "mysql://, mariadb://",
        ),
        BackendRecord(
            "sqlite",
            ("sqlite", "sqlite3"),
            "mofa.persistence.backends.sqlite",
            "SqliteStore",
            "SQLite",
            None,
            "sqlite",
            "sqlite://PATH, sqlite:///ABS_PATH, sqlite::memory:",
        ),
        BackendRecord(
            "memory",
            ("memory",),
            "mofa.persistence.backends.memory",
            "InMemoryStore",
            "in-memory",
            None,
            None,
            "memory://",
        ),
        BackendRecord(
            "files",
            ("file",),
            "mofa.persistence.backends.files",
            "FileStore",
            "file",
            None,
            None,
            "file:///DIR",
        ),
    )
}

_LOGGER = logging.getLogger(__name__)

#: Every URL form, for messages that say what is accepted.
ACCEPTED_FORMS = ", ".join(record.url_form for record in BACKENDS.values())

_SCHEMES = {scheme: record.name for record in BACKENDS.values() for scheme in record.schemes}


def scheme_backend(scheme: str) -> str | None:
    """The backend a URL scheme (or agent.yml's ``type``) names, ``None`` for an unknown one."""
    return _SCHEMES.get(scheme.lower())


def record_for(backend: str) -> BackendRecord:
    """The record of a backend name (``KeyError`` for an unknown one: a programming error)."""
    return BACKENDS[backend]


def display_name(backend: str) -> str:
    """How messages name a backend ("SQLite", "PostgreSQL", "in-memory"…)."""
    record = BACKENDS.get(backend)
    return backend if record is None else record.display_name


def backend_class(backend: str) -> type[BaseStore]:
    """The store class for a backend name (importing its module, not its driver)."""
    record = BACKENDS[backend]
    cls: type[BaseStore] = getattr(importlib.import_module(record.module), record.class_name)
    return cls


async def open_store(url: str | DatabaseURL, **options: Any) -> BaseStore:
    """Open the store a URL names, creating or upgrading its schema.

    >>> store = await open_store("sqlite://./mofa.db")   # doctest: +SKIP

    ``options`` go to the backend's ``connect`` (for example ``pool_size``).
    """
    # Imported here: the URL module reads this module's scheme table.
    from mofa.persistence._url import DatabaseURL, parse_url, scrub

    parsed = url if isinstance(url, DatabaseURL) else parse_url(url)
    _LOGGER.debug("Opening the %s store at %s", parsed.backend, parsed.masked)
    try:
        return await backend_class(parsed.backend).connect(parsed, **options)
    except PersistenceError as exc:
        # A driver's or server's words may repeat a value of the URL ("invalid value for
        # parameter ...: <value>"); the error keeps its class and cause, not the secret.
        exc.args = tuple(scrub(a, parsed.raw) if isinstance(a, str) else a for a in exc.args)
        _LOGGER.debug("Could not open the store at %s: %s", parsed.masked, exc)
        raise
