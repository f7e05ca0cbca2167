"""A session's message and state logs: appending under the session's lock (one write and
one fdatasync per call, or per group of callers for messages), and reading without a lock
(the newest N, a page after a seq, one state version or the latest ones).

An owner scope is checked on the header read the call already does: under the lock for a
write, after opening the log (which must then still be linked) for a read. Every function
here blocks; the store runs each in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from mofa.persistence._base import EncodedMessage
from mofa.persistence._codec import format_time
from mofa.persistence._entities import AgentState, Message, Owner
from mofa.persistence.backends.files._durable import append_durably
from mofa.persistence.backends.files._layout import Layout, SessionFiles
from mofa.persistence.backends.files._log import (
    SEQ_PREFIX,
    VERSION_PREFIX,
    Tail,
    message_tail,
    read_after,
    read_last,
    scan_tail,
    write_summary,
)
from mofa.persistence.backends.files._records import (
    message_from,
    message_line,
    owned,
    read_header,
    state_from,
)
from mofa.persistence.backends.files._sessions import (
    indexed_files,
    live_files,
    locate,
    require_live,
)
from mofa.persistence.backends.files._tree import FileTree
from mofa.persistence.errors import SessionNotFoundError


def append_groups(
    tree: FileTree,
    layout: Layout,
    session_id: str,
    groups: Sequence[tuple[Sequence[EncodedMessage], datetime, Owner | None]],
) -> list[list[Message] | SessionNotFoundError]:
    """Append several callers' batches with one write and one fdatasync.

    Each batch keeps its own ``end`` marker, so a crash mid-write can cut between
    batches but never inside one. A batch sent through an owner that the session's
    header (read here, under the lock) is not inside gets :class:`SessionNotFoundError`
    and writes nothing; the others are written.
    """
    scoped = any(owner is not None for _messages, _now, owner in groups)
    with _log_for_append(tree, layout, session_id, states=False, scoped=scoped) as (
        files,
        header,
        fd,
    ):
        size = os.fstat(fd).st_size
        tail = message_tail(tree, fd, files, size, writer=True)
        lines: list[bytes] = []
        results: list[list[Message] | SessionNotFoundError] = []
        last = tail.last
        at = ""
        for messages, now, owner in groups:
            if owner is not None and (header is None or not owned(header, owner)):
                results.append(SessionNotFoundError(session_id))
                continue
            stamp = format_time(now)  # most messages carry the call's own time
            at = max(at, stamp)
            first, last = last + 1, last + len(messages)
            lines.extend(
                message_line(
                    message,
                    first + offset,
                    last,
                    stamp,
                    stamp if message.timestamp is now else format_time(message.timestamp),
                )
                for offset, message in enumerate(messages)
            )
            results.append(
                [
                    message.stored(session_id, first + offset)
                    for offset, message in enumerate(messages)
                ]
            )
        if not lines:
            return results  # every batch refused: nothing is written, not even a repair
        data = b"".join(lines)
        append_durably(fd, data, size, tail.end)
        write_summary(tree, files.summary, last, tail.end + len(data), at)
    return results


@contextlib.contextmanager
def _log_for_append(
    tree: FileTree, layout: Layout, session_id: str, states: bool, *, scoped: bool = False
) -> Iterator[tuple[SessionFiles, dict[str, Any] | None, int]]:
    """The session's message (or state) log, opened for appending under the session's
    lock, so no other process writes it meanwhile.

    ``scoped``: the header is read (instead of only checked to exist) and yielded, for
    the caller to check the owner on it while the lock is held: a session deleted and
    created again by another owner cannot slip in between the check and the write.
    """
    with tree.flocked(layout.lock_path(session_id)):
        header: dict[str, Any] | None = None
        if scoped:
            files, header = locate(tree, layout, session_id)
        else:
            files = require_live(tree, layout, session_id)
        try:
            fd = tree.open(files.states if states else files.messages, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            raise SessionNotFoundError(session_id) from None
        try:
            yield files, header, fd
        finally:
            os.close(fd)


def save_state(
    tree: FileTree,
    layout: Layout,
    session_id: str,
    state_json: str,
    now: datetime,
    owner: Owner | None,
) -> int:
    """Append one snapshot (one line, one write, fdatasync); return its version."""
    at = format_time(now)
    with _log_for_append(tree, layout, session_id, states=True, scoped=owner is not None) as (
        _files,
        header,
        fd,
    ):
        # The owner is checked on the header read under the lock the write holds.
        if owner is not None and (header is None or not owned(header, owner)):
            raise SessionNotFoundError(session_id)
        size = os.fstat(fd).st_size
        tail = scan_tail(fd, size, "version")
        version = tail.last + 1
        data = b'{"version":%d,"end":%d,"at":"%s","state":%s}\n' % (
            version,
            version,
            at.encode(),
            state_json.encode("utf-8"),
        )
        append_durably(fd, data, size, tail.end)
    return version


def _open_log(
    tree: FileTree, layout: Layout, session_id: str, states: bool, owner: Owner | None
) -> tuple[int, SessionFiles, int] | None:
    """The session's message (or state) log opened for reading, with its files and
    size; ``None`` when the session is missing or, through ``owner``, not the owner's.

    Reads take no lock, so with an owner the order matters: the log is opened first,
    then the header is read (instead of only checked to exist) and the owner checked on
    it, then the open log is checked to still be linked (``st_nlink``, from the fstat
    that gives the size anyway). A deletion unlinks the header and then the logs, and a
    creation makes new logs before its header; so a log still linked after the header
    read belongs to the session that header describes: one deleted and created again
    by another owner meanwhile is never read as the first owner's, nor the other way.
    """
    # (Without an owner the header is only checked to exist, before the open.)
    files = (
        live_files(tree, layout, session_id)
        if owner is None
        else indexed_files(tree, layout, session_id)
    )
    if files is None:
        return None
    try:
        fd = tree.open(files.states if states else files.messages, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if owner is not None:
            header = read_header(tree, files, session_id)
            if header is None or not owned(header, owner):
                os.close(fd)
                return None
        status = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if owner is not None and status.st_nlink == 0:
        os.close(fd)
        return None  # deleted since it was opened
    return fd, files, status.st_size


def _read_messages(
    tree: FileTree,
    layout: Layout,
    session_id: str,
    owner: Owner | None,
    read: Callable[[int, Tail], list[dict[str, Any]]],
) -> list[Message]:
    """The messages ``read(fd, tail)`` picks from the session's log (none if it is gone,
    or not ``owner``'s)."""
    opened = _open_log(tree, layout, session_id, False, owner)
    if opened is None:
        return []
    fd, files, size = opened
    try:
        records = read(fd, message_tail(tree, fd, files, size))
    finally:
        os.close(fd)
    return [message_from(session_id, record) for record in records]


def list_messages(
    tree: FileTree,
    layout: Layout,
    session_id: str,
    limit: int | None,
    after_seq: int,
    owner: Owner | None,
) -> list[Message]:
    return _read_messages(
        tree,
        layout,
        session_id,
        owner,
        lambda fd, tail: read_after(fd, tail, SEQ_PREFIX, after_seq, limit),
    )


def list_recent_messages(
    tree: FileTree, layout: Layout, session_id: str, limit: int, owner: Owner | None
) -> list[Message]:
    messages = _read_messages(
        tree, layout, session_id, owner, lambda fd, tail: read_last(fd, tail, limit)
    )
    messages.reverse()  # read newest first, returned oldest first
    return messages


def read_states(
    tree: FileTree,
    layout: Layout,
    session_id: str,
    version: int | None,
    limit: int | None,
    owner: Owner | None,
) -> list[AgentState]:
    opened = _open_log(tree, layout, session_id, True, owner)
    if opened is None:
        return []
    fd, _files, size = opened
    try:
        tail = scan_tail(fd, size, "version")
        if version is not None:
            if not 1 <= version <= tail.last:
                return []
            records = read_after(fd, tail, VERSION_PREFIX, version - 1, 1)
        else:
            records = read_last(fd, tail, tail.last if limit is None else limit)
    finally:
        os.close(fd)
    return [state_from(session_id, record) for record in records]
