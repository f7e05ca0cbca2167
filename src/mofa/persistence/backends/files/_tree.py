"""The file store's directory, reached without following a symbolic link below its root.

Usage (the file store's own; the paths are the absolute ones it builds under the root)::

    tree = FileTree(Path("/data/mofa"))
    tree.open_root()                         # the root itself may be a link (/tmp on macOS)
    tree.replace(tree.root / "agents" / "a.json", b"{...}\\n")
    data = tree.read(tree.root / "sessions" / "a" / "s.json")
    tree.close()

Someone who can write inside the store's directory could otherwise plant a link where the
store expects one of its own files or directories, and the store would write through it: a
session log made a link to ``~/.bashrc`` gets the next message appended to that file, an agent
directory made a link to ``/etc`` gets session files created there. So the root is opened once
(following links, as the user named it) and every path below it is walked one component at a
time from that descriptor, each opened with ``O_NOFOLLOW`` (``openat`` and friends through
``dir_fd``): no component can be swapped for a link between a check and its use, because
there is no separate check. A link met on the way is refused with :class:`ConflictError`
before anything is read or written through it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NoReturn

from mofa.persistence.backends.files._durable import (
    DIR_MODE,
    FILE_MODE,
    temporary_file,
    unlink_quietly,
)
from mofa.persistence.errors import ConflictError

__all__ = ["FileTree"]

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# What opening a link with O_NOFOLLOW reports: ELOOP (Linux, macOS), EMLINK (FreeBSD), and
# ENOTDIR when O_DIRECTORY is asked for too. Each is checked with lstat before it is
# reported as a link.
_LINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})


class FileTree:
    """The store's root directory, held open, and the file operations below it.

    Every method takes an absolute path under :attr:`root` (as the store builds them) and
    reaches it through directory descriptors, following no link at any component below the
    root. An ``OSError`` names the whole path; a link raises :class:`ConflictError`.
    """

    def __init__(self, root: Path, held: Iterable[str] = ()) -> None:
        """``held``: names of directories right below the root to keep open once used."""
        self.root = root
        self._root_text = os.fspath(root)
        self._prefix = self._root_text.rstrip("/") + "/"
        self._fd = -1
        # The directories right below the root that every call passes through (sessions,
        # locks…) are opened once, at first use, and held: a session's file is then one
        # directory open away (its agent's), not two, which a listing of ten sessions (30
        # files) notices. A held directory renamed or replaced meanwhile keeps being used as
        # the directory it was; nothing is reached through a link either way.
        self._holdable = frozenset(held)
        self._held: dict[str, int] = {}
        self._open_fds: set[int] = set()  # the root's and the held ones: _leave keeps them
        self._holding = threading.Lock()
        # Between begin_call() and end_call() (one store call, on one worker thread) a
        # directory opened on the way to a file stays open for the call's next file in it:
        # a session's header, summary and log cost one open of their directory, not three.
        self._call = threading.local()
        self._closer: weakref.finalize[[set[int]], FileTree] | None = None

    def open_root(self) -> None:
        """Open the root directory (following links in its own path) for every later call.

        Raises:
            FileNotFoundError: the root does not exist.
            NotADirectoryError: the root is not a directory.
        """
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._fd = fd
        self._open_fds.add(fd)
        # Closed by close(), or when the tree is collected (a store that was never closed).
        self._closer = weakref.finalize(self, _close_all, self._open_fds)

    def begin_call(self) -> bool:
        """Keep the directories this thread opens until :meth:`end_call` (given what this
        returned: False inside a call already begun, whose end closes them)."""
        if getattr(self._call, "kept", None) is not None:
            return False
        self._call.kept = {}
        return True

    def end_call(self, began: bool) -> None:
        if began:
            kept: dict[str, int] = self._call.kept
            self._call.kept = None
            for fd in kept.values():
                os.close(fd)

    def close(self) -> None:
        """Close the held directories (once every call has returned)."""
        if self._closer is not None:
            self._closer()  # runs once
        self._held.clear()

    # ------------------------------------------------------------------ walking

    def _parts(self, path: Path) -> list[str]:
        text = os.fspath(path)
        if text == self._root_text:
            return []
        if not text.startswith(self._prefix):  # a bug in the caller, never user input
            raise ValueError(f"{path} is not inside the file store's directory {self.root}")
        return text[len(self._prefix) :].split("/")

    def link_error(self, path: Path | str) -> ConflictError:
        """The error for a link found at ``path``."""
        return ConflictError(
            f"{path} is a symbolic link; the file store follows none below its directory "
            f"{self.root}, so replace the link with what it points to, or remove it."
        )

    def _raise(self, directory: int, parts: list[str], index: int, exc: OSError) -> NoReturn:
        """Raise ``exc`` (from opening ``parts[index]`` in ``directory``) with the whole path
        as its file name, or :meth:`link_error` if that entry is a link."""
        path = self._prefix + "/".join(parts[: index + 1])
        if exc.errno in _LINK_ERRNOS:
            with contextlib.suppress(OSError):
                entry = os.stat(parts[index], dir_fd=directory, follow_symlinks=False)
                if stat.S_ISLNK(entry.st_mode):
                    raise self.link_error(path) from None
        exc.filename = path
        raise exc

    def _enter(self, parts: list[str], count: int) -> int:
        """A descriptor of the directory that the first ``count`` parts name, opened one
        component at a time; the root's own when ``count`` is 0 (see :meth:`_leave`)."""
        fd, start = self._fd, 0
        if count and parts[0] in self._holdable:
            held = self._held.get(parts[0])
            fd, start = self._hold(parts[0]) if held is None else held, 1
        if start >= count:
            return fd
        kept: dict[str, int] | None = getattr(self._call, "kept", None)
        if kept is not None:
            key = "/".join(parts[:count])
            found = kept.get(key)
            if found is not None:
                return found
        for index in range(start, count):
            try:
                following = os.open(parts[index], _DIRECTORY, dir_fd=fd)
            except OSError as exc:
                self._raise(fd, parts, index, exc)
            finally:
                self._leave(fd)
            fd = following
        if kept is not None:
            kept[key] = fd
        return fd

    def _hold(self, name: str) -> int:
        """Open the directory ``name`` right below the root, to be held from now on."""
        with self._holding:  # two threads may ask at once: one descriptor is kept
            fd = self._held.get(name)
            if fd is None:
                try:
                    fd = os.open(name, _DIRECTORY, dir_fd=self._fd)
                except OSError as exc:
                    self._raise(self._fd, [name], 0, exc)
                self._open_fds.add(fd)
                self._held[name] = fd
            return fd

    def _leave(self, fd: int) -> None:
        """Close a descriptor :meth:`_enter` returned, unless it is held or kept."""
        if not self._kept(fd):
            os.close(fd)

    def _kept(self, fd: int) -> bool:
        if fd in self._open_fds:
            return True
        kept: dict[str, int] | None = getattr(self._call, "kept", None)
        return kept is not None and fd in kept.values()

    @staticmethod
    def _named(path: Path, exc: OSError) -> OSError:
        """``exc`` naming the whole path (an operation through ``dir_fd`` names one part)."""
        exc.filename = os.fspath(path)
        return exc

    # ------------------------------------------------------------------ operations

    def open(self, path: Path, flags: int, mode: int = FILE_MODE) -> int:
        """``os.open`` of a file below the root (``O_NOFOLLOW`` and ``O_CLOEXEC`` added)."""
        parts = self._parts(path)
        last = len(parts) - 1
        directory = self._enter(parts, last)
        try:
            return os.open(
                parts[last], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=directory
            )
        except OSError as exc:
            self._raise(directory, parts, last, exc)
        finally:
            self._leave(directory)

    def read(self, path: Path) -> bytes | None:
        """The file's bytes; None if it (or a directory on its way) does not exist."""
        try:
            fd = self.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as file:
            return file.read()

    def stat(self, path: Path) -> os.stat_result:
        """The entry's status (never a link's target: a link is refused)."""
        parts = self._parts(path)
        last = len(parts) - 1
        directory = self._enter(parts, last)
        try:
            status = os.stat(parts[last], dir_fd=directory, follow_symlinks=False)
        except OSError as exc:
            raise self._named(path, exc) from None
        finally:
            self._leave(directory)
        if stat.S_ISLNK(status.st_mode):
            raise self.link_error(path)
        return status

    def exists(self, path: Path) -> bool:
        """Whether the entry exists (as :meth:`pathlib.Path.exists`, but a link is refused)."""
        try:
            self.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def entries(self, directory: Path) -> list[tuple[str, bool]]:
        """``(name, is a directory)`` of each entry of a directory below the root."""
        parts = self._parts(directory)
        fd = self._enter(parts, len(parts))
        if self._kept(fd):
            # scandir() of a descriptor reads through a duplicate that shares its position:
            # a listing of a held or kept directory needs a descriptor of its own.
            fd = os.open(".", _DIRECTORY, dir_fd=fd)
        try:
            with os.scandir(fd) as found:
                return [(entry.name, entry.is_dir()) for entry in found]
        finally:
            os.close(fd)

    def make_dir(self, path: Path) -> None:
        """Create the directory (0700) if missing, making the new entry durable."""
        parts = self._parts(path)
        last = len(parts) - 1
        directory = self._enter(parts, last)
        try:
            os.mkdir(parts[last], DIR_MODE, dir_fd=directory)
            os.fsync(directory)
        except FileExistsError:
            pass  # a link there is refused by the first walk through it
        except OSError as exc:
            raise self._named(path, exc) from None
        finally:
            self._leave(directory)

    def sync_dir(self, path: Path) -> None:
        """fsync a directory (the root included), making its entries durable."""
        parts = self._parts(path)
        fd = self._enter(parts, len(parts))
        try:
            os.fsync(fd)
        finally:
            self._leave(fd)

    def touch(self, path: Path, *, truncate: bool) -> None:
        """Create the file (0600) if missing, or empty it with ``truncate``; fsync it. The
        caller fsyncs the directory."""
        fd = self.open(path, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def replace(self, path: Path, data: bytes) -> None:
        """Replace the file with ``data``: readers and crashes see the old or the new file."""
        parts = self._parts(path)
        last = len(parts) - 1
        directory = self._enter(parts, last)
        try:
            temporary = temporary_file(directory, parts[last], data)
            try:
                os.replace(temporary, parts[last], src_dir_fd=directory, dst_dir_fd=directory)
            except BaseException:
                unlink_quietly(directory, temporary)
                raise
            os.fsync(directory)
        except OSError as exc:
            raise self._named(path, exc) from None
        finally:
            self._leave(directory)

    def rename(self, source: Path, target: Path) -> None:
        """Move ``source`` over ``target``, both in one directory, atomically; then fsync
        the directory."""
        if source.parent != target.parent:  # a bug in the caller, never user input
            raise ValueError(f"{source} and {target} are not in one directory")
        parts = self._parts(target)
        last = len(parts) - 1
        directory = self._enter(parts, last)
        try:
            os.replace(source.name, parts[last], src_dir_fd=directory, dst_dir_fd=directory)
            os.fsync(directory)
        except OSError as exc:
            raise self._named(target, exc) from None
        finally:
            self._leave(directory)

    def create_exclusively(self, path: Path, data: bytes) -> bool:
        """Create the file with ``data`` unless it exists (False then); never shows a
        half-written file."""
        parts = self._parts(path)
        last = len(parts) - 1
        directory = self._enter(parts, last)
        try:
            temporary = temporary_file(directory, parts[last], data)
            try:
                os.link(temporary, parts[last], src_dir_fd=directory, dst_dir_fd=directory)
            except FileExistsError:
                return False
            finally:
                unlink_quietly(directory, temporary)
            os.fsync(directory)
            return True
        except OSError as exc:
            raise self._named(path, exc) from None
        finally:
            self._leave(directory)

    def unlink(self, path: Path, *, missing_ok: bool = False) -> None:
        """Remove the entry (a link is removed itself, its target untouched)."""
        try:
            parts = self._parts(path)
            last = len(parts) - 1
            directory = self._enter(parts, last)
            try:
                os.unlink(parts[last], dir_fd=directory)
            except OSError as exc:
                raise self._named(path, exc) from None
            finally:
                self._leave(directory)
        except FileNotFoundError:
            if not missing_ok:
                raise

    @contextlib.contextmanager
    def flocked(self, path: Path) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the file (created if needed) for the block."""
        fd = self._lock(path)
        try:
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _lock(self, path: Path) -> int:
        # A session's lock file is unlinked when the session is deleted, possibly while we
        # wait for it; so after locking, check that the name still is the file we locked,
        # else retry on the new one. (Two holders of two different inodes would not exclude
        # each other.)
        parts = self._parts(path)
        last = len(parts) - 1
        while True:
            directory = self._enter(parts, last)
            try:
                try:
                    fd = os.open(
                        parts[last],
                        os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                        FILE_MODE,
                        dir_fd=directory,
                    )
                except OSError as exc:
                    self._raise(directory, parts, last, exc)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    locked = os.fstat(fd)
                    current = os.stat(parts[last], dir_fd=directory, follow_symlinks=False)
                except FileNotFoundError:
                    os.close(fd)
                    continue
                except BaseException:
                    os.close(fd)
                    raise
            finally:
                self._leave(directory)
            if (current.st_dev, current.st_ino) == (locked.st_dev, locked.st_ino):
                return fd
            os.close(fd)


def _close_all(descriptors: set[int]) -> None:
    for fd in descriptors:
        os.close(fd)
    descriptors.clear()
