"""A session's files: finding them (through the index entry), and creating, reading,
updating and deleting a session, each with the session's lock held where it writes.

The header is the commit point: a session exists while its header does. Creation writes the
index entry and the empty logs first and the header last; deletion removes the header
first. Every function here blocks; the store runs each in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from typing import Any

import orjson

from mofa.persistence._codec import decode_json, format_time
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Owner, Session
from mofa.persistence.backends._toolkit import placeholder_agent
from mofa.persistence.backends.files._layout import Layout, SessionFiles
from mofa.persistence.backends.files._listing import add_to_listing
from mofa.persistence.backends.files._records import (
    agent_bytes,
    header_bytes,
    index_bytes,
    owned,
    read_header,
    read_record,
    session_from,
)
from mofa.persistence.backends.files._tree import FileTree
from mofa.persistence.errors import ConflictError, SessionExistsError, SessionNotFoundError


def indexed_files(tree: FileTree, layout: Layout, session_id: str) -> SessionFiles | None:
    """The files the index entry points at (they may be gone: check the header)."""
    record = read_record(tree, layout.index_path(session_id))
    if record is None or record.get("session_id") != session_id:
        return None
    agent_id = record.get("agent_id")
    return layout.files(agent_id if isinstance(agent_id, str) else None, session_id)


def live_files(tree: FileTree, layout: Layout, session_id: str) -> SessionFiles | None:
    """The session's files if it exists (its header does), without reading the header."""
    files = indexed_files(tree, layout, session_id)
    return files if files is not None and tree.exists(files.header) else None


def unlink_logs(tree: FileTree, files: SessionFiles) -> None:
    """Remove a session's logs and summary (the header and index entry stay)."""
    for path in (files.messages, files.states, files.summary):
        tree.unlink(path, missing_ok=True)


def not_found(tree: FileTree, layout: Layout, session_id: str) -> SessionNotFoundError:
    """The error for a missing session, once the lock file that locking just created is
    removed again (called with the lock held), so probing unknown ids leaves nothing."""
    tree.unlink(layout.lock_path(session_id), missing_ok=True)
    return SessionNotFoundError(session_id)


def locate(
    tree: FileTree, layout: Layout, session_id: str, owner: Owner | None = None
) -> tuple[SessionFiles, dict[str, Any]]:
    """The live session's files and header, or raise :class:`SessionNotFoundError` (also
    for a session outside ``owner``'s scope, checked on this same header read).

    Called with the session's lock held: the header cannot change until it is released.
    """
    files = indexed_files(tree, layout, session_id)
    header = None if files is None else read_header(tree, files, session_id)
    if files is None or header is None:
        raise not_found(tree, layout, session_id)
    if owner is not None and not owned(header, owner):
        # Another owner's session: it exists, so its lock file stays.
        raise SessionNotFoundError(session_id)
    return files, header


def require_live(tree: FileTree, layout: Layout, session_id: str) -> SessionFiles:
    """Like :func:`locate` without parsing the header (appends only need it to exist)."""
    files = live_files(tree, layout, session_id)
    if files is None:
        raise not_found(tree, layout, session_id)
    return files


def create_session(tree: FileTree, layout: Layout, session: Session, metadata_json: str) -> Session:
    session_id = session.session_id
    files = layout.files(session.agent_id, session_id)
    with tree.flocked(layout.lock_path(session_id)):
        previous = indexed_files(tree, layout, session_id)
        if previous is not None:
            if read_header(tree, previous, session_id) is not None:
                raise SessionExistsError(session_id)
            # Left by a crash mid-create or mid-delete: nobody can see these; clear them.
            unlink_logs(tree, previous)
        if tree.exists(files.header):
            raise ConflictError(
                f"The session file {files.header} exists without an index entry; "
                "the store directory was edited by hand."
            )
        if session.agent_id is not None and not tree.exists(layout.agent_path(session.agent_id)):
            # The foreign key: a minimal agent record, unless an upsert got there first.
            tree.create_exclusively(
                layout.agent_path(session.agent_id),
                agent_bytes(placeholder_agent(session)),
            )
        tree.make_dir(files.directory)
        tree.replace(layout.index_path(session_id), index_bytes(session_id, session.agent_id))
        tree.unlink(files.summary, missing_ok=True)
        tree.touch(files.messages, truncate=True)
        tree.touch(files.states, truncate=True)
        with tree.flocked(layout.listing_lock):
            try:
                listing = tree.open(layout.listing, os.O_RDWR | os.O_APPEND)
            except FileNotFoundError:
                # A format-1 store: no list to add to. The header is written with the
                # list's lock held, so an upgrade reading the headers sees it whole.
                tree.replace(files.header, header_bytes(session, metadata_json))
                return session
            try:
                session = add_to_listing(listing, session)
            finally:
                os.close(listing)
        # The header is written last: once it exists, the session does.
        tree.replace(files.header, header_bytes(session, metadata_json))
    return session


def get_session(
    tree: FileTree, layout: Layout, session_id: str, owner: Owner | None
) -> Session | None:
    files = indexed_files(tree, layout, session_id)
    if files is None:
        return None
    header = read_header(tree, files, session_id)
    if header is None or (owner is not None and not owned(header, owner)):
        return None
    return session_from(tree, header, files)


def update_session(
    tree: FileTree,
    layout: Layout,
    session_id: str,
    status: str | None,
    metadata_json: str | None,
    expires_at: datetime | Unset | None,
    now: datetime,
    owner: Owner | None,
) -> Session:
    with tree.flocked(layout.lock_path(session_id)):
        files, header = locate(tree, layout, session_id, owner)
        if status is not None:
            header["status"] = status
        if not isinstance(expires_at, Unset):
            header["expires_at"] = None if expires_at is None else format_time(expires_at)
        header["updated_at"] = format_time(now)
        if metadata_json is not None:
            header["metadata"] = decode_json(metadata_json)
        data = orjson.dumps(header, option=orjson.OPT_APPEND_NEWLINE)
        tree.replace(files.header, data)
        return session_from(tree, header, files)


def delete_session(tree: FileTree, layout: Layout, session_id: str, owner: Owner | None) -> bool:
    lock_path = layout.lock_path(session_id)
    with tree.flocked(lock_path):
        files = indexed_files(tree, layout, session_id)
        header = None if files is None else read_header(tree, files, session_id)
        if header is not None and owner is not None and not owned(header, owner):
            return False  # another owner's session: left exactly as it is, lock file too
        if files is not None:
            if header is not None:
                # The header goes first and durably: from then on the session is gone for
                # every reader, and a crash below leaves only files nobody sees.
                tree.unlink(files.header)
                tree.sync_dir(files.directory)
            # Also clears what a crashed create or delete left.
            unlink_logs(tree, files)
            tree.unlink(layout.index_path(session_id), missing_ok=True)
        # Waiters re-check the lock file's identity after locking, so unlinking is safe.
        # It is tidying only: the session is deleted by now, and a lock file left behind
        # (say, in a directory this process may not write) is harmless and reused.
        with contextlib.suppress(OSError):
            tree.unlink(lock_path)
    return header is not None
