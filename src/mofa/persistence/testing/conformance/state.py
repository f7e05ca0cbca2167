"""Agent-state snapshots on every backend."""

from __future__ import annotations

import pytest

from mofa.persistence import BaseStore, InvalidInputError, SessionNotFoundError


async def test_snapshots_are_versioned(store: BaseStore) -> None:
    await store.create_session("s")
    assert await store.get_state("s") is None
    first = await store.save_state("s", {"step": 1, "memory": ["a"]})
    second = await store.save_state("s", {"step": 2, "memory": ["a", "b"]})
    assert (first.version, second.version) == (1, 2)
    latest = await store.get_state("s")
    assert latest == second
    assert await store.get_state("s", version=1) == first
    assert await store.get_state("s", version=3) is None
    assert [s.version for s in await store.list_states("s")] == [2, 1]
    assert [s.version for s in await store.list_states("s", limit=1)] == [2]


async def test_state_is_per_session(store: BaseStore) -> None:
    await store.create_session("a")
    await store.create_session("b")
    await store.save_state("a", {"who": "a"})
    assert await store.get_state("b") is None
    assert (await store.save_state("b", {"who": "b"})).version == 1


async def test_bad_state_changes_nothing(store: BaseStore) -> None:
    await store.create_session("s")
    with pytest.raises(SessionNotFoundError):
        await store.save_state("missing", {"x": 1})
    with pytest.raises(InvalidInputError):
        await store.save_state("s", {"x": {1, 2}})
    with pytest.raises(InvalidInputError):
        await store.save_state("s", "not a dict")  # type: ignore[arg-type]
    assert await store.list_states("s") == []


async def test_large_state_round_trips(store: BaseStore) -> None:
    await store.create_session("s")
    state = {"transcript": "x" * 200_000, "items": list(range(10_000)), "text": "状态 🎉"}
    await store.save_state("s", state)
    loaded = await store.get_state("s")
    assert loaded is not None
    assert loaded.state == state
