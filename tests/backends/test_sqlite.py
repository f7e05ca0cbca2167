"""What the SQLite store promises beyond the shared contract: pragmas, files, durability."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from mofa.persistence import (
    Message,
    Session,
    SqliteStore,
    StoreConnectionError,
    open_store,
)
from mofa.persistence.schema import latest_version
from tests.conftest import all_versions

pytestmark = pytest.mark.sqlite


async def _pragma(store: SqliteStore, name: str) -> object:
    """A pragma as the store's own connection sees it (per-connection pragmas)."""
    worker = store._worker

    def read(connection: sqlite3.Connection) -> object:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]

    return await worker.read(read)


async def test_pragmas_wal_full_sync_foreign_keys(tmp_path: Path) -> None:
    async with await SqliteStore.connect(f"sqlite://{tmp_path / 'p.db'}") as store:
        assert await _pragma(store, "journal_mode") == "wal"
        assert await _pragma(store, "synchronous") == 2  # FULL
        assert await _pragma(store, "foreign_keys") == 1
        busy_timeout = await _pragma(store, "busy_timeout")
        assert isinstance(busy_timeout, int)
        assert busy_timeout > 0
    # WAL is a property of the file: another connection sees it too.
    with sqlite3.connect(tmp_path / "p.db") as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_creates_file_and_parents_readable_by_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "nested" / "mofa.db"
    async with await open_store(f"sqlite://{path}") as store:
        await store.create_session("s")
        await store.append_message("s", "user", "hi")
        wal = path.with_name("mofa.db-wal")
        shm = path.with_name("mofa.db-shm")
        assert wal.exists()
        assert shm.exists()
        for file in (path, wal, shm):
            assert _mode(file) == 0o600, f"{file.name} is {oct(_mode(file))}"
    assert _mode(path.parent) & 0o077 == 0


async def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cases = {
        "sqlite://./rel.db": tmp_path / "rel.db",
        "sqlite://plain.db": tmp_path / "plain.db",
        f"sqlite://{tmp_path}/abs.db": tmp_path / "abs.db",
        "sqlite://~/in-home.db": tmp_path / "home" / "in-home.db",
    }
    for url, expected in cases.items():
        async with await SqliteStore.connect(url) as store:
            assert Path(store.path) == expected
            await store.create_session("s")
        assert expected.exists(), url
        with sqlite3.connect(expected) as check:
            assert check.execute("SELECT session_id FROM sessions").fetchall() == [("s",)]


async def test_memory_database() -> None:
    async with await open_store("sqlite::memory:") as store:
        assert isinstance(store, SqliteStore)
        assert store.applied_migrations == all_versions("sqlite")
        await store.create_session("s", agent_id="a")
        await store.append_message("s", "user", "one")
        await store.append_message("s", "assistant", "two")
        assert [m.content for m in await store.list_messages("s")] == ["one", "two"]
        assert await store.count_messages("s") == 2


async def test_schema_created_once(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 's.db'}"
    async with await SqliteStore.connect(url) as store:
        assert store.applied_migrations == tuple(range(1, latest_version("sqlite") + 1))
    async with await SqliteStore.connect(url) as store:
        assert store.applied_migrations == ()
    with sqlite3.connect(tmp_path / "s.db") as check:
        versions = check.execute("SELECT version FROM mofa_schema_migrations").fetchall()
    assert versions == [(v,) for v in range(1, latest_version("sqlite") + 1)]


async def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(StoreConnectionError, match=str(tmp_path)):
        await SqliteStore.connect(f"sqlite://{tmp_path}")


async def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("this is not a database, " * 100)
    with pytest.raises(StoreConnectionError, match="not a usable SQLite database"):
        await SqliteStore.connect(f"sqlite://{path}")


async def test_lock_held_too_long_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    async with await SqliteStore.connect(f"sqlite://{path}") as store:
        await store.create_session("s")
    store = await SqliteStore.connect(f"sqlite://{path}", busy_timeout=0.02, lock_timeout=0.2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreConnectionError, match="locked"):
            await store.append_message("s", "user", "never written")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await store.count_messages("s") == 0
    assert await store.list_messages("s") == []
    await store.close()


async def test_write_waits_for_a_lock_that_is_released(tmp_path: Path) -> None:
    """Past SQLite's own busy timeout the store backs off and retries BEGIN."""
    path = tmp_path / "busy.db"
    async with await SqliteStore.connect(f"sqlite://{path}") as store:
        await store.create_session("s")
    async with await SqliteStore.connect(
        f"sqlite://{path}", busy_timeout=0.01, lock_timeout=30
    ) as store:
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, lambda: blocker.execute("COMMIT"))
        release.start()
        try:
            message = await store.append_message("s", "user", "after the wait")
        finally:
            release.join()
            blocker.close()
        assert message.seq == 1
        assert await store.count_messages("s") == 1


async def test_event_loop_keeps_running_during_a_long_write(tmp_path: Path) -> None:
    async with await SqliteStore.connect(f"sqlite://{tmp_path / 'big.db'}") as store:
        await store.create_session("s")
        content = "x" * (10 * 1024 * 1024)
        append = asyncio.create_task(store.append_message("s", "user", content))
        ticks_while_writing = 0
        while not append.done():
            await asyncio.sleep(0)
            if not append.done():
                ticks_while_writing += 1
        message = append.result()
        assert message.seq == 1
        # A store that blocked the loop would finish the append in the task's first step,
        # before this loop ever ran.
        assert ticks_while_writing > 0
        stored = await store.list_messages("s")
        assert stored[0].content == content


async def test_close_finishes_pending_work_and_stops_the_thread(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'close.db'}"
    store = await SqliteStore.connect(url)
    await store.create_session("s")
    tasks = [asyncio.create_task(store.append_message("s", "user", f"m{n}")) for n in range(50)]
    await asyncio.sleep(0)  # each task has now handed its transaction to the worker
    await store.close()
    assert not store._worker._thread.is_alive()
    results = await asyncio.gather(*tasks)
    assert sorted(m.seq for m in results) == list(range(1, 51))
    async with await SqliteStore.connect(url) as reopened:
        assert await reopened.count_messages("s") == 50


_KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from mofa.persistence import open_store

    async def writer(store, task):
        n = 0
        while True:
            content = f"t{task}:{n}"
            message = await store.append_message("victim", "user", content)
            print(message.seq, content, flush=True)
            n += 1

    async def main(url, tasks):
        store = await open_store(url)
        await asyncio.gather(*(writer(store, task) for task in range(tasks)))

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


@pytest.mark.parametrize("tasks", [1, 4], ids=["one-writer", "four-concurrent-writers"])
async def test_sigkill_loses_no_acknowledged_append(tmp_path: Path, tasks: int) -> None:
    """Every append the child printed (= was acknowledged) is there after kill -9.

    With four concurrent writers the appends share commits, so this covers grouped commits.
    """
    url = f"sqlite://{tmp_path / 'kill.db'}"
    async with await SqliteStore.connect(url) as store:
        await store.create_session("victim")
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, url, str(tasks)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged: dict[int, str] = {}
    assert child.stdout is not None
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged) < 300 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            seq, content = line.split()
            acknowledged[int(seq)] = content
    finally:
        os.kill(child.pid, signal.SIGKILL)
        rest, err = child.communicate(timeout=30)
    for line in rest.splitlines():  # each line went out in one write(): none is cut
        seq, content = line.split()
        acknowledged[int(seq)] = content
    assert child.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 300, err
    async with await SqliteStore.connect(url) as store:
        stored = {m.seq: m.content for m in await store.list_messages("victim")}
        session = await store.get_session("victim")
    assert session is not None
    for acked_seq, acked_content in acknowledged.items():
        assert stored.get(acked_seq) == acked_content, (
            f"acknowledged seq {acked_seq} ({acked_content}) was lost"
        )
    # Nothing half-written either: the count matches the rows, with no gap.
    assert sorted(stored) == list(range(1, len(stored) + 1))
    assert session.message_count == len(stored)


async def test_writes_committed_together_still_fail_alone(tmp_path: Path) -> None:
    """Queued writes share a commit, but each one succeeds or fails on its own."""
    from mofa.persistence import SessionExistsError, SessionNotFoundError

    async with await SqliteStore.connect(f"sqlite://{tmp_path / 'group.db'}") as store:
        await store.create_session("s")
        worker = store._worker
        group_sizes: list[int] = []
        run_writes = worker._run_writes

        def spy(group: list[Any]) -> None:
            group_sizes.append(len(group))
            run_writes(group)

        worker._run_writes = spy  # type: ignore[method-assign]
        calls: list[Awaitable[Message | Session]] = [
            store.append_message("s", "user", f"m{n}") for n in range(20)
        ]
        calls.insert(10, store.append_message("missing", "user", "lost"))
        calls.insert(5, store.create_session("s"))
        calls.append(store.create_session("t"))
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(results[5], SessionExistsError)
        assert isinstance(results[11], SessionNotFoundError)
        succeeded = [r for r in results if not isinstance(r, BaseException)]
        appended = [r for r in succeeded if isinstance(r, Message)]
        assert appended == succeeded[:-1]  # all but create_session("t"), last
        assert [m.seq for m in appended] == list(range(1, 21))
        assert [m.content for m in await store.list_messages("s")] == [f"m{n}" for n in range(20)]
        assert await store.count_messages("s") == 20
        assert await store.get_session("t") is not None
        assert await store.get_session("missing") is None
        assert group_sizes, "the writes were never grouped; this test checked nothing"


async def test_read_only_database_is_permission_denied(tmp_path: Path) -> None:
    """SQLite's "readonly" answer becomes PermissionDeniedError and changes nothing.

    (Tests run as root, which ignores file modes, so query_only stands in for a read-only
    file: SQLite answers both with the same SQLITE_READONLY error.)
    """
    from mofa.persistence import PermissionDeniedError

    async with await SqliteStore.connect(f"sqlite://{tmp_path / 'ro.db'}") as store:
        await store.create_session("s")
        worker = store._worker
        await worker.read(lambda connection: connection.execute("PRAGMA query_only = ON"))
        with pytest.raises(PermissionDeniedError, match=r"ro\.db"):
            await store.append_message("s", "user", "refused")
        assert await store.count_messages("s") == 0


async def test_unknown_or_bad_options_are_refused(tmp_path: Path) -> None:
    from mofa.persistence import InvalidInputError

    url = f"sqlite://{tmp_path / 'opts.db'}"
    with pytest.raises(InvalidInputError, match="pool_size"):
        await open_store(url, pool_size=5)
    with pytest.raises(InvalidInputError, match="busy_timeout"):
        await SqliteStore.connect(url, busy_timeout=-1)
    assert not (tmp_path / "opts.db").exists()
