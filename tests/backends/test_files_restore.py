"""The file store's restore_session: the logs are written aside and put in place under the
session's lock, so a restore that fails leaves no file behind, and the session list keeps
creation-time order with a restored session's own time."""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mofa.persistence import FileStore, Message
from mofa.persistence.backends.files._layout import LISTING_FILE
from mofa.persistence.testing.conformance.restore import T0, a_session, some_messages
from mofa.persistence.transfer import export_session
from tests._cli import MOFA, run_mofa

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


def staged(root: Path) -> list[Path]:
    """The hidden logs of restores (``.….restore``) anywhere under the store."""
    return [path for path in root.rglob("*") if path.name.endswith(".restore")]


def _big_export(source: Path, out: Path, count: int) -> bytes:
    async def go() -> bytes:
        async with await FileStore.connect(f"file://{source}") as store:
            await store.restore_session(a_session("big", count=count), some_messages("big", count))
            with out.open("wb") as file:
                await export_session(store, "big", file, format="jsonl")
            buffer = io.BytesIO()
            await export_session(store, "big", buffer, format="jsonl")
            return buffer.getvalue()

    return asyncio.run(go())


@pytest.mark.parametrize("policy", ["skip", "replace"])
def test_an_import_killed_while_staging_leaves_no_hidden_file_once_run_again(
    tmp_path: Path, policy: str
) -> None:
    """A real ``mofa session import`` killed (SIGKILL) while it writes the logs aside: its
    hidden files are removed by the next open of the store, and the import run again ends
    with exactly the source's session."""
    source, target, backup = tmp_path / "source", tmp_path / "target", tmp_path / "big.jsonl"
    expected = _big_export(source, backup, 60_000)
    url = f"file://{target}"
    asyncio.run(_open_and_close(url))  # an import needs a store to import into
    if policy == "replace":  # an older version of the session is in the way
        asyncio.run(_restore_into(url, a_session("big", count=2), some_messages("big", 2)))
    process = subprocess.Popen(
        [
            str(MOFA),
            "--database-url",
            url,
            "session",
            "import",
            str(backup),
            "--on-conflict",
            policy,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not any(path.stat().st_size > 0 for path in staged(target) if path.exists()):
        assert process.poll() is None, "the import ended before it was killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert staged(target), "the kill left no hidden file: nothing was tested"

    asyncio.run(_open_and_close(url))  # the next open clears what the dead import left
    assert staged(target) == []

    again = run_mofa(
        "--database-url", url, "session", "import", str(backup), "--on-conflict", policy
    )
    assert again.returncode == 0, again.stderr
    assert staged(target) == []
    assert _export(url, "big") == expected


async def _restore_into(url: str, session: object, records: object) -> None:
    async with await FileStore.connect(url) as store:
        await store.restore_session(session, records)  # type: ignore[arg-type]


async def _open_and_close(url: str) -> None:
    async with await FileStore.connect(url):
        pass


def _export(url: str, session_id: str) -> bytes:
    async def go() -> bytes:
        async with await FileStore.connect(url) as store:
            buffer = io.BytesIO()
            await export_session(store, session_id, buffer, format="jsonl")
            return buffer.getvalue()

    return asyncio.run(go())


async def test_a_restore_in_progress_keeps_its_hidden_files_when_another_store_opens(
    tmp_path: Path,
) -> None:
    """Only a dead restore's files are cleared: one still writing (its files locked) is not."""
    url = f"file://{tmp_path}"
    release = asyncio.Event()
    writing = asyncio.Event()

    async def records() -> AsyncIterator[Message]:
        for message in some_messages(count=3_000):
            if message.seq == 2_000:
                writing.set()
                await release.wait()
            yield message

    async with await FileStore.connect(url) as store:
        task = asyncio.create_task(store.restore_session(a_session(count=3_000), records()))
        await writing.wait()
        await asyncio.sleep(0.05)
        assert staged(tmp_path)
        async with await FileStore.connect(url) as other:  # its open clears dead restores
            await other.restore_session(a_session("second", count=1), some_messages("second", 1))
        assert staged(tmp_path)
        release.set()
        assert (await task) is not None
        assert await store.count_messages("restored") == 3_000
    assert staged(tmp_path) == []
