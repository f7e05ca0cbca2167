"""Listing sessions by status and creation time: the same answers from every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mofa.persistence import BaseStore, InvalidInputError, Session


async def _five_sessions(store: BaseStore) -> list[Session]:
    """s0 … s4, created in that order (a millisecond apart, so no two share a time), s1 and
    s3 closed; agents a0/a1 alternate."""
    made = []
    for index in range(5):
        made.append(await store.create_session(f"s{index}", agent_id=f"a{index % 2}"))
        await asyncio.sleep(0.002)
    for session_id in ("s1", "s3"):
        await store.update_session(session_id, status="closed")
    return made


def _ids(sessions: list[Session]) -> list[str]:
    return [session.session_id for session in sessions]


async def test_list_sessions_by_status(store: BaseStore) -> None:
    await _five_sessions(store)
    assert _ids(await store.list_sessions(status="closed")) == ["s3", "s1"]
    assert _ids(await store.list_sessions(status="active")) == ["s4", "s2", "s0"]
    assert _ids(await store.list_sessions(status="active", agent_id="a0")) == ["s4", "s2", "s0"]
    assert _ids(await store.list_sessions(status="closed", agent_id="a0")) == []
    assert _ids(await store.list_sessions(status="active", limit=1, offset=1)) == ["s2"]
    assert await store.list_sessions(status="archived") == []


async def test_list_sessions_by_creation_time(store: BaseStore) -> None:
    made = await _five_sessions(store)
    times = [session.created_at for session in made]
    # since is inclusive, until exclusive: [s1, s3) holds s1 and s2.
    assert _ids(await store.list_sessions(since=times[1], until=times[3])) == ["s2", "s1"]
    assert _ids(await store.list_sessions(since=times[3])) == ["s4", "s3"]
    assert _ids(await store.list_sessions(until=times[1])) == ["s0"]
    assert _ids(await store.list_sessions(since=times[1], agent_id="a1")) == ["s3", "s1"]
    assert _ids(await store.list_sessions(since=times[1], status="active", limit=1)) == ["s4"]
    assert _ids(await store.list_sessions(since=times[0], offset=3)) == ["s1", "s0"]
    assert await store.list_sessions(since=times[4] + timedelta(seconds=1)) == []
    # Any time zone means the same instant.
    east = timezone(timedelta(hours=5, minutes=30))
    assert _ids(await store.list_sessions(until=times[1].astimezone(east))) == ["s0"]


async def test_list_sessions_filters_go_with_an_owner_scope(store: BaseStore) -> None:
    from mofa.persistence import Owner

    await _five_sessions(store)
    scope = Owner(agent_id="a1")
    assert _ids(await store.list_sessions(owner=scope, status="closed")) == ["s3", "s1"]
    assert _ids(await store.list_sessions(owner=scope, status="active")) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"since": datetime(2024, 1, 1)}, "no timezone"),
        ({"until": "2024-01-01"}, "must be a datetime"),
        ({"status": ""}, "session status"),
    ],
)
async def test_bad_listing_filters_are_refused(
    store: BaseStore, options: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        await store.list_sessions(**options)  # type: ignore[arg-type]


async def test_far_times_bound_a_listing(store: BaseStore) -> None:
    await store.create_session("now")
    start = datetime(1, 1, 1, tzinfo=UTC)
    end = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert _ids(await store.list_sessions(since=start, until=end)) == ["now"]
    assert await store.list_sessions(until=start) == []
    assert await store.list_sessions(since=end) == []
