"""Files the CLI writes (``db init -o``, ``session export``): complete or not at all."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

__all__ = ["atomic_text_file", "cannot_write"]


@contextmanager
def atomic_text_file(
    path: Path,
    *,
    mode: int | None = None,
    make_parents: bool = False,
    require_directory_sync: bool = True,
) -> Iterator[IO[str]]:
    """A UTF-8 text file that appears at ``path`` complete or not at all.

    Written to a temporary file beside ``path``, flushed to disk, then renamed over it; on any
    failure the temporary file is removed and an existing ``path`` is left as it was. A
    symbolic link is written through (its target is replaced; the link stays), and a path
    that is not a regular file (``/dev/stdout``, a FIFO, a terminal) is written straight
    into, as nothing can be renamed over it.

    Args:
        path: Where the file goes; a directory there is refused.
        mode: The new file's permission bits. ``None`` keeps those of the file it replaces,
            or gives a new file what the umask allows (as ``open()`` would).
        make_parents: Create missing parent directories.
        require_directory_sync: Raise when the directory entry cannot be flushed to disk;
            when false, the rename is kept durable on a best-effort basis only (not every
            platform can open a directory).
    """
    try:
        kind = os.stat(path).st_mode  # through any symbolic link
    except FileNotFoundError:
        kind = None
    except NotADirectoryError:
        raise _under_a_file(path) from None
    if kind is not None and stat.S_ISDIR(kind):
        raise IsADirectoryError(21, "it is a directory", str(path))
    if kind is not None and not stat.S_ISREG(kind):
        with open(path, "w", encoding="utf-8", newline="\n") as stream:
            yield stream
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    directory = path.parent
    if make_parents:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # one of the parents is a file
            raise _under_a_file(path) from None
    if mode is None:
        mode = _mode_for(path)
    import tempfile  # loaded by the commands that write a file, not at start-up

    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if require_directory_sync:
        _fsync_directory(directory)
    else:
        with suppress(OSError):
            _fsync_directory(directory)


def cannot_write(what: str, path: Path, exc: OSError) -> str:
    """The one sentence for a file the CLI could not write (``db init -o``, ``export -o``)."""
    return f"Cannot write the {what} to {path}: {exc.strerror or exc}."


def _under_a_file(path: Path) -> NotADirectoryError:
    return NotADirectoryError(20, "one of its parent directories is a file", str(path))


def _mode_for(path: Path) -> int:
    """The permission bits of the file at ``path``, else those a new file gets."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable: it is only once the directory entry is on disk."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
