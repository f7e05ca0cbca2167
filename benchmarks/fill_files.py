"""A file store filled for :mod:`benchmarks.session_list`: the same sessions and messages the
raw SQL modules' ``bulk_load`` writes, laid out as the file store lays them out.

There is no driver to be "raw" with here, so this writes the store's own files directly (its
header, index entry, message log, summary and session-list line per session, through the
file store's own encoders) without the per-file ``fsync`` a real creation pays: a fill, not
a measurement. The result opens and lists like a store built through the API.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mofa.persistence import Role, Session
from mofa.persistence._base import EncodedMessage
from mofa.persistence._codec import format_time
from mofa.persistence.backends.files import _layout, _listing, _log, _records
from mofa.persistence.locations import directory_url


class Raw:
    """The ``Raw.open()`` / ``bulk_load`` / ``url`` / ``close()`` part of a raw module."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = directory_url(directory)

    @classmethod
    async def open(cls) -> Raw:
        from mofa.persistence import FileStore

        directory = Path(tempfile.mkdtemp(prefix="mofa-bench-files-")) / "store"
        async with await FileStore.connect(directory):
            pass  # the marker, the directories and an empty session list
        return cls(directory)

    async def close(self) -> None:
        shutil.rmtree(self.directory.parent, ignore_errors=True)

    async def bulk_load(self, sessions: int, messages_per_session: int, users: int) -> None:
        base = datetime(2026, 1, 1, tzinfo=UTC)
        root = self.directory
        (root / "sessions" / _layout.encode_name("bulk-agent")).mkdir(mode=0o700)
        listing: list[bytes] = []
        for index in range(sessions):
            created = base + timedelta(milliseconds=index)
            stamp = format_time(created)
            session = Session(
                f"bulk-{index:07d}",
                "bulk-agent",
                f"user-{index % users}",
                None,
                "active",
                {},
                0,
                created,
                created,
            )
            paths = _layout.SessionFiles.at(root / "sessions", "bulk-agent", session.session_id)
            paths.header.write_bytes(_records.header_bytes(session, "{}"))
            (root / "index" / f"{_layout.encode_name(session.session_id)}.json").write_bytes(
                _records.index_bytes(session.session_id, "bulk-agent")
            )
            log = b"".join(
                _records.message_line(
                    EncodedMessage(
                        Role.USER if seq % 2 else Role.ASSISTANT,
                        f"message {seq} of session {index}",
                        {},
                        "{}",
                        created,
                    ),
                    seq,
                    seq,
                    stamp,
                    stamp,
                )
                for seq in range(1, messages_per_session + 1)
            )
            paths.messages.write_bytes(log)
            paths.states.write_bytes(b"")
            paths.summary.write_bytes(_log.summary_bytes(messages_per_session, len(log), stamp))
            listing.append(
                _listing.listing_line(
                    stamp, session.session_id, "bulk-agent", session.user_id, None
                )
            )
        with open(root / _layout.LISTING_FILE, "ab") as listed:
            listed.write(b"".join(listing))
