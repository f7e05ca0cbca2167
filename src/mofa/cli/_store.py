"""Which store a CLI command opens, and how its failures reach the user.

The store is the first of:

1. ``mofa --database-url URL …``
2. the ``MOFA_DATABASE_URL`` environment variable
3. ``persistence.database`` of the agent configuration: ``--config PATH``, else
   ``./agent.yml`` when it exists (``persistence.enabled: false`` skips it)
4. the local file store in :func:`~mofa.persistence.backends.files.default_data_dir`
   (``$MOFA_DATA_DIR``, else ``$XDG_DATA_HOME/mofa``, else ``~/.local/share/mofa``)

Every failure becomes one ``Error: …`` line on stderr and an exit code, never a traceback,
and never shows a password.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from mofa.cli._errors import EXIT_FAILURE, CliError, one_line
from mofa.config import DEFAULT_CONFIG_NAME, ConfigError, load_config
from mofa.persistence import BaseStore, PersistenceError, mask_url, open_store, parse_url

__all__ = [
    "DATABASE_URL_VARIABLE",
    "CommandError",
    "StoreChoice",
    "default_store_url",
    "open_cli_store",
    "resolve_store",
    "run",
]

DATABASE_URL_VARIABLE = "MOFA_DATABASE_URL"

T = TypeVar("T")


class CommandError(CliError):
    """:class:`~mofa.cli._errors.CliError` with a chosen exit code (``session delete``'s
    1 not found, 2 permission denied, 3 failed)."""

    def __new__(cls, message: str, exit_code: int = EXIT_FAILURE) -> CommandError:
        # click reads the exit code from the class; one subclass per code keeps it there.
        if exit_code != cls.exit_code:
            cls = _coded_class(exit_code)
        return super().__new__(cls)

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)


@functools.cache
def _coded_class(exit_code: int) -> type[CommandError]:
    return type(f"CommandError{exit_code}", (CommandError,), {"exit_code": exit_code})


@dataclass(frozen=True, slots=True)
class StoreChoice:
    """The URL a command will open and where it came from (for messages and tests)."""

    url: str
    source: str

    @property
    def masked(self) -> str:
        return mask_url(self.url)


def default_store_url() -> str:
    """``file://`` URL of the local file store's default data directory."""
    from mofa.persistence.backends.files import default_data_dir

    return "file://" + quote(str(Path(default_data_dir()).expanduser().absolute()), safe="/")


def resolve_store(
    database_url: str | None,
    config_path: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> StoreChoice:
    """Pick the store URL by the precedence in this module's docstring.

    Raises :class:`CommandError` when the configuration file cannot be used.
    """
    env = os.environ if environ is None else environ
    if database_url is not None:
        return StoreChoice(database_url, "--database-url")
    from_env = env.get(DATABASE_URL_VARIABLE, "")
    if from_env.strip():
        return StoreChoice(from_env, DATABASE_URL_VARIABLE)
    if config_path is None:
        candidate = (cwd or Path.cwd()) / DEFAULT_CONFIG_NAME
        # An agent.yml that exists but cannot be read is reported, not silently skipped.
        config_path = candidate if os.path.lexists(candidate) else None
    if config_path is not None:
        try:
            url = load_config(config_path, environ=env).persistence.database_url()
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        if url is not None:
            return StoreChoice(url, str(config_path))
    return StoreChoice(default_store_url(), "default")


def _scrub(message: str, url: str | None) -> str:
    """Belt and braces: whatever produced ``message``, no password from ``url`` survives."""
    if not url:
        return message
    message = message.replace(url, mask_url(url))
    try:
        password = parse_url(url).password
    except PersistenceError:
        return message
    if password and len(password) >= 3:
        message = message.replace(password, "****")
    return message


@asynccontextmanager
async def open_cli_store(choice: StoreChoice) -> AsyncIterator[BaseStore]:
    """Open (and finally close) the chosen store."""
    store = await open_store(choice.url)
    try:
        yield store
    finally:
        await store.close()


def run(
    coroutine_factory: Callable[[], Coroutine[Any, Any, T]],
    *,
    url: str | None = None,
    exit_code_for: Callable[[Exception], int] | None = None,
) -> T:
    """Run a command's coroutine; turn store, configuration and file errors into a
    :class:`CommandError` (exit code from ``exit_code_for``, default 1)."""
    try:
        return asyncio.run(coroutine_factory())
    except CliError:
        raise
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as command-line tools do.
        _silence_stdout()
        raise SystemExit(EXIT_FAILURE) from None
    except (PersistenceError, ConfigError, OSError) as exc:
        code = 1 if exit_code_for is None else exit_code_for(exc)
        message = str(exc)
        if isinstance(exc, OSError) and not isinstance(exc, PersistenceError):
            message = _describe_os_error(exc)
        raise CommandError(_scrub(one_line(message) or type(exc).__name__, url), code) from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test runner's buffer)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


def _describe_os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f"{reason}: {os.fsdecode(exc.filename)}."
    return f"{reason}."
