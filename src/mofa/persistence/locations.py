"""Where mofa keeps data when no database is named: the local file store's directory.

The CLI reads this store by default and an ``agent.yml`` with persistence but no database
writes to it; the file store itself (``mofa.persistence.backends.files``) is opened through
:func:`mofa.persistence.open_store` like every other. This module imports no backend, so the
CLI, the configuration loader and the agent can ask where it is without loading one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final
from urllib.parse import quote

__all__ = ["STORE_MARKER", "default_data_dir", "default_store_url", "directory_url"]

#: The file that makes a directory a mofa file store (its format version inside).
STORE_MARKER: Final = "mofa-store.json"


def directory_url(directory: os.PathLike[str] | str) -> str:
    """The ``file://`` URL of a directory (percent-encoded: a ``?`` or ``%`` in a name stays
    part of the path)."""
    return "file://" + quote(os.fspath(directory), safe="/")


def default_store_url() -> str:
    """``file://`` URL of :func:`default_data_dir`: the store ``mofa session`` reads when no
    other is named, and the one an agent.yml with persistence but no database writes."""
    return directory_url(default_data_dir().absolute())


def default_data_dir() -> Path:
    """The local store's directory: ``$MOFA_DATA_DIR``, ``$XDG_DATA_HOME/mofa`` or
    ``~/.local/share/mofa`` (an empty or, for XDG, relative variable counts as unset)."""
    explicit = os.environ.get("MOFA_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "mofa"
    return Path.home() / ".local" / "share" / "mofa"
