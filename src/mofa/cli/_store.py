"""Which store a CLI command opens.

The store is the first of:

1. ``mofa --database-url URL …``
2. the ``MOFA_DATABASE_URL`` environment variable (which ``./.env`` or the ``.env`` beside
   the agent configuration may set, see :func:`mofa.config.environment`)
3. ``persistence.database`` of the agent configuration: ``--config PATH``, else
   ``./agent.yml`` when it exists (``persistence.enabled: false`` skips it)
4. the ``DATABASE_URL`` environment variable (the seeds tell users to export it; a ``.env``
   may set it too) — after agent.yml, whose ``url: ${DATABASE_URL}`` reads the same value
5. the local file store in :func:`~mofa.persistence.locations.default_data_dir`
   (``$MOFA_DATA_DIR``, else ``$XDG_DATA_HOME/mofa``, else ``~/.local/share/mofa``)

How a failure reaches the user (one ``Error: …`` line, an exit code, no password) is
:func:`mofa.cli._errors.run`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from mofa.cli._errors import CommandError
from mofa.cli._render import shown_id
from mofa.persistence import BaseStore, SchemaError, Session, mask_url, open_store, parse_url
from mofa.persistence.locations import STORE_MARKER

__all__ = [
    "DATABASE_URL_VARIABLE",
    "EXIT_NOT_FOUND",
    "GENERIC_URL_VARIABLE",
    "StoreChoice",
    "get_session_or_exit",
    "not_found",
    "open_existing_store",
    "open_store_to_write",
    "resolve_store",
    "store_choice",
]

#: The exit code of a session that is not there (the seeds' ``session delete`` table).
EXIT_NOT_FOUND = 1

DATABASE_URL_VARIABLE = "MOFA_DATABASE_URL"
#: The seeds' variable (``export DATABASE_URL=…``), read after agent.yml.
GENERIC_URL_VARIABLE = "DATABASE_URL"


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
    config_path: str | Path | None,
    *,
    environ: Mapping[str, str] | None = None,
) -> StoreChoice:
    """Pick the store URL by the precedence in this module's docstring.

    Raises :class:`~mofa.cli._errors.CommandError` when the configuration file cannot be used.
    """
    if database_url is not None:
        return StoreChoice(database_url, "--database-url")
    # The process environment wins over every .env file: no file needs reading (nor the
    # configuration loader importing) when it names the store.
    process = os.environ if environ is None else environ
    if process.get(DATABASE_URL_VARIABLE, "").strip():
        return StoreChoice(process[DATABASE_URL_VARIABLE], DATABASE_URL_VARIABLE)
    from mofa.config import (
        DEFAULT_CONFIG_NAME,
        ConfigError,
        default_store_url,
        environment,
        load_config,
    )

    if config_path is not None:
        config_path = Path(config_path)
    else:
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
    generic = settings.get(GENERIC_URL_VARIABLE, "")
    if generic.strip():
        return StoreChoice(generic, GENERIC_URL_VARIABLE)
    return StoreChoice(default_store_url(settings), "default")


async def open_existing_store(choice: StoreChoice) -> BaseStore:
    """Open the store a read-or-delete command works on, changing nothing but what it deletes.

    Opened with ``create_schema=False``: a SQLite file or file-store directory that does not
    exist is reported by the store (a mistyped path would otherwise leave a new, empty store
    behind and show no sessions), and so is a database or directory that holds no mofa store
    (or an older schema): nothing is created or upgraded in it. The default data directory,
    before anything was ever stored, reads as an empty store and is not created.
    """
    if choice.source == "default" and not _default_store_made(choice.url):
        return await open_store("memory://")
    try:
        return await open_store(choice.url, create_schema=False)
    except SchemaError as exc:  # no store there, or not one this version reads: exit 1
        raise CommandError(str(exc)) from None


async def open_store_to_write(choice: StoreChoice) -> BaseStore:
    """Open the store an import writes into: like :func:`open_existing_store` (a missing
    database or one without the mofa schema is reported: ``mofa db init`` makes it), except
    that the default file store is created if nothing was stored there yet, as the agent
    would create it."""
    if choice.source == "default" and not _default_store_made(choice.url):
        return await open_store(choice.url)
    return await open_existing_store(choice)


def _default_store_made(url: str) -> bool:
    """Whether the default file store at ``url`` has been written to (it has its marker)."""
    directory = parse_url(url).path or ""
    return os.path.isfile(os.path.join(os.path.expanduser(directory), STORE_MARKER))


def store_choice(ctx: click.Context) -> StoreChoice:
    """The store a command runs on, from the root group's options (``mofa --database-url``,
    ``mofa --config``) and the environment."""
    options = ctx.find_root().obj
    return resolve_store(
        getattr(options, "database_url", None), getattr(options, "config_path", None)
    )


def not_found(session_id: str) -> CommandError:
    """``Session not found: ID`` (exit 1)."""
    return CommandError(f"Session not found: {shown_id(session_id)}", EXIT_NOT_FOUND)


async def get_session_or_exit(store: BaseStore, session_id: str) -> Session:
    """The session, or :func:`not_found`."""
    found = await store.get_session(session_id)
    if found is None:
        raise not_found(session_id)
    return found
