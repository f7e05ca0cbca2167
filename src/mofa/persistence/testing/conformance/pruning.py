"""Pruning sessions (``prune_sessions``) and a store's counts and health facts: the same
answers on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from mofa.persistence import BaseStore, InvalidInputError, NewMessage, Session, StoreCounts
from mofa.persistence._health import expected_indexes
from mofa.persistence._prune import PruneRule


async def _ids(store: BaseStore) -> list[str]:
    return [session.session_id for session in await store.list_sessions()]


async def _pause() -> None:
    await asyncio.sleep(0.002)  # distinct times, even on a coarse clock


async def test_prune_by_last_activity(store: BaseStore) -> None:
    await store.create_session("old-busy")
    await store.create_session("old-idle")
    await store.append_message("old-idle", "user", "hello")
    await store.save_state("old-idle", {"step": 1})
    await _pause()
    cutoff = datetime.now(UTC)
    await _pause()
    await store.append_message("old-busy", "user", "still here")  # activity after the cutoff
    await store.create_session("new")

    result = await store.prune_sessions(older_than=cutoff)

    assert (result.sessions, result.messages) == (1, 1)
    assert await _ids(store) == ["new", "old-busy"]
    assert await store.get_state("old-idle") is None
    assert await store.list_messages("old-idle") == []


async def test_prune_expired_sessions(store: BaseStore) -> None:
    now = datetime.now(UTC)
    await store.create_session("gone", expires_at=now - timedelta(seconds=1))
    await store.create_session("later", expires_at=now + timedelta(days=1))
    await store.create_session("never")
    result = await store.prune_sessions(expired=True)
    assert result.sessions == 1
    assert await _ids(store) == ["never", "later"]


async def test_prune_keeps_each_agents_newest(store: BaseStore) -> None:
    for index in range(5):
        await store.create_session(f"s{index}", agent_id=f"a{index % 2}")
        await _pause()
    # a0: s4, s2, s0; a1: s3, s1. Keep each agent's newest.
    result = await store.prune_sessions(keep_last=1)
    assert result.sessions == 3
    assert await _ids(store) == ["s4", "s3"]


async def test_prune_conditions_and_filters_combine(store: BaseStore) -> None:
    for index in range(4):
        await store.create_session(f"s{index}", agent_id="a", user_id=f"u{index % 2}")
        await _pause()
    cutoff = datetime.now(UTC)
    await store.create_session("fresh", agent_id="a", user_id="u0")
    # u0's sessions: fresh, s2, s0. Keeping one of the agent's (fresh) and old: s2, s0.
    result = await store.prune_sessions(keep_last=1, older_than=cutoff, user_id="u0")
    assert result.sessions == 2
    assert await _ids(store) == ["fresh", "s3", "s1"]
    assert (await store.prune_sessions(keep_last=0, agent_id="nobody")).sessions == 0


async def test_a_dry_run_deletes_nothing(store: BaseStore) -> None:
    await store.create_session("a")
    await store.append_messages("a", [])
    await store.append_message("a", "user", "x")
    await store.create_session("b")
    seen: list[tuple[list[str], bool]] = []

    def record(batch: Sequence[Session], dry_run: bool) -> None:
        seen.append(([session.session_id for session in batch], dry_run))

    result = await store.prune_sessions(keep_last=0, dry_run=True, on_batch=record)
    assert (result.sessions, result.messages) == (2, 1)
    assert seen == [(["b", "a"], True)]
    assert await _ids(store) == ["b", "a"]


async def test_prune_deletes_in_batches(store: BaseStore) -> None:
    for index in range(7):
        await store.create_session(f"s{index}")
    sizes: list[int] = []
    result = await store.prune_sessions(
        keep_last=0, batch_size=3, on_batch=lambda batch, _dry: sizes.append(len(batch))
    )
    assert result.sessions == 7
    assert sizes == [3, 3, 1]
    assert await _ids(store) == []


async def test_a_batch_keeps_a_session_that_came_back_to_life(store: BaseStore) -> None:
    """The rule is checked again when the batch runs: a message that arrived after the scan
    keeps its session."""
    await store.create_session("revived")
    await _pause()
    rule = PruneRule(now=datetime.now(UTC), older_than=datetime.now(UTC))
    await _pause()
    await store.append_message("revived", "user", "back")
    assert await store._delete_sessions(["revived"], rule) == []
    assert await _ids(store) == ["revived"]
    expired = PruneRule(now=datetime.now(UTC), expired=True)
    assert await store._delete_sessions(["revived", "missing"], expired) == []


async def test_prune_reads_past_many_sessions_of_one_instant(store: BaseStore) -> None:
    """More sessions than a scan page: every one is seen once (paging by time, not offset)."""
    from mofa.persistence import _prune

    page = _prune._PAGE
    _prune._PAGE = 4
    try:
        for index in range(11):
            await store.create_session(f"s{index:02d}", agent_id="a")
        result = await store.prune_sessions(keep_last=2, dry_run=True)
    finally:
        _prune._PAGE = page
    assert result.sessions == 9


async def test_prune_deletes_as_it_scans(store: BaseStore) -> None:
    """A prune holds a page of the scan and a batch, never every session it selects: its
    first batch is deleted (or, in a dry run, reported) before the scan reads its next
    page, and paging on past the deleted sessions still sees every one once."""
    from mofa.persistence import _prune

    for index in range(13):
        await store.create_session(f"s{index:02d}", agent_id="a")
        await store.create_session(f"k{index:02d}", agent_id="keep")
    pages: list[int] = []
    real = store._list_sessions

    async def counting(query, owner):  # type: ignore[no-untyped-def]
        pages.append(1)
        return await real(query, owner)

    page = _prune._PAGE
    _prune._PAGE = 4
    store._list_sessions = counting  # type: ignore[method-assign]
    try:
        for dry_run in (True, False):
            pages.clear()
            reads_before_batch: list[int] = []

            def on_batch(
                _batch: Sequence[Session], _dry: bool, seen: list[int] = reads_before_batch
            ) -> None:
                seen.append(len(pages))

            result = await store.prune_sessions(
                keep_last=0, agent_id="a", dry_run=dry_run, batch_size=2, on_batch=on_batch
            )
            assert result.sessions == 13
            assert reads_before_batch[0] == 1
            assert len(reads_before_batch) == 7
    finally:
        _prune._PAGE = page
        del store._list_sessions
    assert [s.session_id for s in await store.list_sessions(agent_id="a")] == []
    assert len(await store.list_sessions(agent_id="keep")) == 13


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs a rule"),
        ({"agent_id": "a"}, "needs a rule"),
        ({"older_than": datetime(2024, 1, 1)}, "no timezone"),
        ({"keep_last": -1}, "keep_last"),
        ({"keep_last": 1, "batch_size": 0}, "batch_size"),
    ],
)
async def test_bad_prunes_are_refused(
    store: BaseStore, options: dict[str, object], message: str
) -> None:
    await store.create_session("kept")
    with pytest.raises(InvalidInputError, match=message):
        await store.prune_sessions(**options)  # type: ignore[arg-type]
    assert await _ids(store) == ["kept"]


# ------------------------------------------------------------------ counts and health


async def test_counts_come_from_the_kept_counters(store: BaseStore) -> None:
    assert await store.get_counts() == StoreCounts(0, 0, 0)
    await store.upsert_agent("lonely")
    await store.create_session("a", agent_id="bot")
    await store.create_session("b", agent_id="bot")
    await store.create_session("c")
    await store.append_messages("a", [NewMessage("user", "1"), NewMessage("assistant", "2")])
    await store.append_message("b", "user", "3")
    assert await store.get_counts() == StoreCounts(agents=2, sessions=3, messages=3)
    await store.delete_session("a")
    assert await store.get_counts() == StoreCounts(agents=2, sessions=2, messages=1)


async def test_a_healthy_store_has_no_orphans(store: BaseStore) -> None:
    await store.create_session("a", agent_id="bot")
    await store.append_message("a", "user", "hi")
    await store.save_state("a", {"step": 1})
    facts = await store.get_health()
    assert all(count == 0 for count in facts.orphans.values())
    assert facts.miscounted == 0
    if facts.indexes is not None:  # the SQL stores: every index of the schema is there
        dialect = store.backend
        assert expected_indexes(dialect) <= facts.indexes
