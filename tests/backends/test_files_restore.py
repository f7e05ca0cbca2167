"""The file store's restore_session: the logs are written aside and put in place under the
session's lock, so a restore that fails leaves no file behind, and the session list keeps
creation-time order with a restored session's own time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mofa.persistence import FileStore, Message
from mofa.persistence.backends.files._layout import LISTING_FILE
from mofa.persistence.testing.conformance.restore import T0, a_session, some_messages

pytestmark = pytest.mark.files


def every_file(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


async def test_a_failed_restore_leaves_no_file(tmp_path: Path) -> None:
    async with await FileStore.connect(f"file://{tmp_path}") as store:
        await store.create_session("other")
        before = every_file(tmp_path)

        def failing() -> Iterator[Message]:
            yield from some_messages(count=2_000)
            raise OSError("source gone")

        with pytest.raises(OSError, match="source gone"):
            await store.restore_session(a_session(count=2_000), failing())
        assert {name for name in every_file(tmp_path) if ".restore" in name} == set()
        assert every_file(tmp_path) - before <= {"locks/restored.lock"}
        assert await store.get_session("restored") is None


async def test_the_list_keeps_creation_order_and_lists_a_replaced_session_once(
    tmp_path: Path,
) -> None:
    async with await FileStore.connect(f"file://{tmp_path}") as store:
        await store.create_session("new")
        await store.restore_session(a_session("old", count=0))
        for _ in range(3):
            await store.restore_session(a_session("old", count=0), on_conflict="replace")
    lines = (tmp_path / LISTING_FILE).read_text().splitlines()
    assert len(lines) == 2
    assert '"old"' in lines[0]
    assert T0.strftime("%Y-%m-%d %H:%M:%S.%f") in lines[0]
    async with await FileStore.connect(f"file://{tmp_path}") as store:
        assert [found.session_id for found in await store.list_sessions()] == ["new", "old"]
