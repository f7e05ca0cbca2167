"""What the local file store promises beyond the shared contract: layout, names, modes,
append-only logs, crash recovery and where its directory is."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mofa.persistence import (
    FileStore,
    InvalidInputError,
    NewMessage,
    QueryError,
    SchemaError,
    Session,
    SessionNotFoundError,
    StoreConnectionError,
    open_store,
)
from mofa.persistence import _base as store_module
from mofa.persistence._encoded import encode_message
from mofa.persistence.backends.files import default_data_dir, directory_url, encode_name
from mofa.persistence.backends.files._bulk import write_sessions
from mofa.persistence.backends.files._layout import NO_AGENT_DIR

pytestmark = pytest.mark.files

HOSTILE_IDS = [
    "../../etc/passwd",
    "a/b",
    "/abs",
    ".",
    "..",
    "...",
    ".hidden",
    "a.json",
    "a.messages",
    "CON",
    "con",
    "Con",
    "NUL",
    "nul",
    "aux",
    "AUX",
    "com1",
    "LPT9",
    "prn.txt",
    "Case",
    "case",
    "CASE",
    "case ",
    " ",
    "-",
    "_",
    "@none",
    "a%2Fb",
    "a%2fb",
    "%41",
    "A",
    "a~b",
    "a\\b",
    "a:b",
    "a*b?c",
    "tab\there",
    "new\nline",
    "日本語-セッション-🎉",
    "x" * 255,
    "X" * 255,
    "é" * 255,
    "🎉" * 255,
    "x" * 200 + "a",
    "x" * 200 + "b",
    "x" * 100,
    "x" * 101,
    "%" * 255,
    "agent-001:session-123",
]
RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{n}" for n in range(10)),
    *(f"lpt{n}" for n in range(10)),
}


def _tree(root: Path) -> list[Path]:
    return [Path(folder) / name for folder, dirs, files in os.walk(root) for name in dirs + files]


# --------------------------------------------------------------------------- layout


async def test_layout_is_sessions_agent_session_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await open_store(f"file://{data}") as store:
        assert isinstance(store, FileStore)
        await store.create_session("session-123", agent_id="agent-001")
        await store.create_session("session-124", agent_id="agent-001")
        await store.create_session("session-125", agent_id="agent-002")
        await store.create_session("loner")
        await store.append_message("session-123", "user", "Hello")
    assert sorted(p.name for p in (data / "sessions").iterdir()) == [
        NO_AGENT_DIR,
        "agent-001",
        "agent-002",
    ]
    assert {p.name for p in (data / "sessions" / "agent-001").glob("*.json")} == {
        "session-123.json",
        "session-124.json",
    }
    assert (data / "sessions" / "agent-002" / "session-125.json").is_file()
    assert (data / "sessions" / NO_AGENT_DIR / "loner.json").is_file()
    header = json.loads((data / "sessions" / "agent-001" / "session-123.json").read_text())
    assert header["session_id"] == "session-123"
    assert header["agent_id"] == "agent-001"
    log = data / "sessions" / "agent-001" / "session-123.messages.jsonl"
    [line] = log.read_text().splitlines()
    assert json.loads(line)["content"] == "Hello"
    assert (data / "agents" / "agent-001.json").is_file()


def test_encode_name_is_injective_bounded_and_case_safe() -> None:
    names = [encode_name(value) for value in HOSTILE_IDS]
    assert len(set(names)) == len(HOSTILE_IDS)
    assert len({name.lower() for name in names}) == len(HOSTILE_IDS)
    for value, name in zip(HOSTILE_IDS, names, strict=True):
        assert len(name.encode()) <= 141, value
        assert not set(name) & set("/\\.:"), value
        assert name.lower() not in RESERVED, value
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_%ABCDEF~"), value
    assert encode_name("session-123") == "session-123"
    assert encode_name("Case") != encode_name("case")


async def test_hostile_ids_stay_inside_and_never_share_a_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await FileStore.connect(f"file://{data}") as store:
        for session_id in HOSTILE_IDS:
            await store.create_session(session_id, agent_id=session_id, user_id=session_id)
            await store.append_message(session_id, "user", f"content of {session_id}")
            await store.save_state(session_id, {"id": session_id})
            await store.upsert_agent(session_id, name="n")
        for session_id in HOSTILE_IDS:
            assert [m.content for m in await store.list_messages(session_id)] == [
                f"content of {session_id}"
            ]
            [listed] = await store.list_sessions(agent_id=session_id)
            assert listed.session_id == session_id
            assert listed.message_count == 1
            state = await store.get_state(session_id)
            assert state is not None
            assert state.state == {"id": session_id}
            agent = await store.get_agent(session_id)
            assert agent is not None
            assert agent.id == session_id
        assert len(await store.list_sessions()) == len(HOSTILE_IDS)
        assert len(await store.list_agents()) == len(HOSTILE_IDS)
    # Nothing outside the data directory; every path resolves inside it; names fit in 255 bytes.
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    root = data.resolve()
    for path in _tree(data):
        assert path.resolve().is_relative_to(root), path
        assert not path.is_symlink(), path
        assert len(path.name.encode()) <= 255, path
        assert path.name.split(".")[0].lower() not in RESERVED, path
    # Each id has its own header, and no two names in a directory differ only in case.
    headers = [p for p in data.glob("sessions/*/*.json") if not p.name.startswith(".")]
    owners = [json.loads(p.read_text())["session_id"] for p in headers]
    assert sorted(owners) == sorted(HOSTILE_IDS)
    for folder, dirs, files in os.walk(data):
        names = dirs + files
        assert len({name.lower() for name in names}) == len(names), folder


async def test_files_are_0600_and_directories_0700(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await FileStore.connect(f"file://{data}") as store:
        await store.create_session("s", agent_id="a", metadata={"k": 1})
        await store.create_session("t")
        await store.append_message("s", "user", "x")
        await store.save_state("s", {"step": 1})
        await store.update_session("s", status="closed")
        await store.upsert_agent("b")
    paths = [data, *_tree(data)]
    assert any(p.name.endswith(".messages.jsonl") for p in paths)
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


# ----------------------------------------------------------------------- append-only


async def test_an_append_never_rewrites_earlier_bytes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await FileStore.connect(f"file://{data}") as store:
        await store.create_session("s", agent_id="a")
        await store.append_messages("s", [NewMessage("user", f"m{n}") for n in range(20)])
        log = data / "sessions" / "a" / "s.messages.jsonl"
        before = log.stat()
        first_bytes = log.read_bytes()
        for n in range(5):
            await store.append_message("s", "assistant", f"more {n}")
            after = log.stat()
            assert after.st_ino == before.st_ino
            assert after.st_size > before.st_size
            assert log.read_bytes()[: len(first_bytes)] == first_bytes
            before = after
        await store.update_session("s", status="closed", metadata={"x": 1})
        await store.save_state("s", {"step": 2})
        assert log.stat().st_ino == before.st_ino
        assert log.read_bytes()[: len(first_bytes)] == first_bytes


async def test_a_torn_last_line_is_ignored_then_replaced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = f"file://{data}"
    async with await open_store(url) as store:
        await store.create_session("s", agent_id="a")
        await store.append_messages("s", [NewMessage("user", f"m{n}") for n in range(1, 4)])
    log = data / "sessions" / "a" / "s.messages.jsonl"
    good = log.read_bytes()
    torn = b'{"seq":4,"end":4,"at":"2024-01-01 00:00:00.000000","ts":"2024-01-01 00:00'
    with open(log, "ab") as file:  # a crash in the middle of an append
        file.write(torn)
    async with await open_store(url) as store:
        assert [m.seq for m in await store.list_messages("s")] == [1, 2, 3]
        assert [m.seq for m in await store.list_recent_messages("s", limit=2)] == [2, 3]
        assert await store.count_messages("s") == 3
        session = await store.get_session("s")
        assert session is not None
        assert session.message_count == 3
        stored = await store.append_message("s", "assistant", "after the crash")
        assert stored.seq == 4
        history = await store.list_messages("s")
        assert [(m.seq, m.content) for m in history] == [
            (1, "m1"),
            (2, "m2"),
            (3, "m3"),
            (4, "after the crash"),
        ]
    content = log.read_bytes()
    assert content.startswith(good)
    assert torn not in content
    assert content.endswith(b"\n")


async def test_a_half_written_batch_is_ignored_as_a_whole(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = f"file://{data}"
    async with await open_store(url) as store:
        await store.create_session("s", agent_id="a")
        await store.append_message("s", "user", "kept")
    log = data / "sessions" / "a" / "s.messages.jsonl"
    # Two whole lines of a three-message batch (seq 2..4) reached the disk, the third did not.
    lines = [_line(seq, 4, f"lost {seq}") for seq in (2, 3)]
    with open(log, "ab") as file:
        file.write(b"".join(lines) + b'{"seq":4,"end":4,"at":"2024')
    async with await open_store(url) as store:
        assert [m.content for m in await store.list_messages("s")] == ["kept"]
        assert await store.count_messages("s") == 1
        assert (await store.append_message("s", "user", "next")).seq == 2
        assert [m.content for m in await store.list_messages("s")] == ["kept", "next"]


def _line(seq: int, end: int, content: str) -> bytes:
    return (
        json.dumps(
            {
                "seq": seq,
                "end": end,
                "at": "2024-01-01 00:00:00.000000",
                "ts": "2024-01-01 00:00:00.000000",
                "role": "user",
                "metadata": {},
                "content": content,
            }
        ).encode()
        + b"\n"
    )


async def test_a_zero_filled_page_inside_the_last_write_ends_the_log_there(
    tmp_path: Path,
) -> None:
    """After a power loss a file system may show an unsynced page as zeros, then valid
    lines after it; nothing after the damage may be believed."""
    data = tmp_path / "data"
    url = f"file://{data}"
    async with await open_store(url) as store:
        await store.create_session("s", agent_id="a")
        await store.append_messages("s", [NewMessage("user", f"m{n}") for n in range(1, 4)])
    log = data / "sessions" / "a" / "s.messages.jsonl"
    with open(log, "ab") as file:  # one group write: seq 4, a zeroed line, seq 6
        file.write(_line(4, 4, "m4") + b"\x00" * 100 + b"\n" + _line(6, 6, "m6"))
    async with await open_store(url) as store:
        assert (await store.append_message("s", "user", "next")).seq == 5
        history = await store.list_messages("s")
        assert [(m.seq, m.content) for m in history] == [
            (1, "m1"),
            (2, "m2"),
            (3, "m3"),
            (4, "m4"),
            (5, "next"),
        ]
        assert await store.count_messages("s") == 5


_KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from mofa.persistence import open_store

    async def main(url):
        async with await open_store(url) as store:
            n = 0
            while True:
                n += 1
                if n % 7 == 0:
                    from mofa.persistence import NewMessage
                    batch = [NewMessage("user", f"m{n}.{i}") for i in range(3)]
                    for message in await store.append_messages("s", batch):
                        print(message.seq, message.content, flush=True)
                else:
                    message = await store.append_message("s", "user", f"m{n}")
                    print(message.seq, message.content, flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_sigkill_loses_no_acknowledged_message(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'data'}"
    async with await open_store(url) as store:
        await store.create_session("s", agent_id="a")
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged: dict[int, str] = {}
    assert child.stdout is not None
    for line in child.stdout:
        seq, content = line.split()
        acknowledged[int(seq)] = content
        if len(acknowledged) >= 300:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    for line in child.stdout:  # acknowledgements already in the pipe count too
        seq, content = line.split()
        acknowledged[int(seq)] = content
    child.stdout.close()
    assert child.stderr is not None
    child.stderr.close()
    async with await open_store(url) as store:
        history = await store.list_messages("s")
        seqs = [m.seq for m in history]
        assert seqs == list(range(1, len(history) + 1))
        by_seq = {m.seq: m.content for m in history}
        for stored_seq, content in acknowledged.items():
            assert by_seq.get(stored_seq) == content, stored_seq
        assert await store.count_messages("s") == len(history)
        next_seq = (await store.append_message("s", "user", "after kill")).seq
        assert next_seq == len(history) + 1


# ----------------------------------------------------------------- derived data, crashes


async def test_listing_reads_no_message_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await FileStore.connect(f"file://{data}") as store:
        await store.create_session("s", agent_id="a", user_id="u")
        await store.append_messages("s", [NewMessage("user", f"m{n}") for n in range(10)])
        log = data / "sessions" / "a" / "s.messages.jsonl"
        # Same size, unreadable content: only a reader of the log would notice.
        log.write_bytes(b"#" * log.stat().st_size)
        [listed] = await store.list_sessions(user_id="u")
        assert listed.message_count == 10
        session = await store.get_session("s")
        assert session is not None
        assert session.message_count == 10
        assert await store.count_messages("s") == 10


async def test_last_n_and_pages_do_not_read_the_whole_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await FileStore.connect(f"file://{data}") as store:
        await store.create_session("s", agent_id="a")
        for n in range(1, 201):
            await store.append_message("s", "user", f"m{n}" + "-" * 500)
        log = data / "sessions" / "a" / "s.messages.jsonl"
        # Damage the middle of the first message (its "seq" prefix stays readable).
        raw = bytearray(log.read_bytes())
        at = raw.index(b'"content":"m1-') + 20
        raw[at : at + 10] = b"\x00" * 10
        log.write_bytes(bytes(raw))
        recent = await store.list_recent_messages("s", limit=5)
        assert [m.seq for m in recent] == [196, 197, 198, 199, 200]
        page = await store.list_messages("s", after_seq=150, limit=3)
        assert [m.content[:4] for m in page] == ["m151", "m152", "m153"]
        assert [m.seq for m in await store.list_messages("s", after_seq=1, limit=2)] == [2, 3]
        with pytest.raises(QueryError, match="damaged"):
            await store.list_messages("s")


async def test_a_stale_or_torn_summary_is_not_trusted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await FileStore.connect(f"file://{data}") as store:
        await store.create_session("s", agent_id="a")
        await store.append_messages("s", [NewMessage("user", "x")] * 4)
        summary = data / "sessions" / "a" / "s.summary"
        good = summary.read_bytes()
        last = await store.append_message("s", "user", "y")
        summary.write_bytes(good)  # as if the process died before updating it
        session = await store.get_session("s")
        assert session is not None
        assert session.message_count == 5
        assert session.updated_at >= last.timestamp
        summary.write_bytes(good.replace(b'"count":4', b'"count":9'))  # checksum fails
        assert await store.count_messages("s") == 5
        summary.unlink()
        assert await store.count_messages("s") == 5
        assert (await store.append_message("s", "user", "z")).seq == 6


async def test_a_crash_mid_delete_leaves_no_half_alive_session(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await FileStore.connect(f"file://{data}") as store:
        await store.create_session("s", agent_id="a")
        await store.append_message("s", "user", "old")
        await store.save_state("s", {"old": True})
        # Delete removes the header first; a crash right after leaves the rest behind.
        (data / "sessions" / "a" / "s.json").unlink()
        assert await store.get_session("s") is None
        assert await store.list_sessions() == []
        assert await store.list_messages("s") == []
        assert await store.get_state("s") is None
        assert await store.delete_session("s") is False
        await store.create_session("s", agent_id="b")
        assert (await store.append_message("s", "user", "new")).seq == 1
        assert [m.content for m in await store.list_messages("s")] == ["new"]
        assert await store.get_state("s") is None
    assert not list((data / "sessions" / "a").iterdir())


async def test_delete_removes_every_file_of_the_session(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await FileStore.connect(f"file://{data}") as store:
        await store.create_session("s", agent_id="a")
        await store.create_session("t", agent_id="a")
        await store.append_message("s", "user", "x")
        await store.save_state("s", {"k": 1})
        assert await store.delete_session("s") is True
    names = sorted(p.relative_to(data).as_posix() for p in _tree(data) if p.is_file())
    assert not [name for name in names if "/s." in name or name.startswith("index/s.")]
    assert "sessions/a/t.json" in names
    assert not (data / "locks" / "s.lock").exists()


async def test_probing_unknown_sessions_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await FileStore.connect(f"file://{data}") as store:
        before = sorted(_tree(data))
        for session_id in ("nope", "../x"):
            assert await store.get_session(session_id) is None
            assert await store.delete_session(session_id) is False
            with pytest.raises(LookupError):
                await store.append_message(session_id, "user", "x")
            with pytest.raises(LookupError):
                await store.save_state(session_id, {})
        assert sorted(_tree(data)) == before


# ---------------------------------------------------------------- directory and options


def test_default_data_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MOFA_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert default_data_dir() == tmp_path / "home" / ".local" / "share" / "mofa"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_data_dir() == tmp_path / "home" / ".local" / "share" / "mofa"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "mofa"
    monkeypatch.setenv("MOFA_DATA_DIR", "")
    assert default_data_dir() == tmp_path / "xdg" / "mofa"
    monkeypatch.setenv("MOFA_DATA_DIR", str(tmp_path / "explicit"))
    assert default_data_dir() == tmp_path / "explicit"


async def test_connect_without_url_uses_the_default_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MOFA_DATA_DIR", str(tmp_path / "mofa-data"))
    async with await FileStore.connect() as store:
        assert store.directory == tmp_path / "mofa-data"
        assert store.applied_migrations == (1, 2)
        await store.create_session("s")
    assert stat.S_IMODE((tmp_path / "mofa-data").stat().st_mode) == 0o700
    async with await FileStore.connect(tmp_path / "mofa-data") as store:
        assert store.applied_migrations == ()
        assert await store.get_session("s") is not None


async def test_relative_url_is_fixed_at_connect(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    async with await open_store("file://./rel/data") as store:
        assert isinstance(store, FileStore)
        monkeypatch.chdir("/")
        await store.create_session("s")
    assert (tmp_path / "rel" / "data" / "sessions" / NO_AGENT_DIR / "s.json").is_file()


async def test_bad_directories_and_options_are_one_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(StoreConnectionError, match="not a directory"):
        await open_store(f"file://{not_a_dir}")
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "mofa-store.json").write_text('{"format": 99}')
    with pytest.raises(SchemaError, match="upgrade mofa-sdk"):
        await open_store(f"file://{newer}")
    with pytest.raises(InvalidInputError, match="max_workers"):
        await open_store(f"file://{tmp_path / 'ok'}", pool_size=3)
    with pytest.raises(InvalidInputError, match="file://"):
        await FileStore.connect("sqlite://./x.db")


async def test_connect_takes_the_url_then_keyword_options(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with pytest.raises(TypeError):
        await FileStore.connect(f"file://{data}", 2)  # type: ignore[call-arg]
    with pytest.raises(InvalidInputError, match=r"^create_schema must be True or False"):
        await FileStore.connect(f"file://{data}", create_schema="no")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"^Unknown FileStore option 'workers'"):
        await FileStore.connect(f"file://{data}", workers=2)
    assert not data.exists()  # refused before anything is made
    async with await FileStore.connect(f"file://{data}", max_workers=1) as store:
        assert store.directory == data


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes | None]]:
    """Every entry under ``root`` (itself included): mode, size, mtime and a file's bytes."""
    entries: dict[str, tuple[int, int, int, bytes | None]] = {}
    for path in [root, *_tree(root)]:
        status = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(status.st_mode) else None
        entries[str(path.relative_to(root))] = (
            status.st_mode,
            status.st_size,
            status.st_mtime_ns,
            content,
        )
    return entries


@pytest.mark.parametrize(
    "marker",
    [b'{"format": 99}', b"not json", b"[2]", b'{"format": "2"}', b""],
    ids=["newer", "not-json", "not-an-object", "format-not-a-number", "empty"],
)
@pytest.mark.parametrize("create_schema", [True, False])
async def test_a_refused_marker_leaves_the_directory_untouched(
    tmp_path: Path, marker: bytes, create_schema: bool
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "mofa-store.json").write_bytes(marker)
    (data / "notes.txt").write_text("the user's own file")
    before = _snapshot(data)
    with pytest.raises(SchemaError, match="upgrade mofa-sdk" if b"99" in marker else "marker"):
        await FileStore.connect(f"file://{data}", create_schema=create_schema)
    assert _snapshot(data) == before


async def test_writes_are_synced_before_they_are_acknowledged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    synced: list[str] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def record(real: object) -> object:
        def sync(fd: int) -> None:
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            real(fd)  # type: ignore[operator]

        return sync

    monkeypatch.setattr(os, "fsync", record(real_fsync))
    monkeypatch.setattr(os, "fdatasync", record(real_fdatasync))
    data = (tmp_path / "data").resolve()
    async with await FileStore.connect(f"file://{data}") as store:
        synced.clear()
        await store.create_session("s", agent_id="a")
        session_dir = str(data / "sessions" / "a")
        assert str(data / "sessions" / "a" / "s.json") not in synced  # it is a renamed temp file
        assert session_dir in synced  # the rename and the new logs are made durable
        assert str(data / "index") in synced
        synced.clear()
        await store.append_message("s", "user", "x")
        assert synced == [str(data / "sessions" / "a" / "s.messages.jsonl")]
        synced.clear()
        await store.save_state("s", {"k": 1})
        assert synced == [str(data / "sessions" / "a" / "s.states.jsonl")]


async def test_delete_and_recreate_race_with_appends_from_another_store(
    tmp_path: Path,
) -> None:
    url = f"file://{tmp_path / 'data'}"
    # Two store objects: separate asyncio locks, so only flock() keeps them apart.
    async with await open_store(url) as writer, await open_store(url) as deleter:
        await writer.create_session("s", agent_id="a")

        async def append() -> None:
            for n in range(300):
                with contextlib.suppress(SessionNotFoundError):
                    await writer.append_message("s", "user", f"m{n}")

        async def churn() -> None:
            for _ in range(40):
                await deleter.delete_session("s")
                await deleter.create_session("s", agent_id="a")
                await asyncio.sleep(0)

        await asyncio.gather(append(), churn())
        history = await writer.list_messages("s")
        assert [m.seq for m in history] == list(range(1, len(history) + 1))
        assert await writer.count_messages("s") == len(history)
        assert (await deleter.append_message("s", "user", "end")).seq == len(history) + 1


async def test_group_commit_survives_cancelled_callers(tmp_path: Path) -> None:
    async with await open_store(f"file://{tmp_path / 'data'}") as store:
        await store.create_session("s")
        acknowledged: dict[int, str] = {}

        async def writer(task: int) -> None:
            for n in range(100):
                message = await store.append_message("s", "user", f"{task}:{n}")
                acknowledged[message.seq] = message.content

        tasks = [asyncio.create_task(writer(task)) for task in range(8)]
        while len(acknowledged) < 200:
            await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results[::2])
        assert all(r is None for r in results[1::2])
        history = await store.list_messages("s")
        assert [m.seq for m in history] == list(range(1, len(history) + 1))
        by_seq = {m.seq: m.content for m in history}
        for seq, content in acknowledged.items():
            assert by_seq[seq] == content
        assert len({m.content for m in history}) == len(history)  # nothing written twice
        assert (await store.append_message("s", "user", "last")).seq == len(history) + 1


async def test_a_waiting_writer_blocks_a_thread_not_the_event_loop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await FileStore.connect(f"file://{data}") as store:
        await store.create_session("s")
        await store.create_session("t")
        # Hold the session's lock as another process would.
        fd = os.open(data / "locks" / "s.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            blocked = asyncio.create_task(store.append_message("s", "user", "waits"))
            for _ in range(20):  # let it reach the worker thread and block on flock
                await asyncio.sleep(0)
            assert (await store.append_message("t", "user", "free")).seq == 1
            assert await store.list_messages("s") == []
            assert not blocked.done()
        finally:
            os.close(fd)  # releases the lock
        assert (await blocked).seq == 1


async def test_close_finishes_appends_already_accepted(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'data'}"
    store = await open_store(url)
    await store.create_session("s")
    tasks = [asyncio.create_task(store.append_message("s", "user", f"m{n}")) for n in range(8)]
    await asyncio.sleep(0)  # every task has handed its message over
    await store.close()
    assert sorted([(await task).seq for task in tasks]) == list(range(1, 9))
    async with await open_store(url) as reopened:
        assert await reopened.count_messages("s") == 8


_CREATOR = textwrap.dedent(
    """
    import asyncio, sys
    from mofa.persistence import SessionExistsError, open_store

    async def main(url, tag):
        async with await open_store(url) as store:
            try:
                await store.create_session("same", agent_id="a", metadata={"by": tag})
            except SessionExistsError:
                print("exists")
            else:
                print("created")

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_one_of_several_processes_creating_one_id_wins(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'data'}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATOR, url, f"p{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    outcomes = {}
    for n, process in enumerate(processes):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outcomes[f"p{n}"] = out.strip()
    winners = [tag for tag, outcome in outcomes.items() if outcome == "created"]
    assert len(winners) == 1, outcomes
    assert sorted(outcomes.values()) == ["created", "exists", "exists", "exists"]
    async with await open_store(url) as store:
        session = await store.get_session("same")
        assert session is not None
        assert session.metadata == {"by": winners[0]}


async def test_a_directory_path_with_url_characters_opens_that_directory(tmp_path: Path) -> None:
    directory = tmp_path / "odd ?name %41 #x"
    async with await FileStore.connect(directory) as store:
        assert store.directory == directory
        await store.create_session("s")
    assert (directory / "mofa-store.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == [directory.name]  # nothing beside it
    async with await open_store(directory_url(directory)) as again:
        assert await again.get_session("s") is not None


#: Runs a command as this user without the capabilities that let root ignore file modes, so
#: a read-only directory is read-only even in a root container.
WITHOUT_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def print_without_write_access(
    read_only: Path, root: Path, expression: str
) -> subprocess.CompletedProcess[str]:
    """Print ``expression`` (it may await calls on ``store``, the file store in ``root``) from
    a process that may not write ``read_only`` (made 0500 meanwhile, even for root)."""
    code = textwrap.dedent(f"""
        import asyncio
        from mofa.persistence import open_store
        async def main():
            async with await open_store("file://{root}") as store:
                print({expression})
        asyncio.run(main())
    """)
    read_only.chmod(0o500)
    try:
        return subprocess.run(
            [*WITHOUT_OVERRIDE, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        read_only.chmod(0o700)


def test_a_read_only_store_opens_and_reads(tmp_path: Path) -> None:
    root = tmp_path / "data"

    async def seed() -> None:
        async with await open_store(f"file://{root}") as store:
            await store.create_session("x")
            await store.append_message("x", "user", "hi")

    asyncio.run(seed())
    read = print_without_write_access(
        root, root, '[m.content for m in await store.list_messages("x")]'
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout == "['hi']\n"


def test_a_delete_that_cannot_tidy_the_lock_file_still_reports_success(tmp_path: Path) -> None:
    root = tmp_path / "data"

    async def seed() -> None:
        async with await open_store(f"file://{root}") as store:
            await store.create_session("x")

    asyncio.run(seed())
    deleted = print_without_write_access(
        root / "locks", root, 'await store.delete_session("x"), await store.get_session("x")'
    )
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == "True None\n"


# --------------------------------------------------------------------------- the benchmarks' fill


async def test_the_bulk_fill_writes_the_files_the_api_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The benchmarks fill a store with write_sessions (no fsync, no lock): it must leave the
    # files that creating the sessions and appending their messages one by one leaves.
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    monkeypatch.setattr(store_module, "utc_now", lambda: at)
    Spec = tuple[
        str, str | None, str | None, str | None, dict[str, Any], list[tuple[str, str, Any]]
    ]
    specs: list[Spec] = [
        ("s1", "agent-a", "alice", None, {}, [("user", "hi", {}), ("assistant", "yo", {"k": 1})]),
        ("s2", None, "bob", "t1", {"tags": ["x", "é"]}, []),
        ("Session 3", "agent-a", None, "t1", {}, [("tool", "result " * 50, {})]),
    ]
    api, filled = tmp_path / "api", tmp_path / "filled"
    async with await FileStore.connect(api) as store:
        for session_id, agent_id, user_id, tenant_id, metadata, messages in specs:
            await store.create_session(
                session_id,
                agent_id=agent_id,
                user_id=user_id,
                tenant_id=tenant_id,
                metadata=metadata,
            )
            for role, content, message_metadata in messages:
                await store.append_message(session_id, role, content, metadata=message_metadata)
    async with await FileStore.connect(filled):
        pass
    write_sessions(
        filled,
        [
            (
                Session(session_id, agent_id, user_id, tenant_id, "active", metadata, 0, at, at),
                [
                    encode_message(role, content, message_metadata, None, at)
                    for role, content, message_metadata in messages
                ],
            )
            for session_id, agent_id, user_id, tenant_id, metadata, messages in specs
        ],
    )

    def files(root: Path) -> dict[str, tuple[bytes, int]]:
        return {
            path.relative_to(root).as_posix(): (
                path.read_bytes(),
                stat.S_IMODE(path.stat().st_mode),
            )
            for path in _tree(root)
            if path.is_file() and path.parent.name != "locks"
        }

    assert files(filled) == files(api)
    async with await FileStore.connect(filled) as store:
        assert [s.session_id for s in await store.list_sessions(tenant_id="t1")] == [
            "s2",
            "Session 3",
        ]
        assert (await store.append_message("s1", "user", "more")).seq == 3
