"""A jsonl import streams: the memory it takes does not grow with the session (measured with
tracemalloc on 3,000 and 12,000 one-kilobyte messages, on each persistent backend), and an
export streams too (one message in memory at a time; tests/cli/test_session_export.py measures
the 100,000-message case)."""

from __future__ import annotations

import io
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mofa.persistence import BaseStore, NewMessage, open_store
from mofa.persistence.transfer import export_session, import_session

pytestmark = pytest.mark.slow

T0 = datetime(2024, 2, 28, 10, 30, tzinfo=UTC)
TEXT = "a kilobyte of conversation, with some ünïcödé and 🎉 to make it honest. " * 14


async def _export_file(tmp_path: Path, count: int) -> Path:
    """A jsonl export of a session of ``count`` messages of about 1 KB each."""
    async with await open_store(f"sqlite://{tmp_path / f'source-{count}.db'}") as source:
        await source.create_session("big", agent_id="agent", tenant_id="t")
        for start in range(0, count, 5_000):
            await source.append_messages(
                "big",
                [
                    NewMessage("user", f"{seq} {TEXT}", {"n": seq}, T0 + timedelta(seconds=seq))
                    for seq in range(start + 1, min(start + 5_000, count) + 1)
                ],
            )
        path = tmp_path / f"big-{count}.jsonl"
        with path.open("wb") as out:
            await export_session(source, "big", out, format="jsonl")
    return path


async def _peak_import(store: BaseStore, path: Path) -> int:
    await store.delete_session("big")
    tracemalloc.start()
    try:
        with path.open("rb") as source:
            result = await import_session(store, source, name=path.name)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.outcome == "imported"
    return peak


async def test_a_jsonl_import_takes_flat_memory(durable_url: str, tmp_path: Path) -> None:
    small, large = await _export_file(tmp_path, 3_000), await _export_file(tmp_path, 12_000)
    async with await open_store(durable_url) as store:
        peaks = [await _peak_import(store, path) for path in (small, large)]
        assert await store.count_messages("big") == 12_000
    print(f"import peaks: {peaks[0]:,} and {peaks[1]:,} bytes for {large.stat().st_size:,}")
    # Four times the messages, about the same memory: bounded by one batch (at most
    # 1,000 records or 4 MiB of text), never by the session.
    assert peaks[1] < peaks[0] * 1.25 + 1_000_000
    assert peaks[1] < 16_000_000


async def test_a_session_larger_than_the_packet_limit_imports(store: BaseStore) -> None:
    """20 messages of 1 MB (20 MB, over MariaDB's 16 MB packet limit) in one import: the
    batches are cut by bytes, not rows."""
    megabyte = "m" * 1_000_000
    await store.create_session("wide", agent_id="agent")
    for index in range(20):  # (one append of them all would be one 20 MB write: refused)
        await store.append_message("wide", "user", f"{index}{megabyte}")
    buffer = io.BytesIO()
    await export_session(store, "wide", buffer, format="jsonl")
    await store.delete_session("wide")
    result = await import_session(store, io.BytesIO(buffer.getvalue()))
    assert (result.outcome, result.messages) == ("imported", 20)
    again = io.BytesIO()
    await export_session(store, "wide", again, format="jsonl")
    assert again.getvalue() == buffer.getvalue()
