"""The one date rule: every backend keeps every UTC time of the years 1 to 9999, exactly.

Python's datetime holds exactly those years, and every backend stores all of them to the
microsecond (PostgreSQL's TIMESTAMPTZ, MariaDB's DATETIME(6), the fixed-width text of SQLite
and the file store), so nothing a caller can pass in UTC is refused; a time whose offset moves
it outside those years in UTC is refused with InvalidInputError.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mofa.persistence import BaseStore, InvalidInputError, NewMessage

#: The edges of the rule, and the years where text forms and MySQL's documented range
#: (1000-01-01 onwards) have their own edges.
EDGES = [
    datetime.min.replace(tzinfo=UTC),
    datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(9, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(999, 1, 1, tzinfo=UTC),
    datetime(999, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
    datetime(1000, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 58, tzinfo=UTC),
    datetime.max.replace(tzinfo=UTC),
]


async def test_every_year_from_1_to_9999_round_trips_exactly(store: BaseStore) -> None:
    for number, moment in enumerate(EDGES):
        session_id = f"s{number}"
        created = await store.create_session(session_id, agent_id=f"a{number}", expires_at=moment)
        assert created.expires_at == moment
        await store.append_message(session_id, "user", "one", timestamp=moment)
        await store.append_messages(session_id, [NewMessage("user", "two", timestamp=moment)])
        agent = await store.upsert_agent(f"a{number}", started_at=moment)
        assert agent.started_at == moment

        loaded = await store.get_session(session_id)
        assert loaded is not None
        assert loaded.expires_at == moment
        assert loaded.expires_at.utcoffset() == timedelta(0)
        for message in await store.list_messages(session_id):
            assert message.timestamp == moment
            assert message.timestamp.utcoffset() == timedelta(0)
        stored_agent = await store.get_agent(f"a{number}")
        assert stored_agent is not None
        assert stored_agent.started_at == moment
        assert stored_agent.started_at.utcoffset() == timedelta(0)

    # A listing reads every one of them back (one unreadable row used to fail it whole).
    listed = {s.session_id: s.expires_at for s in await store.list_sessions()}
    assert listed == {f"s{number}": moment for number, moment in enumerate(EDGES)}
    assert {a.id: a.started_at for a in await store.list_agents()} == {
        f"a{number}": moment for number, moment in enumerate(EDGES)
    }


async def test_update_session_keeps_the_edges_too(store: BaseStore) -> None:
    await store.create_session("s")
    for moment in (EDGES[0], EDGES[3], EDGES[-1]):
        updated = await store.update_session("s", expires_at=moment)
        assert updated.expires_at == moment
        loaded = await store.get_session("s")
        assert loaded is not None
        assert loaded.expires_at == moment


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),  # 0000-12-31 in UTC
        datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2))),  # year 10000
    ],
    ids=["before-year-1", "after-year-9999"],
)
async def test_a_time_outside_the_years_in_utc_is_refused(
    store: BaseStore, moment: datetime
) -> None:
    await store.create_session("s")
    with pytest.raises(InvalidInputError, match=r"outside the years 1 to 9999 in UTC"):
        await store.create_session("t", expires_at=moment)
    with pytest.raises(InvalidInputError, match=r"message timestamp .* outside the years"):
        await store.append_message("s", "user", "x", timestamp=moment)
    with pytest.raises(InvalidInputError, match=r"expires_at .* outside the years"):
        await store.update_session("s", expires_at=moment)
    with pytest.raises(InvalidInputError, match=r"started_at .* outside the years"):
        await store.upsert_agent("a", started_at=moment)
    assert [s.session_id for s in await store.list_sessions()] == ["s"]
    assert await store.count_messages("s") == 0
    assert await store.get_agent("a") is None
    session = await store.get_session("s")
    assert session is not None
    assert session.expires_at is None
