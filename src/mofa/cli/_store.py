"""Which store a CLI command opens.

The store is the first of:

1. ``mofa --database-url URL …``
2. the ``MOFA_DATABASE_URL`` environment variable (which ``./.env`` or the ``.env`` beside
   the agent configuration may set, see :func:`mofa.config.environment`)
3. ``persistence.database`` of the agent configuration: ``--config PATH``, else
   ``./agent.yml`` when it exists (``persistence.enabled: false`` skips it)
4. the local file store in :func:`~mofa.persistence.backends.files.default_data_dir`
   (``$MOFA_DATA_DIR``, else ``$XDG_DATA_HOME/mofa``, else ``~/.local/share/mofa``)

How a failure reaches the user (one ``Error: …`` line, an exit code, no password) is
:func:`mofa.cli._errors.run`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mofa.cli._errors import CommandError
from mofa.config import (
    DEFAULT_CONFIG_NAME,
    ConfigError,
    default_store_url,
    environment,
    load_config,
)
from mofa.persistence import BaseStore, mask_url, open_store, parse_url
from mofa.persistence.backends.files import STORE_MARKER

__all__ = [
    "DATABASE_URL_VARIABLE",
    "StoreChoice",
    "default_store_url",
    "open_existing_store",
    "resolve_store",
]

DATABASE_URL_VARIABLE = "MOFA_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class StoreChoice:
    """The URL a command will open and where it came from (for messages and tests)."""

    url: str
    source: str

    def __repr__(self) -> str:  # the URL may hold a password
        return f"StoreChoice(url={self.masked!r}, source={self.source!r})"

    @property
    def masked(self) -> str:
        return mask_url(self.url)


def resolve_store(
    database_url: str | None,
    config_path: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
) -> StoreChoice:
    """Pick the store URL by the precedence in this module's docstring.

    Raises :class:`~mofa.cli._errors.CommandError` when the configuration file cannot be used.
    """
    if database_url is not None:
        return StoreChoice(database_url, "--database-url")
    if config_path is None:
        candidate = Path.cwd() / DEFAULT_CONFIG_NAME
        # An agent.yml that exists but cannot be read is reported, not silently skipped.
        config_path = candidate if os.path.lexists(candidate) else None
    try:
        settings = environment(config_path, environ, settings_only=True)
        from_env = settings.get(DATABASE_URL_VARIABLE, "")
        if from_env.strip():
            return StoreChoice(from_env, DATABASE_URL_VARIABLE)
        if config_path is not None:
            url = load_config(config_path, environ=environ).persistence.database_url()
            if url is not None:
                return StoreChoice(url, str(config_path))
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    return StoreChoice(default_store_url(settings), "default")


async def open_existing_store(choice: StoreChoice) -> BaseStore:
    """Open the store a read-or-delete command works on, changing nothing but what it deletes.

    A SQLite file or file-store directory that does not exist is reported (a mistyped path
    would otherwise leave a new, empty store behind and show no sessions), and so is a
    database or directory that holds no mofa store (or an older schema): nothing is created
    or upgraded in it. The default data directory, before anything was ever stored, reads
    as an empty store and is not created.
    """
    if _nothing_stored_yet(choice):
        return await open_store("memory://")
    return await open_store(choice.url, create_schema=False)


def _nothing_stored_yet(choice: StoreChoice) -> bool:
    """Whether ``choice`` is the default file store before its first write; raises if it
    names a SQLite file or a file store that does not exist."""
    parsed = parse_url(choice.url)
    if parsed.backend not in ("sqlite", "files") or not parsed.path or parsed.path == ":memory:":
        return False
    location = os.path.abspath(os.path.expanduser(parsed.path))
    if parsed.backend == "files" and choice.source == "default":
        return not os.path.isfile(os.path.join(location, STORE_MARKER))
    if os.path.exists(location):
        return False
    what = "SQLite database" if parsed.backend == "sqlite" else "mofa file store"
    raise CommandError(f"There is no {what} at {location} (from {choice.source}); check the path.")
