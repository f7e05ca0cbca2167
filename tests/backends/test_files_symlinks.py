"""The file store follows no symbolic link below its directory.

Someone who can write in the store's directory plants a link where the store keeps one of
its files or directories, pointing outside. Every call that meets the link must refuse it
with one clear error, and nothing may be written through it: the link's target (a copy of
what the link replaced, so that following it would "work") stays byte for byte as it was.
The root itself may be a link (``/tmp`` is one on some systems).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mofa.persistence import ConflictError, FileStore, PersistenceError

pytestmark = pytest.mark.files

LINK_ERROR = "is a symbolic link; the file store follows none below its directory"

Call = Callable[[FileStore], Awaitable[object]]

#: What a program does with the store, in this order (delete last: it ends the session).
CALLS: dict[str, Call] = {
    "append": lambda store: store.append_message("s", "user", "through the link?"),
    "save_state": lambda store: store.save_state("s", {"step": 2}),
    "read": lambda store: store.list_messages("s"),
    "get_state": lambda store: store.get_state("s"),
    "get": lambda store: store.get_session("s"),
    "update": lambda store: store.update_session("s", status="closed"),
    "list": lambda store: store.list_sessions(),
    "create": lambda store: store.create_session("t", agent_id="a"),
    "upsert_agent": lambda store: store.upsert_agent("a", name="renamed"),
    "get_agent": lambda store: store.get_agent("a"),
    "list_agents": lambda store: store.list_agents(),
    "delete": lambda store: store.delete_session("s"),
}

#: Where a link is planted (relative to the store's root) and the calls that must refuse
#: it; "connect" means opening the store refuses it.
POSITIONS: dict[str, set[str]] = {
    "sessions/a/s.messages.jsonl": {"append", "read", "get", "list"},
    "sessions/a/s.states.jsonl": {"save_state", "get_state"},
    "sessions/a/s.json": {"append", "save_state", "read", "get", "update", "list", "delete"},
    "sessions/a/s.summary": {"append", "get", "list"},
    "sessions/a": {"append", "save_state", "read", "get", "update", "list", "create", "delete"},
    "sessions": {"append", "save_state", "read", "get", "update", "list", "create", "delete"},
    "session-list.jsonl": {"connect"},
    "mofa-store.json": {"connect"},
    "index/s.json": {"append", "save_state", "read", "get", "update", "delete"},
    "index": {"append", "save_state", "read", "get", "update", "create", "delete"},
    "locks/s.lock": {"append", "save_state", "update", "delete"},
    "locks/@session-list.lock": {"create"},
    "locks": {"append", "save_state", "update", "create", "upsert_agent", "delete"},
    "agents/a.json": {"upsert_agent", "get_agent", "list_agents"},
    "agents": {"upsert_agent", "get_agent", "list_agents", "create"},
}


async def _seed(root: Path) -> None:
    async with await FileStore.connect(f"file://{root}") as store:
        await store.create_session("s", agent_id="a")
        await store.append_message("s", "user", "hello")
        await store.save_state("s", {"step": 1})
        await store.create_session("other")  # forces the list's lock file to exist
        await store.upsert_agent("a", name="first")


def _snapshot(path: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every entry at or under ``path``: mode, mtime and a file's bytes."""
    entries: dict[str, tuple[int, int, bytes | None]] = {}
    paths = [path] if path.is_file() else [path, *sorted(path.rglob("*"))]
    for entry in paths:
        status = entry.lstat()
        content = entry.read_bytes() if entry.is_file() else None
        entries[str(entry.relative_to(path.parent))] = (
            status.st_mode,
            status.st_mtime_ns,
            content,
        )
    return entries


def _plant(root: Path, relative: str, outside: Path) -> Path:
    """Move what ``root/relative`` holds to ``outside`` and leave a link to it behind."""
    planted = root / relative
    target = outside / planted.name
    shutil.move(planted, target)
    planted.symlink_to(target, target_is_directory=target.is_dir())
    return target


@pytest.mark.parametrize("relative", list(POSITIONS))
async def test_a_planted_link_is_refused_and_nothing_is_written_through_it(
    tmp_path: Path, relative: str
) -> None:
    root, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    await _seed(root)
    target = _plant(root, relative, outside)
    before = _snapshot(target)

    errors: dict[str, PersistenceError] = {}
    try:
        store = await FileStore.connect(f"file://{root}")
    except PersistenceError as exc:
        errors["connect"] = exc
    else:
        try:
            for name, call in CALLS.items():
                try:
                    await call(store)
                except PersistenceError as exc:
                    errors[name] = exc
        finally:
            await store.close()

    # Any other error would be a link followed, or a link seen too late.
    others = {
        name: repr(error)
        for name, error in errors.items()
        if not (isinstance(error, ConflictError) and LINK_ERROR in str(error))
    }
    assert others == {}
    assert set(errors) >= POSITIONS[relative]
    for error in errors.values():
        assert str(root) in str(error)  # names the link (or the file below it)
    assert _snapshot(target) == before
    assert sorted(path.name for path in outside.iterdir()) == [target.name]


async def test_the_root_itself_may_be_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    await _seed(real)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    async with await FileStore.connect(f"file://{tmp_path / 'link'}") as store:
        await store.append_message("s", "user", "again")
        assert [m.content for m in await store.list_messages("s")] == ["hello", "again"]
        await store.create_session("new", agent_id="b")
    assert (real / "sessions" / "b" / "new.json").is_file()


async def test_a_link_planted_while_the_store_is_open_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    async with await FileStore.connect(f"file://{root}") as store:
        await store.create_session("s", agent_id="a")
        await store.append_message("s", "user", "hello")
        target = _plant(root, "sessions/a", outside)
        before = _snapshot(target)
        with pytest.raises(ConflictError, match=LINK_ERROR):
            await store.append_message("s", "user", "through the link?")
        with pytest.raises(ConflictError, match=LINK_ERROR):
            await store.create_session("t", agent_id="a")
    assert _snapshot(target) == before
    assert not os.path.lexists(outside / "t.json")
