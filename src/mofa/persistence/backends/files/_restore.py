"""A session restored exactly as it was stored (``restore_session``), all or nothing.

The logs are written first, as hidden files beside the session's (``.<stem>.messages.jsonl.
<random>.restore``), batch by batch as the records are read, and synced. Then, under the
session's lock, the commit: a taken id is resolved (``replace`` removes the old session as
a delete does, header first), the logs are renamed into place, the index entry, summary and
session-list line are written, and the header last: as for a creation, a session exists
once its header does. A restore that fails before the commit removes its hidden files and
leaves the store as it was. (A crash in the middle of a ``replace`` commit leaves the
session missing, never half old and half new.)

A restore killed before its commit cannot remove its hidden files itself, so each restore
first creates a marker, ``restoring/<random>``, that names them and that it holds an
exclusive ``flock`` on until it is done. The next open of the store (for writing) and the
next restore remove the files named by every marker whose lock is free — its restore is
dead — and then the marker; a restore still running keeps its lock, and its files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path

from mofa.persistence._codec import format_time
from mofa.persistence._entities import Agent, Owner, Session
from mofa.persistence._restore import ConflictPolicy, RestoreBatch, replaces
from mofa.persistence.backends._toolkit import placeholder_agent
from mofa.persistence.backends.files._durable import write_all
from mofa.persistence.backends.files._layout import Layout, SessionFiles
from mofa.persistence.backends.files._listing import place_in_listing
from mofa.persistence.backends.files._log import write_summary
from mofa.persistence.backends.files._records import (
    agent_bytes,
    header_bytes,
    index_bytes,
    message_line,
    read_header,
)
from mofa.persistence.backends.files._sessions import indexed_files, unlink_logs
from mofa.persistence.backends.files._tree import FileTree
from mofa.persistence.errors import ConflictError, PersistenceError

__all__ = ["StagedLogs", "clear_dead_restores"]

_SUFFIX = ".restore"


class StagedLogs:
    """A restored session's logs, written aside until :meth:`commit` puts them in place."""

    def __init__(self, tree: FileTree, layout: Layout, session: Session) -> None:
        self._tree = tree
        self._layout = layout
        self._session = session
        self._files = layout.files(session.agent_id, session.session_id)
        self._updated = format_time(session.updated_at)
        token = secrets.token_hex(6)
        self._messages = self._aside(self._files.messages, token)
        self._states = self._aside(self._files.states, token)
        self._fds: list[int] = []
        self._size = 0
        self._marker: Path | None = None
        self._marker_fd = -1

    @staticmethod
    def _aside(path: Path, token: str) -> Path:
        return path.with_name(f".{path.name}.{token}{_SUFFIX}")

    def _mark(self) -> None:
        """Create and lock the marker that names the hidden logs (see the module's text)."""
        tree, directory = self._tree, self._layout.restoring
        tree.make_dir(directory)
        while True:
            marker = directory / secrets.token_hex(8)
            fd = tree.open(marker, os.O_RDWR | os.O_CREAT | os.O_EXCL)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # Between the creation and the lock, a sweep may have taken the new (free)
                # marker for a dead one and removed it: then make another.
                current = tree.stat(marker)
                locked = os.fstat(fd)
                if (current.st_dev, current.st_ino) != (locked.st_dev, locked.st_ino):
                    raise FileNotFoundError
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            break
        self._marker, self._marker_fd = marker, fd
        root = self._layout.root
        write_all(
            fd,
            b"".join(
                os.fsencode(path.relative_to(root)) + b"\n"
                for path in (self._messages, self._states)
            ),
        )

    def open(self) -> None:
        self._mark()
        self._tree.make_dir(self._files.directory)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        for path in (self._messages, self._states):
            self._fds.append(self._tree.open(path, flags))

    def write(self, batch: RestoreBatch) -> None:
        """Add a batch to the logs (not yet synced: :meth:`commit` syncs once)."""
        if batch.messages:
            end = batch.messages[-1].seq  # each batch's lines name its last seq, as appends do
            # "at" (when a line was written) is the session's updated_at, which a read
            # takes as the time of the last append.
            data = b"".join(
                message_line(
                    message, message.seq, end, self._updated, format_time(message.timestamp)
                )
                for message in batch.messages
            )
            write_all(self._fds[0], data)
            self._size += len(data)
        if batch.states:
            write_all(
                self._fds[1],
                b"".join(
                    b'{"version":%d,"end":%d,"at":"%s","state":%s}\n'
                    % (
                        state.version,
                        state.version,
                        format_time(state.created_at).encode(),
                        state.state_json.encode(),
                    )
                    for state in batch.states
                ),
            )

    def discard(self) -> None:
        """Close and remove the hidden logs (nothing after a commit)."""
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
        for path in (self._messages, self._states):
            self._tree.unlink(path, missing_ok=True)
        if self._marker is not None:  # removed while still locked, then unlocked
            self._tree.unlink(self._marker, missing_ok=True)
            self._marker = None
        if self._marker_fd >= 0:
            os.close(self._marker_fd)
            self._marker_fd = -1

    def commit(
        self,
        metadata_json: str,
        agent: Agent | None,
        on_conflict: ConflictPolicy,
        owner: Owner | None,
    ) -> Session | None:
        tree, layout, session, files = self._tree, self._layout, self._session, self._files
        for fd in self._fds:
            os.fsync(fd)
        session_id = session.session_id
        with tree.flocked(layout.lock_path(session_id)):
            previous = indexed_files(tree, layout, session_id)
            if previous is not None:
                held = read_header(tree, previous, session_id)
                if held is not None:
                    held_by = (held.get("tenant_id"), held.get("user_id"), held.get("agent_id"))
                    if not replaces(session_id, on_conflict, owner, held_by):
                        return None
                    _remove(tree, previous)
                unlink_logs(tree, previous)  # what a crash or the replaced session left
            if tree.exists(files.header):
                raise ConflictError(
                    f"The session file {files.header} exists without an index entry; "
                    "the store directory was edited by hand."
                )
            if session.agent_id is not None and not tree.exists(
                layout.agent_path(session.agent_id)
            ):
                tree.create_exclusively(
                    layout.agent_path(session.agent_id),
                    agent_bytes(agent or placeholder_agent(session)),
                )
            tree.replace(layout.index_path(session_id), index_bytes(session_id, session.agent_id))
            tree.rename(self._messages, files.messages)
            tree.rename(self._states, files.states)
            self.discard()  # closes the descriptors; the hidden names are gone already
            if session.message_count:
                write_summary(tree, files.summary, session.message_count, self._size, self._updated)
            place_in_listing(tree, layout, session)
            tree.replace(files.header, header_bytes(session, metadata_json))
        return session


def _remove(tree: FileTree, files: SessionFiles) -> None:
    """The stored session goes as a delete removes it: its header first, durably."""
    tree.unlink(files.header)
    tree.sync_dir(files.directory)


def clear_dead_restores(tree: FileTree, layout: Layout) -> None:
    """Remove the hidden logs of every restore that died before its commit (its marker's
    lock is free), then its marker. Best effort: what cannot be removed now stays for the
    next time."""
    try:
        found = tree.entries(layout.restoring)
    except (OSError, PersistenceError):
        return  # no restore has run here yet (or the directory is unusable: left alone)
    sessions = layout.sessions.relative_to(layout.root).parts
    for name, is_directory in found:
        if is_directory:
            continue
        marker = layout.restoring / name
        try:
            fd = tree.open(marker, os.O_RDWR)
        except (OSError, PersistenceError):
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its restore is running
            named = os.pread(fd, 65536, 0)  # two short paths
            for line in named.splitlines():
                relative = Path(os.fsdecode(line))
                parts = relative.parts
                # Only a restore's hidden file in a session directory, whatever the marker says.
                if (
                    len(parts) != len(sessions) + 2
                    or parts[: len(sessions)] != sessions
                    or ".." in parts
                    or not parts[-1].startswith(".")
                    or not parts[-1].endswith(_SUFFIX)
                ):
                    continue
                with contextlib.suppress(OSError, PersistenceError):
                    tree.unlink(layout.root / relative, missing_ok=True)
            with contextlib.suppress(OSError, PersistenceError):
                tree.unlink(marker, missing_ok=True)
        finally:
            os.close(fd)
