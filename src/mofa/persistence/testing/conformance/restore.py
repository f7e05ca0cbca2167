"""``restore_session``: a session written back exactly as it was stored, all or nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from mofa.persistence import (
    Agent,
    AgentState,
    BaseStore,
    InvalidInputError,
    Message,
    Owner,
    Role,
    Session,
    SessionExistsError,
)

T0 = datetime(2024, 2, 28, 10, 30, 0, 123456, tzinfo=UTC)


def a_session(session_id: str = "restored", count: int = 3, **changes: object) -> Session:
    fields: dict[str, object] = {
        "session_id": session_id,
        "agent_id": "agent-r",
        "user_id": "user-r",
        "tenant_id": "tenant-r",
        "status": "closed",
        "metadata": {"topic": "backup", "nested": {"deep": [1, 2.5, None, "ü"]}},
        "message_count": count,
        "created_at": T0,
        "updated_at": T0 + timedelta(hours=1, microseconds=7),
        "expires_at": T0 + timedelta(days=30, microseconds=1),
    }
    fields.update(changes)
    return Session(**fields)  # type: ignore[arg-type]


def some_messages(session_id: str = "restored", count: int = 3) -> list[Message]:
    roles = [Role.USER, Role.ASSISTANT, Role.SYSTEM, Role.TOOL]
    return [
        Message(
            session_id,
            seq,
            roles[seq % 4],
            f"message {seq} 🎉 中文",
            {"model": "m", "usage": {"tokens": seq}} if seq % 2 else {},
            T0 + timedelta(seconds=seq, microseconds=seq),
        )
        for seq in range(1, count + 1)
    ]


def some_states(session_id: str = "restored", count: int = 2) -> list[AgentState]:
    return [
        AgentState(session_id, version, {"step": version}, T0 + timedelta(minutes=version))
        for version in range(1, count + 1)
    ]


AGENT = Agent(
    id="agent-r",
    name="Restored agent",
    state="stopped",
    started_at=T0 - timedelta(days=1),
    provider="openai",
    model="gpt-4o-mini",
    description="from a backup",
    created_at=T0 - timedelta(days=2),
    updated_at=T0 - timedelta(days=1, microseconds=5),
    tenant_id="tenant-r",
)


def without_ids(messages: list[Message]) -> list[tuple[object, ...]]:
    return [(m.session_id, m.seq, m.role, m.content, m.metadata, m.timestamp) for m in messages]


async def test_restore_keeps_every_field(store: BaseStore) -> None:
    session = a_session()
    restored = await store.restore_session(session, [*some_states(), *some_messages()], agent=AGENT)
    assert restored == session
    assert await store.get_session("restored") == session
    messages = await store.list_messages("restored")
    assert without_ids(messages) == without_ids(some_messages())
    assert await store.list_states("restored") == some_states()[::-1]
    assert await store.get_agent("agent-r") == AGENT


async def test_restored_session_continues_its_numbering(store: BaseStore) -> None:
    await store.restore_session(a_session(), [*some_messages(), *some_states()])
    appended = await store.append_message("restored", "user", "next")
    assert appended.seq == 4
    assert (await store.save_state("restored", {"step": 3})).version == 3
    found = await store.get_session("restored")
    assert found is not None
    assert found.message_count == 4


async def test_restore_reads_an_async_stream_in_batches(store: BaseStore) -> None:
    count = 2_345  # more than two batches

    async def records() -> AsyncIterator[Message | AgentState]:
        for message in some_messages(count=count):
            yield message
        for state in some_states(count=3):
            yield state

    await store.restore_session(a_session(count=count), records())
    assert await store.count_messages("restored") == count
    last = await store.list_recent_messages("restored", limit=1)
    assert without_ids(last) == without_ids(some_messages(count=count)[-1:])
    assert [state.version for state in await store.list_states("restored")] == [3, 2, 1]


async def test_an_agent_the_store_has_is_left_as_it_is(store: BaseStore) -> None:
    kept = await store.upsert_agent("agent-r", name="Kept", model="other")
    await store.restore_session(a_session(), some_messages(), agent=AGENT)
    assert await store.get_agent("agent-r") == kept


async def test_without_an_agent_record_the_placeholder_is_made(store: BaseStore) -> None:
    await store.restore_session(a_session(agent_id="lonely"), some_messages())
    agent = await store.get_agent("lonely")
    assert agent is not None
    assert (agent.name, agent.state, agent.created_at) == ("lonely", "unknown", T0)


async def test_a_taken_id_fails_skips_or_is_replaced(store: BaseStore) -> None:
    await store.create_session("restored", agent_id="agent-r", user_id="someone")
    await store.append_message("restored", "user", "original")
    before = await store.get_session("restored")
    with pytest.raises(SessionExistsError):
        await store.restore_session(a_session(), some_messages())
    assert await store.restore_session(a_session(), some_messages(), on_conflict="skip") is None
    assert await store.get_session("restored") == before
    assert [m.content for m in await store.list_messages("restored")] == ["original"]
    replaced = await store.restore_session(
        a_session(), [*some_messages(), *some_states()], on_conflict="replace"
    )
    assert replaced == a_session()
    assert await store.get_session("restored") == a_session()
    assert without_ids(await store.list_messages("restored")) == without_ids(some_messages())
    assert len(await store.list_states("restored")) == 2


async def test_a_failed_replace_keeps_the_stored_session(store: BaseStore) -> None:
    await store.create_session("restored")
    await store.append_message("restored", "user", "keep me")
    before = await store.get_session("restored")
    broken = [*some_messages()[:2], some_messages()[1]]  # seq 2 twice
    with pytest.raises(InvalidInputError, match="appears twice"):
        await store.restore_session(a_session(), broken, on_conflict="replace")
    assert await store.get_session("restored") == before
    assert [m.content for m in await store.list_messages("restored")] == ["keep me"]


def _raising(records: list[Message], error: Exception) -> Iterator[Message]:
    yield from records
    raise error


@pytest.mark.parametrize(
    ("records", "message"),
    [
        pytest.param(some_messages()[:2], "holds 3 messages", id="too-few"),
        pytest.param([*some_messages(), *some_messages()[:1]], "message seq 1 follows", id="back"),
        pytest.param([some_messages()[0], some_messages()[2]], "2 is missing", id="gap"),
        pytest.param(
            [*some_messages()[:2], Message("restored", 3, "boss", "x", {}, T0)],  # type: ignore[arg-type]
            "Unknown message role",
            id="role",
        ),
        pytest.param(
            [*some_messages()[:2], Message("restored", 3, Role.USER, "a\x00b", {}, T0)],
            "NUL",
            id="nul",
        ),
        pytest.param(
            [*some_messages()[:2], Message("restored", 3, Role.USER, "\ud800", {}, T0)],
            "surrogate",
            id="surrogate",
        ),
        pytest.param(
            [*some_messages()[:2], Message("other", 3, Role.USER, "x", {}, T0)],
            "belongs to session",
            id="other-session",
        ),
        pytest.param(
            [*some_messages(), *some_states()[1:]], "state version 2 follows", id="state-gap"
        ),
    ],
)
async def test_bad_records_write_nothing(
    store: BaseStore, records: list[Message | AgentState], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        await store.restore_session(a_session(), records, agent=AGENT)
    assert await store.get_session("restored") is None
    assert await store.list_sessions() == []
    assert await store.list_messages("restored") == []


async def test_an_error_of_the_source_writes_nothing(store: BaseStore) -> None:
    many = some_messages(count=2_500)  # the error comes after two batches were written
    with pytest.raises(OSError, match="disk gone"):
        await store.restore_session(
            a_session(count=2_500), _raising(many, OSError("disk gone")), agent=AGENT
        )
    assert await store.get_session("restored") is None
    assert await store.list_messages("restored") == []
    # Nothing is left behind that would stop the same restore from succeeding now.
    await store.restore_session(a_session(count=2_500), many)
    assert await store.count_messages("restored") == 2_500


async def test_restore_refuses_a_bad_session_before_writing(store: BaseStore) -> None:
    with pytest.raises(InvalidInputError, match="timezone"):
        await store.restore_session(a_session(created_at=datetime(2024, 1, 1)), some_messages())
    with pytest.raises(InvalidInputError, match="message_count"):
        await store.restore_session(a_session(count=-1), [])
    with pytest.raises(InvalidInputError, match="on_conflict"):
        await store.restore_session(a_session(), some_messages(), on_conflict="merge")
    with pytest.raises(InvalidInputError, match="agent record"):
        await store.restore_session(a_session(agent_id="x"), some_messages(), agent=AGENT)
    assert await store.list_sessions() == []


async def test_an_empty_session_restores(store: BaseStore) -> None:
    session = a_session(count=0, agent_id=None, expires_at=None, metadata={})
    assert await store.restore_session(session) == session
    assert await store.get_session("restored") == session
    assert (await store.append_message("restored", "user", "first")).seq == 1


async def test_restored_sessions_are_listed_by_their_creation_time(store: BaseStore) -> None:
    live = await store.create_session("live", agent_id="agent-r")
    await store.restore_session(a_session("old", count=0))
    await store.restore_session(a_session("older", count=0, created_at=T0 - timedelta(days=1)))
    await store.restore_session(a_session("old", count=0), on_conflict="replace")
    listed = await store.list_sessions()
    assert [found.session_id for found in listed] == ["live", "old", "older"]
    assert listed[0] == live
    assert [found.session_id for found in await store.list_sessions(offset=1, limit=1)] == ["old"]


# ---------------------------------------------------------------- owner scopes

TENANT_R = Owner(tenant_id="tenant-r", user_id="user-r", agent_id="agent-r")


async def test_through_a_scope_another_owners_session_is_never_replaced(store: BaseStore) -> None:
    await store.create_session(
        "restored", agent_id="agent-x", user_id="victim", tenant_id="tenant-x"
    )
    await store.append_message("restored", "user", "the victim's")
    before = await store.get_session("restored")
    for policy in ("fail", "skip", "replace"):
        with pytest.raises(SessionExistsError):
            await store.restore_session(
                a_session(), some_messages(), on_conflict=policy, owner=TENANT_R
            )
    assert await store.get_session("restored") == before
    assert [m.content for m in await store.list_messages("restored")] == ["the victim's"]


async def test_through_a_scope_the_owners_own_session_is_skipped_or_replaced(
    store: BaseStore,
) -> None:
    await store.restore_session(a_session(count=1), some_messages(count=1), owner=TENANT_R)
    assert (
        await store.restore_session(
            a_session(), some_messages(), on_conflict="skip", owner=TENANT_R
        )
        is None
    )
    assert await store.count_messages("restored") == 1
    replaced = await store.restore_session(
        a_session(), some_messages(), on_conflict="replace", owner=TENANT_R
    )
    assert replaced == a_session()
    assert await store.count_messages("restored", owner=TENANT_R) == 3


@pytest.mark.parametrize(
    "changes",
    [{"tenant_id": "tenant-x"}, {"user_id": None}, {"agent_id": "agent-x"}],
    ids=["tenant", "user", "agent"],
)
async def test_through_a_scope_a_session_of_another_owner_is_refused(
    store: BaseStore, changes: dict[str, object]
) -> None:
    with pytest.raises(InvalidInputError, match="owner"):
        await store.restore_session(
            a_session("restored", 3, **changes), some_messages(), owner=TENANT_R
        )
    assert await store.get_session("restored") is None
