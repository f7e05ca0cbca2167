"""``mofa session export``: streamed, and atomic, on a real 100,000-message SQLite session.

* streaming: the peak of Python allocations during the export (tracemalloc) stays far below the
  size of the file written — holding the messages, or the text, would exceed it;
* atomicity: a write that fails part-way (a file size limit) or a process killed mid-export
  leaves an existing export untouched and no half-written file under the target name.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from mofa.persistence import NewMessage, open_store
from tests._cli import MOFA, mofa, one_error_line

BIG = "big-session"
BIG_COUNT = 100_000
#: PyYAML emits about 5,000 messages a second (25 s for BIG); YAML streams the same way.
MEDIUM = "medium-session"
MEDIUM_COUNT = 20_000
T0 = datetime(2024, 2, 28, 10, 30, tzinfo=UTC)

pytestmark = [pytest.mark.sqlite, pytest.mark.slow]


def content(seq: int) -> str:
    return f"message {seq}: " + "some conversation text to give the export a realistic size " * 2


async def _fill(url: str) -> None:
    async with await open_store(url) as store:
        await store.create_session(
            BIG, agent_id="bulk-agent", user_id="u1", metadata={"purpose": "export test"}
        )
        batch = 5_000
        for start in range(0, BIG_COUNT, batch):
            await store.append_messages(
                BIG,
                [
                    NewMessage(
                        "user" if seq % 2 else "assistant",
                        content(seq),
                        timestamp=T0 + timedelta(seconds=seq),
                    )
                    for seq in range(start + 1, start + batch + 1)
                ],
            )
        await store.create_session(MEDIUM, agent_id="bulk-agent")
        for start in range(0, MEDIUM_COUNT, batch):
            await store.append_messages(
                MEDIUM,
                [
                    NewMessage("user", content(seq), timestamp=T0 + timedelta(seconds=seq))
                    for seq in range(start + 1, start + batch + 1)
                ],
            )
        await store.create_session("small", agent_id="bulk-agent")
        await store.append_message("small", "user", "hello", timestamp=T0)


@pytest.fixture(scope="module")
def big_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite://{tmp_path_factory.mktemp('big') / 'big.db'}"
    asyncio.run(_fill(url))
    return url


def test_a_100000_message_export_streams(big_url: str, tmp_path: Path) -> None:
    target = tmp_path / "big.json"
    tracemalloc.start()
    try:
        result = mofa("session", "export", BIG, "-o", str(target), "-f", "json", url=big_url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert f"  ✓ Exported {BIG_COUNT} messages\n" in result.stderr
    size = target.stat().st_size
    assert size > 20_000_000
    # Every message is written once; the messages and the text are never all held at once.
    assert peak < size / 10, f"peak {peak:,} bytes for a {size:,}-byte export"
    print(f"JSON export: {size:,} bytes, peak {peak:,} bytes traced")
    with target.open(encoding="utf-8") as handle:
        document = json.load(handle)
    messages = document["messages"]
    assert len(messages) == BIG_COUNT
    assert [m["content"] for m in messages[:2]] == [content(1), content(2)]
    assert messages[-1] == {
        "role": "assistant",
        "content": content(BIG_COUNT),
        "timestamp": (T0 + timedelta(seconds=BIG_COUNT)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "seq": BIG_COUNT,
        "metadata": {},
    }
    assert all(m["content"] == content(i) for i, m in enumerate(messages, start=1))


def test_a_yaml_export_streams_and_reads_back(big_url: str, tmp_path: Path) -> None:
    target = tmp_path / "medium.yaml"
    tracemalloc.start()
    try:
        result = mofa("session", "export", MEDIUM, "-o", str(target), "-f", "yaml", url=big_url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    size = target.stat().st_size
    # Holding the 20,000 messages alone would take several times the file's size.
    assert peak < size / 2, f"peak {peak:,} bytes for a {size:,}-byte export"
    print(f"YAML export: {size:,} bytes, peak {peak:,} bytes traced")
    with target.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=yaml.CSafeLoader)
    assert [m["content"] for m in document["messages"]] == [
        content(seq) for seq in range(1, MEDIUM_COUNT + 1)
    ]


def export_big(url: str, target: Path) -> list[str]:
    """The ``mofa session export`` command line of the big session to ``target`` as JSON."""
    command = ["session", "export", BIG, "-o", str(target), "-f", "json"]
    return [str(MOFA), "--database-url", url, *command]


def test_a_write_that_fails_part_way_keeps_the_old_file(big_url: str, tmp_path: Path) -> None:
    target = tmp_path / "exports" / "big.json"
    target.parent.mkdir()
    target.write_text("previous export\n", encoding="utf-8")
    # The shell caps file sizes at 2 MB and ignores SIGXFSZ (inherited through exec), so a
    # write past the cap fails with EFBIG in mofa, part-way through the export.
    limited = 'trap "" XFSZ; ulimit -f 2000; exec "$0" "$@"'
    process = subprocess.run(
        ["bash", "-c", limited, *export_big(big_url, target)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert process.returncode == 1, process.stderr
    assert process.stdout == ""
    assert process.stderr.splitlines()[-1] == (
        f"Error: Cannot write the export to {target}: File too large."
    )
    assert target.read_text(encoding="utf-8") == "previous export\n"
    assert [path.name for path in target.parent.iterdir()] == ["big.json"]


def test_a_killed_export_leaves_the_old_file_whole(big_url: str, tmp_path: Path) -> None:
    target = tmp_path / "big.json"
    target.write_text("previous export\n", encoding="utf-8")
    process = subprocess.Popen(
        export_big(big_url, target),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        partial: list[Path] = []
        while time.monotonic() < deadline and process.poll() is None:
            partial = [p for p in tmp_path.iterdir() if p.name.startswith(".big.json.")]
            if partial and partial[0].stat().st_size > 1_000_000:
                break
            time.sleep(0.01)
        assert partial, "the export never started writing its temporary file"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    # Only the temporary file can be half-written; the target is the old file, whole.
    assert target.read_text(encoding="utf-8") == "previous export\n"


def test_a_new_export_replaces_an_old_longer_one_completely(big_url: str, tmp_path: Path) -> None:
    target = tmp_path / "small.json"
    target.write_text("x" * 100_000, encoding="utf-8")
    target.chmod(0o600)
    result = mofa("session", "export", "small", "-o", str(target), "-f", "json", url=big_url)
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text(encoding="utf-8"))["messages"] == [
        {
            "role": "user",
            "content": "hello",
            "timestamp": "2024-02-28T10:30:00.000000Z",
            "seq": 1,
            "metadata": {},
        }
    ]
    # Conversations are private: the export is readable by its owner only.
    assert target.stat().st_mode & 0o777 == 0o600


def test_export_of_a_missing_session_keeps_an_existing_file(big_url: str, tmp_path: Path) -> None:
    target = tmp_path / "keep.json"
    target.write_text("keep me\n", encoding="utf-8")
    result = mofa("session", "export", "no-such", "-o", str(target), "-f", "yaml", url=big_url)
    assert result.exit_code == 1
    assert one_error_line(result) == "Error: Session not found: no-such"
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert [path.name for path in tmp_path.iterdir()] == ["keep.json"]


# ------------------------------------------------- where -o points: links, pipes, stdout


@pytest.fixture
def small_url(tmp_path: Path) -> str:
    url = f"sqlite://{tmp_path / 'small.db'}"

    async def seed() -> None:
        async with await open_store(url) as store:
            await store.create_session("s-1")
            await store.append_message("s-1", "user", "hello")

    asyncio.run(seed())
    return url


def test_export_writes_through_a_symbolic_link(small_url: str, tmp_path: Path) -> None:
    target = tmp_path / "exports" / "real.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    result = mofa("session", "export", "s-1", "-o", str(link), "-f", "json", url=small_url)
    assert result.exit_code == 0, result.output
    assert link.is_symlink()  # the link stays; its target holds the export
    assert json.loads(target.read_text())["messages"][0]["content"] == "hello"
    assert sorted(p.name for p in target.parent.iterdir()) == ["real.json"]  # no temp left


def test_export_to_a_fifo_streams_into_it(small_url: str, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    result = mofa("session", "export", "s-1", "-o", str(fifo), "-f", "json", url=small_url)
    received, _ = reader.communicate(timeout=30)
    assert result.exit_code == 0, result.output
    assert json.loads(received)["session_id"] == "s-1"
    assert fifo.is_fifo()


def test_export_to_dash_writes_the_document_to_stdout(small_url: str) -> None:
    result = mofa("session", "export", "s-1", "-o", "-", "-f", "json", url=small_url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["messages"][0]["content"] == "hello"
    assert "✓ Session exported successfully" in result.stderr
    assert "Output: stdout" in result.stderr


def test_export_under_a_file_is_one_clear_error(small_url: str, tmp_path: Path) -> None:
    (tmp_path / "keep.json").write_text("x")
    target = tmp_path / "keep.json" / "x.json"
    result = mofa("session", "export", "s-1", "-o", str(target), "-f", "json", url=small_url)
    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"Error: Cannot write the export to {target}: one of its parent directories is a file."
    )
    assert (tmp_path / "keep.json").read_text() == "x"
