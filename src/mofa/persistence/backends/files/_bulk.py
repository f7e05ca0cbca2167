"""Filling a file store in bulk, for benchmarks: sessions and their messages written straight
into the store's files, laid out as the store lays them out, without the per-file ``fsync``,
the locks and the checks that creating them through the API pays. A fill, not a store
operation: ``benchmarks/fill_files.py`` is its user.

Usage::

    async with await FileStore.connect(directory):
        pass  # the marker, the directories and an empty session list
    write_sessions(directory, [(session, [message, ...]), ...])
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from mofa.persistence._base import EncodedMessage
from mofa.persistence._codec import encode_json, format_time
from mofa.persistence._entities import Session
from mofa.persistence.backends._toolkit import placeholder_agent
from mofa.persistence.backends.files._durable import DIR_MODE, FILE_MODE, write_all
from mofa.persistence.backends.files._layout import Layout
from mofa.persistence.backends.files._listing import listing_line
from mofa.persistence.backends.files._log import summary_bytes
from mofa.persistence.backends.files._records import (
    agent_bytes,
    header_bytes,
    index_bytes,
    message_line,
)

__all__ = ["write_sessions"]


def write_sessions(
    directory: Path, sessions: Iterable[tuple[Session, Sequence[EncodedMessage]]]
) -> None:
    """Write ``sessions``, each with its messages, into the file store in ``directory``.

    Each session gets the files that creating it and appending its messages one at a time
    would leave: a placeholder record for its agent (unless the agent has one), its header
    and index entry, a message log (seq 1, 2, … each written at the message's own time), an
    empty state log, a summary, and its line in the session list.

    The store must exist in format 2 (opened once with :meth:`FileStore.connect`) and no
    program may use it meanwhile; sessions must be new to it and come in creation order,
    each one's messages in time order. Nothing is fsynced.
    """
    layout = Layout.at(directory)
    made: set[Path] = set()  # agents' directories
    agents: set[str] = set()  # agents whose record exists
    listing: list[bytes] = []
    for session, messages in sessions:
        files = layout.files(session.agent_id, session.session_id)
        if files.directory not in made:
            files.directory.mkdir(mode=DIR_MODE, exist_ok=True)
            made.add(files.directory)
        if session.agent_id is not None and session.agent_id not in agents:
            agents.add(session.agent_id)
            if not layout.agent_path(session.agent_id).exists():
                agent = placeholder_agent(session)
                _write(layout.agent_path(session.agent_id), agent_bytes(agent))
        metadata_json = encode_json(session.metadata, "session metadata")
        _write(files.header, header_bytes(session, metadata_json))
        _write(
            layout.index_path(session.session_id),
            index_bytes(session.session_id, session.agent_id),
        )
        lines: list[bytes] = []
        stamp = ""
        for seq, message in enumerate(messages, 1):
            stamp = format_time(message.timestamp)
            lines.append(message_line(message, seq, seq, stamp, stamp))
        log = b"".join(lines)
        _write(files.messages, log)
        _write(files.states, b"")
        if lines:
            _write(files.summary, summary_bytes(len(lines), len(log), stamp))
        listing.append(
            listing_line(
                format_time(session.created_at),
                session.session_id,
                session.agent_id,
                session.user_id,
                session.tenant_id,
            )
        )
    fd = os.open(layout.listing, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        write_all(fd, b"".join(listing))
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    """Create (or replace the content of) the 0600 file ``path`` with ``data``; no fsync."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, FILE_MODE)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
