"""``.env`` files, read with python-dotenv, and the environment mofa reads its settings from.

The process environment wins over ``./.env`` (the current directory), which wins over the
``.env`` beside ``agent.yml``. Every name of those files is there for ``${VAR}`` in agent.yml;
the settings mofa reads from the environment itself (:func:`is_setting`: ``OPENAI_*``,
``MOFA_*``, ``DATABASE_URL``) may come from them too. Nothing is written to ``os.environ``.
Values are taken as written (python-dotenv's quoting and ``#`` comments, no ``${VAR}``
expansion inside a ``.env``).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

__all__ = ["DOTENV_NAME", "DotenvError", "is_setting", "layered_environment", "read_dotenv"]

DOTENV_NAME = ".env"
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DotenvError(ValueError):
    """A ``.env`` file that cannot be read; the message is one sentence naming file:line."""


def is_setting(name: str) -> bool:
    """Whether a ``.env`` file may give mofa's own setting ``name`` (not only ``${name}``)."""
    return name.startswith(("OPENAI_", "MOFA_")) or name == "DATABASE_URL"


def read_dotenv(path: Path) -> dict[str, str]:
    """The ``NAME=value`` pairs of the ``.env`` file at ``path`` (none when it is missing).

    A byte-order mark is skipped. :class:`DotenvError` for a file that is not UTF-8 text, a
    line python-dotenv cannot parse, or a name that ``${NAME}`` could not refer to.
    """
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise DotenvError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DotenvError(f"{path}:{line} is not UTF-8 text; save the file as UTF-8.") from None
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            raise DotenvError(
                f"{path}:{line} is not a NAME=value line; quote a value that holds spaces or "
                "'#', and close every quote."
            )
        if binding.key is not None and not _NAME_RE.fullmatch(binding.key):
            raise DotenvError(
                f"{path}:{line} sets {binding.key!r}, which is not a variable name; use "
                "letters, digits and '_', not starting with a digit."
            )
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    # A bare NAME (no '=') declares nothing: it is left unset, as python-dotenv leaves it.
    return {name: value for name, value in values.items() if value is not None}


def layered_environment(
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    settings_only: bool = False,
) -> dict[str, str]:
    """``environ`` (default: the process environment) over ``./.env`` over the ``.env``
    beside ``config_path``.

    Args:
        config_path: The configuration file whose directory may hold a ``.env``.
        environ: The environment that wins over both files.
        settings_only: Take from the files only the names of :func:`is_setting`.
    """
    layers: list[dict[str, str]] = []
    files = [Path.cwd() / DOTENV_NAME]
    if config_path is not None:
        files.insert(0, config_path.parent / DOTENV_NAME)
    seen: set[str] = set()
    for path in files:
        key = os.path.abspath(path)
        if key in seen:  # agent.yml in the current directory: one .env, read once
            continue
        seen.add(key)
        values = read_dotenv(path)
        if settings_only:
            values = {name: value for name, value in values.items() if is_setting(name)}
        layers.append(values)
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer)
    merged.update(os.environ if environ is None else environ)
    return merged
