"""Durable writes on open descriptors, the file store's primitives: every byte written, data
synced before a call returns, an append that leaves a log line-aligned even when it fails,
and a temporary file written and synced before it is renamed or linked into place.

They take descriptors (a file's, or its directory's for ``dir_fd``); reaching them without
following a link is :mod:`._tree`'s work.
"""

from __future__ import annotations

import contextlib
import os
import secrets

FILE_MODE = 0o600
DIR_MODE = 0o700


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write fewer)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _sync_data(fd: int) -> None:
    # fdatasync flushes the data and the size; the other metadata does not matter here.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS
        os.fsync(fd)


def append_durably(fd: int, data: bytes, size: int, good_end: int) -> None:
    """Append ``data`` to a log of ``size`` bytes whose complete lines end at ``good_end``,
    and fdatasync it. A tail cut short by an earlier crash is dropped first, so the log stays
    line-aligned; if this write fails, the log is cut back to ``good_end``."""
    if good_end < size:
        os.ftruncate(fd, good_end)
    try:
        write_all(fd, data)
        _sync_data(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, good_end)
        raise


def temporary_file(directory: int, name: str, data: bytes) -> str:
    """Write ``data`` to a new 0600 file beside ``name`` in ``directory`` and fsync it; its
    name."""
    temporary = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(
        temporary,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        FILE_MODE,
        dir_fd=directory,
    )
    try:
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        unlink_quietly(directory, temporary)
        raise
    os.close(fd)
    return temporary


def unlink_quietly(directory: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=directory)
