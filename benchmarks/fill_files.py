"""A file store filled for :mod:`benchmarks.session_list`: the same sessions and messages the
raw SQL modules' ``bulk_load`` writes, laid out as the file store lays them out.

There is no driver to be "raw" with here, so this writes the store's own files directly,
through the file store's fill helper (:func:`write_sessions`: its header, index entry,
message log, summary and session-list line per session, by the store's own encoders)
without the per-file ``fsync`` a real creation pays: a fill, not a measurement. The result
opens and lists like a store built through the API.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mofa.persistence import Role, Session
from mofa.persistence._base import EncodedMessage
from mofa.persistence.backends.files._bulk import write_sessions
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
        write_sessions(self.directory, _sessions(sessions, messages_per_session, users))


def _sessions(
    sessions: int, messages_per_session: int, users: int
) -> Iterator[tuple[Session, list[EncodedMessage]]]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(sessions):
        created = base + timedelta(milliseconds=index)
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
        messages = [
            EncodedMessage(
                Role.USER if seq % 2 else Role.ASSISTANT,
                f"message {seq} of session {index}",
                {},
                "{}",
                created,
            )
            for seq in range(1, messages_per_session + 1)
        ]
        yield session, messages
