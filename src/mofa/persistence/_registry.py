"""URL scheme -> backend class, imported only when a URL asks for it."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from mofa.persistence._store import BaseStore
from mofa.persistence._url import DatabaseURL, parse_url, scrub
from mofa.persistence.errors import PersistenceError

__all__ = ["BACKENDS", "backend_class", "open_store"]

#: backend name -> (module, class). Only these modules may import a database driver.
BACKENDS: dict[str, tuple[str, str]] = {
    "memory": ("mofa.persistence.backends.memory", "InMemoryStore"),
    "files": ("mofa.persistence.backends.files", "FileStore"),
    "sqlite": ("mofa.persistence.backends.sqlite", "SqliteStore"),
    "postgres": ("mofa.persistence.backends.postgres", "PostgresStore"),
    "mysql": ("mofa.persistence.backends.mysql", "MySqlStore"),
}

_LOGGER = logging.getLogger(__name__)


def backend_class(backend: str) -> type[BaseStore]:
    """The store class for a backend name (importing its module, not its driver)."""
    module_name, class_name = BACKENDS[backend]
    cls: type[BaseStore] = getattr(importlib.import_module(module_name), class_name)
    return cls


async def open_store(url: str | DatabaseURL, **options: Any) -> BaseStore:
    """Open the store a URL names, creating or upgrading its schema.

    >>> store = await open_store("sqlite://./mofa.db")   # doctest: +SKIP

    ``options`` go to the backend's ``connect`` (for example ``pool_size``).
    """
    parsed = url if isinstance(url, DatabaseURL) else parse_url(url)
    _LOGGER.debug("Opening the %s store at %s", parsed.backend, parsed.masked)
    try:
        store: BaseStore = await backend_class(parsed.backend).connect(parsed, **options)  # type: ignore[attr-defined]
    except PersistenceError as exc:
        # A driver's or server's words may repeat a value of the URL ("invalid value for
        # parameter ...: <value>"); the error keeps its class and cause, not the secret.
        exc.args = tuple(scrub(a, parsed.raw) if isinstance(a, str) else a for a in exc.args)
        _LOGGER.debug("Could not open the store at %s: %s", parsed.masked, exc)
        raise
    return store
