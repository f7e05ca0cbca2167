"""The file store's session list (format 2): listing reads only the sessions it returns, in
the same order as every other backend, and survives crashes, deletions, two writing
processes and stores written in format 1."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mofa.persistence import FileStore, QueryError, Session
from mofa.persistence import _base as store_module
from mofa.persistence.backends.files import STORE_MARKER, _listing
from mofa.persistence.backends.files._layout import LISTING_FILE
from mofa.persistence.backends.files._listing import COMPACT_AFTER
from mofa.persistence.backends.files._tree import FileTree
from tests.backends.test_files import print_without_write_access

pytestmark = pytest.mark.files

FILTERS = ("agent_id", "user_id", "tenant_id")


@pytest.fixture
def header_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The session headers the store opens from now on (file names)."""
    opened: list[str] = []
    real = FileTree.read

    def counting(tree: FileTree, path: Path) -> bytes | None:
        if path.parent.parent.name == "sessions" and path.name.count(".") == 1:
            opened.append(path.name)
        return real(tree, path)

    monkeypatch.setattr(FileTree, "read", counting)
    return opened


def keys(sessions: list[Session]) -> list[tuple[datetime, str]]:
    return [(s.created_at, s.session_id) for s in sessions]


async def fill(store: FileStore, count: int, *, seed: int = 7) -> list[Session]:
    """``count`` sessions over 3 agents (and none), 5 users (and none) and 2 tenants."""
    rng = random.Random(seed)
    created = []
    for n in range(count):
        created.append(
            await store.create_session(
                f"s{rng.randrange(10**6):06d}-{n}",  # ids not in creation order
                agent_id=rng.choice(["a0", "a1", "a2", None]),
                user_id=rng.choice(["u0", "u1", "u2", "u3", "u4", None]),
                tenant_id=rng.choice(["t0", "t1", None]),
            )
        )
    return created


def to_format_1(directory: Path) -> None:
    """Turn a store into what format 1 wrote: no session list, marker 1."""
    (directory / LISTING_FILE).unlink()
    (directory / STORE_MARKER).write_text('{"format":1}\n')


def expected(
    sessions: list[Session], limit: int | None = None, offset: int = 0, **filters: str
) -> list[tuple[datetime, str]]:
    matching = [s for s in sessions if all(getattr(s, k) == v for k, v in filters.items())]
    ordered = sorted(keys(matching), reverse=True)
    return ordered[offset : None if limit is None else offset + limit]


async def test_listing_opens_only_the_headers_it_returns(
    tmp_path: Path, header_reads: list[str]
) -> None:
    async with await FileStore.connect(tmp_path / "data") as store:
        created = await fill(store, 300)
        header_reads.clear()
        newest = await store.list_sessions(limit=10)
        assert keys(newest) == expected(created, 10)
        assert len(header_reads) == 10
        header_reads.clear()
        page = await store.list_sessions(user_id="u3", limit=5, offset=4)
        assert keys(page) == expected(created, 5, 4, user_id="u3")
        assert len(header_reads) == 9  # the 4 skipped ones are checked to exist
        header_reads.clear()
        assert await store.list_sessions(user_id="nobody", limit=10) == []
        assert header_reads == []


async def test_a_format_1_store_opened_read_only_is_listed_from_every_header(
    tmp_path: Path, header_reads: list[str]
) -> None:
    directory = tmp_path / "data"
    async with await FileStore.connect(directory) as store:
        created = await fill(store, 60)
    to_format_1(directory)
    async with await FileStore.connect(directory, create_schema=False) as store:
        assert store.applied_migrations == ()
        header_reads.clear()
        assert keys(await store.list_sessions(limit=10)) == expected(created, 10)
        assert len(header_reads) == 60  # the control: format 1 reads them all
    assert not (directory / LISTING_FILE).exists()
    assert json.loads((directory / STORE_MARKER).read_text()) == {"format": 1}


def test_a_format_1_store_this_user_may_only_read_is_listed_without_upgrading(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "data"

    async def seed() -> None:
        async with await FileStore.connect(directory) as store:
            for n in range(3):
                await store.create_session(f"s{n}")

    asyncio.run(seed())
    to_format_1(directory)
    listed = print_without_write_access(
        directory, directory, "[s.session_id for s in await store.list_sessions()]"
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "['s2', 's1', 's0']\n"
    assert not (directory / LISTING_FILE).exists()
    assert json.loads((directory / STORE_MARKER).read_text()) == {"format": 1}


async def test_a_format_1_store_is_upgraded_on_its_first_writable_open(
    tmp_path: Path, header_reads: list[str]
) -> None:
    directory = tmp_path / "data"
    async with await FileStore.connect(directory) as store:
        created = await fill(store, 80)
        await store.delete_session(created[5].session_id)
        del created[5]
    to_format_1(directory)
    async with await FileStore.connect(directory) as store:
        assert store.applied_migrations == (2,)
        header_reads.clear()
        assert keys(await store.list_sessions(limit=7)) == expected(created, 7)
        assert len(header_reads) == 7
        assert keys(await store.list_sessions()) == expected(created)
        created.append(await store.create_session("after", user_id="u0"))
        assert (await store.list_sessions(limit=1))[0].session_id == "after"
    assert json.loads((directory / STORE_MARKER).read_text()) == {"format": 2}
    async with await FileStore.connect(directory) as store:
        assert store.applied_migrations == ()
        assert keys(await store.list_sessions(user_id="u0")) == expected(created, user_id="u0")


async def test_an_upgrade_cut_short_keeps_the_lines_already_listed(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    async with await FileStore.connect(directory) as store:
        created = await fill(store, 20)
    # A list written (here: with one session only, and a torn last line) but the marker
    # still 1: as if the upgrade stopped between the two, and then a writer added a line.
    lines = (directory / LISTING_FILE).read_bytes().splitlines(keepends=True)
    (directory / LISTING_FILE).write_bytes(lines[3] + lines[4][:10])
    (directory / STORE_MARKER).write_text('{"format":1}\n')
    async with await FileStore.connect(directory) as store:
        assert store.applied_migrations == (2,)
        assert keys(await store.list_sessions()) == expected(created)
    listed = [json.loads(line) for line in (directory / LISTING_FILE).read_bytes().splitlines()]
    assert len(listed) == 20
    assert [e["created_at"] for e in listed] == sorted(e["created_at"] for e in listed)


async def test_order_ties_and_every_filter_match_the_other_backends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Creation times that tie and that go backwards (a clock stepped back): the list keeps
    # creation order by giving a late session the last listed time, and says so.
    base = datetime(2026, 1, 1, tzinfo=UTC)
    times = iter([base + timedelta(seconds=s) for s in [5, 5, 5, 3, 9, 9, 1, 9, 12] * 20])
    monkeypatch.setattr(store_module, "utc_now", lambda: next(times))
    async with await FileStore.connect(tmp_path / "data") as store:
        created = await fill(store, 180, seed=11)
        for session in created:
            stored = await store.get_session(session.session_id)
            assert stored is not None
            assert (stored.created_at, stored.updated_at) == (session.created_at,) * 2
        assert [s.created_at for s in created] == sorted(s.created_at for s in created)
        assert len({s.created_at for s in created}) < 20  # many ties
        combinations = itertools.chain.from_iterable(
            itertools.combinations(FILTERS, n) for n in range(4)
        )
        for names in combinations:
            values = {"agent_id": "a1", "user_id": "u2", "tenant_id": "t0"}
            filters: dict[str, Any] = {name: values[name] for name in names}
            for limit, offset in [(None, 0), (3, 0), (4, 2), (50, 7)]:
                got = await store.list_sessions(limit=limit, offset=offset, **filters)
                assert keys(got) == expected(created, limit, offset, **filters), (filters, limit)


async def test_deleted_half_created_and_recreated_sessions_are_listed_once(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "data"
    async with await FileStore.connect(directory) as store:
        await store.create_session("kept", user_id="u")
        await store.create_session("gone", user_id="u")
        await store.create_session("again", user_id="u")
        assert await store.delete_session("gone")
        assert await store.delete_session("again")
        recreated = await store.create_session("again", user_id="u")
        # A creation killed after its list line and before its header: the line stays.
        with (directory / LISTING_FILE).open("ab") as listing:
            listing.write(
                b'{"created_at":"2999-01-01 00:00:00.000000","session_id":"ghost",'
                b'"agent_id":null,"user_id":"u","tenant_id":null}\n'
            )
        listed = await store.list_sessions(user_id="u")
        assert [s.session_id for s in listed] == ["again", "kept"]
        assert listed[0].created_at == recreated.created_at
        # The ghost's id is free, and its creation is listed once (after the ghost's time).
        ghost = await store.create_session("ghost", user_id="u")
        assert ghost.created_at == datetime(2999, 1, 1, tzinfo=UTC)
        listed = await store.list_sessions(user_id="u")
        assert [s.session_id for s in listed] == ["ghost", "again", "kept"]


async def test_a_recreation_given_the_old_lines_time_is_not_listed_under_the_old_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The clock steps back between a deletion and the creation of the same id for another
    # user: the creation takes the last listed time, the deleted session's own line's.
    base = datetime(2026, 1, 1, tzinfo=UTC)
    times = iter(base + timedelta(seconds=s) for s in [1, 10, 5])
    monkeypatch.setattr(store_module, "utc_now", lambda: next(times))
    async with await FileStore.connect(tmp_path / "data") as store:
        await store.create_session("older", user_id="alice")
        await store.create_session("x", user_id="alice")
        assert await store.delete_session("x")
        await store.create_session("x", user_id="bob")
        listed = await store.list_sessions(user_id="alice")
        assert [(s.session_id, s.user_id) for s in listed] == [("older", "alice")]
        assert [s.session_id for s in await store.list_sessions(user_id="bob")] == ["x"]


_CREATE_AND_DELETE_X = textwrap.dedent(
    """
    import asyncio, sys
    from mofa.persistence import open_store

    async def main(url):
        async with await open_store(url) as store:
            await store.create_session("x", user_id="alice")
            await store.delete_session("x")

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_a_creation_overtaken_by_another_process_is_listed_under_its_own_user(
    tmp_path: Path,
) -> None:
    # No clock change: this process takes its creation time, then waits for its only worker
    # while another process creates and deletes the same id for another user; the late
    # creation takes that line's time.
    directory = tmp_path / "data"
    async with await FileStore.connect(directory, max_workers=1) as store:
        await store.create_session("older", user_id="alice")
        release = threading.Event()
        busy = asyncio.ensure_future(store._run(release.wait))
        creating = asyncio.ensure_future(store.create_session("x", user_id="bob"))
        await asyncio.sleep(0.05)  # create_session has taken its time and waits for a worker
        other = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", _CREATE_AND_DELETE_X, f"file://{directory}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.returncode == 0, other.stderr
        release.set()
        await busy
        created = await creating
        listed = await store.list_sessions(user_id="alice")
        assert [(s.session_id, s.user_id) for s in listed] == [("older", "alice")]
        [bob] = await store.list_sessions(user_id="bob")
        assert (bob.session_id, bob.created_at) == ("x", created.created_at)


async def test_a_damaged_list_says_how_to_rebuild_it(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    async with await FileStore.connect(directory) as store:
        created = await fill(store, 12)
    lines = (directory / LISTING_FILE).read_bytes().splitlines(keepends=True)
    lines[4] = b"#" * (len(lines[4]) - 1) + b"\n"
    (directory / LISTING_FILE).write_bytes(b"".join(lines))
    async with await FileStore.connect(directory) as store:
        assert keys(await store.list_sessions(limit=3)) == expected(created, 3)  # not reached
        with pytest.raises(
            QueryError,
            match=r"session list \(session-list\.jsonl\) has a damaged line; delete the file",
        ):
            await store.list_sessions()
    (directory / LISTING_FILE).unlink()
    async with await FileStore.connect(directory) as store:
        assert store.applied_migrations == (2,)
        assert keys(await store.list_sessions()) == expected(created)


async def test_lines_of_deleted_sessions_are_compacted_away(
    tmp_path: Path, header_reads: list[str]
) -> None:
    directory = tmp_path / "data"
    gone = COMPACT_AFTER + 20
    async with await FileStore.connect(directory) as store:
        kept = [await store.create_session(f"kept-{n}", user_id="u") for n in range(5)]
        for n in range(gone):
            await store.create_session(f"gone-{n}", user_id="u")
            await store.delete_session(f"gone-{n}")
        # A creation under way in another process: its line and index entry, no header yet.
        with (directory / LISTING_FILE).open("ab") as listing:
            listing.write(
                b'{"created_at":"2999-01-01 00:00:00.000000","session_id":"pending",'
                b'"agent_id":null,"user_id":"u","tenant_id":null}\n'
            )
        (directory / "index" / "pending.json").write_text(
            '{"session_id":"pending","agent_id":null}\n'
        )
        header_reads.clear()
        assert keys(await store.list_sessions(user_id="u", limit=3)) == expected(kept, 3)
        assert len(header_reads) >= gone  # this listing met every deleted line ...
    # ... so the list was rewritten without them (close() waited for it).
    lines = [json.loads(line) for line in (directory / LISTING_FILE).read_bytes().splitlines()]
    assert [e["session_id"] for e in lines] == [s.session_id for s in kept] + ["pending"]
    async with await FileStore.connect(directory) as store:
        header_reads.clear()
        assert keys(await store.list_sessions(user_id="u", limit=3)) == expected(kept, 3)
        assert len(header_reads) == 4  # the pending line (no header yet) and 3 sessions


async def test_a_torn_last_line_is_cut_by_the_next_creation(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    async with await FileStore.connect(directory) as store:
        await store.create_session("first")
        with (directory / LISTING_FILE).open("ab") as listing:
            listing.write(b'{"created_at":"2026-')  # a write cut short by a crash
        assert [s.session_id for s in await store.list_sessions()] == ["first"]
        await store.create_session("second")
        assert [s.session_id for s in await store.list_sessions()] == ["second", "first"]
    data = (directory / LISTING_FILE).read_bytes()
    assert data.endswith(b"\n")
    assert [json.loads(line)["session_id"] for line in data.splitlines()] == ["first", "second"]


async def test_a_removed_list_is_read_around_then_rebuilt(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    async with await FileStore.connect(directory) as store:
        created = await fill(store, 15)
        (directory / LISTING_FILE).unlink()
        assert keys(await store.list_sessions()) == expected(created)
    async with await FileStore.connect(directory) as store:
        assert store.applied_migrations == (2,)
        assert (directory / LISTING_FILE).exists()
        assert keys(await store.list_sessions(limit=4)) == expected(created, 4)


_CREATOR = textwrap.dedent(
    """
    import asyncio, sys
    from mofa.persistence import open_store

    async def main(url, tag):
        async with await open_store(url) as store:
            await asyncio.gather(*(
                store.create_session(f"{tag}-{n:03d}", user_id=f"u{n % 3}") for n in range(60)
            ))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_two_processes_creating_sessions_keep_the_list_whole_and_ordered(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "data"
    url = f"file://{directory}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATOR, url, tag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("p", "q")
    ]
    for process in processes:
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    async with await FileStore.connect(directory) as store:
        listed = await store.list_sessions()
        assert len(listed) == 120
        assert {s.session_id for s in listed} == {f"{t}-{n:03d}" for t in "pq" for n in range(60)}
        assert keys(listed) == sorted(keys(listed), reverse=True)
        assert len(await store.list_sessions(user_id="u1")) == 40
    lines = [json.loads(line) for line in (directory / LISTING_FILE).read_bytes().splitlines()]
    assert len(lines) == 120
    assert [e["created_at"] for e in lines] == sorted(e["created_at"] for e in lines)


@pytest.mark.parametrize("block", [1, 7, 64, 65536])
def test_lines_holding_a_needle_are_found_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(_listing, "BLOCK", block)
    rng = random.Random(block)
    lines = [
        b"".join(rng.choice([b"x", b"ab", b"needle", b" "]) for _ in range(rng.randrange(40)))
        for _ in range(300)
    ]
    lines.append(b"needle" * 500)  # longer than every block
    rng.shuffle(lines)
    path = tmp_path / "list"
    for torn in (b"", b"needle, cut short"):
        path.write_bytes(b"".join(line + b"\n" for line in lines) + torn)
        with path.open("rb") as file:
            found = list(
                _listing._lines_holding_backward(file.fileno(), len(path.read_bytes()), b"needle")
            )
        assert found == [line for line in reversed(lines) if b"needle" in line]


async def test_a_listing_before_a_time_seeks_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``until`` is found by bisecting the session list (it is in creation order), not by
    reading every later line: a page deep in a long store costs what the first one does, so
    walking a store page by page (``mofa info``'s counts, a prune's scan, the doctor's
    read-back) is linear, not quadratic (88 s for 100,000 sessions before)."""
    parsed: list[bytes] = []
    real = _listing._listed

    def counting(line: bytes) -> dict[str, Any]:
        parsed.append(line)
        return real(line)

    async with await FileStore.connect(tmp_path / "data") as store:
        created = await fill(store, 600)
        ordered = sorted(created, key=lambda s: (s.created_at, s.session_id))
        monkeypatch.setattr(_listing, "_listed", counting)
        for index in (0, 1, 37, 300, 599):
            bound = ordered[index].created_at
            parsed.clear()
            page = await store.list_sessions(until=bound, limit=10)
            want = sorted((key for key in keys(created) if key[0] < bound), reverse=True)[:10]
            assert keys(page) == want
            assert len(parsed) < 40, index  # ~2 log2(600) probes, then the page
        parsed.clear()
        everything = await store.list_sessions(until=ordered[-1].created_at + timedelta(days=1))
        assert len(everything) == 600
        assert await store.list_sessions(until=ordered[0].created_at) == []
        counts = await store.get_counts()
        assert (counts.sessions, counts.messages) == (600, 0)
