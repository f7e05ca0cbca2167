"""URL scheme -> backend class, imported only when a URL asks for it."""

from __future__ import annotations

import importlib
from typing import Any

from mofa.persistence._store import BaseStore
from mofa.persistence._url import DatabaseURL, parse_url

__all__ = ["BACKENDS", "backend_class", "open_store"]

#: backend name -> (module, class). Only these modules may import a database driver.
BACKENDS: dict[str, tuple[str, str]] = {
    "memory": ("mofa.persistence.backends.memory", "InMemoryStore"),
    "files": ("mofa.persistence.backends.files", "FileStore"),
    "sqlite": ("mofa.persistence.backends.sqlite", "SqliteStore"),
    "postgres": ("mofa.persistence.backends.postgres", "PostgresStore"),
    "mysql": ("mofa.persistence.backends.mysql", "MySqlStore"),
}


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
    parsed = parse_url(url) if isinstance(url, str) else url
    store: BaseStore = await backend_class(parsed.backend).connect(parsed, **options)  # type: ignore[attr-defined]
    return store
