"""Sessions and agents: the same answers from every backend."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mofa.persistence import (
    UNSET,
    BaseStore,
    InvalidInputError,
    NewMessage,
    SessionExistsError,
    SessionNotFoundError,
)


async def test_create_and_get_session(store: BaseStore) -> None:
    created = await store.create_session(
        "s-1",
        agent_id="agent-1",
        user_id="u-1",
        tenant_id="t-1",
        metadata={"context": "support", "tags": ["a", "b"]},
    )
    fetched = await store.get_session("s-1")
    assert fetched == created
    assert fetched is not None
    assert fetched.agent_id == "agent-1"
    assert fetched.user_id == "u-1"
    assert fetched.tenant_id == "t-1"
    assert fetched.status == "active"
    assert fetched.message_count == 0
    assert fetched.metadata == {"context": "support", "tags": ["a", "b"]}
    assert fetched.created_at.tzinfo is not None
    assert fetched.created_at.utcoffset() == timedelta(0)


async def test_generated_session_id_is_a_uuid7(store: BaseStore) -> None:
    session = await store.create_session()
    parsed = uuid.UUID(session.session_id)
    assert parsed.version == 7
    assert await store.get_session(session.session_id) == session


async def test_session_ids_are_exact_strings(store: BaseStore) -> None:
    await store.create_session("Case")
    await store.create_session("case")
    await store.create_session("case ")
    assert (await store.get_session("Case")) is not None
    assert {s.session_id for s in await store.list_sessions()} == {"Case", "case", "case "}


async def test_duplicate_session_is_a_conflict(store: BaseStore) -> None:
    await store.create_session("dup", metadata={"first": True})
    with pytest.raises(SessionExistsError):
        await store.create_session("dup", metadata={"first": False})
    session = await store.get_session("dup")
    assert session is not None
    assert session.metadata == {"first": True}


async def test_missing_session_is_none(store: BaseStore) -> None:
    assert await store.get_session("nope") is None
    assert await store.count_messages("nope") == 0
    assert await store.list_messages("nope") == []
    assert await store.list_recent_messages("nope", limit=5) == []


async def test_session_creates_a_minimal_agent_record(store: BaseStore) -> None:
    await store.create_session("s", agent_id="fresh-agent")
    agent = await store.get_agent("fresh-agent")
    assert agent is not None
    assert agent.name == "fresh-agent"


async def test_list_sessions_newest_first_with_filters_and_paging(store: BaseStore) -> None:
    for index in range(6):
        await store.create_session(
            f"s{index}",
            agent_id="a1" if index % 2 == 0 else "a2",
            user_id="u1" if index < 4 else "u2",
            tenant_id="t1",
        )
    everything = await store.list_sessions()
    assert [s.session_id for s in everything] == ["s5", "s4", "s3", "s2", "s1", "s0"]
    created = [s.created_at for s in everything]
    assert created == sorted(created, reverse=True)
    assert [s.session_id for s in await store.list_sessions(agent_id="a1")] == ["s4", "s2", "s0"]
    assert [s.session_id for s in await store.list_sessions(user_id="u1", tenant_id="t1")] == [
        "s3",
        "s2",
        "s1",
        "s0",
    ]
    assert [s.session_id for s in await store.list_sessions(user_id="u2")] == ["s5", "s4"]
    assert await store.list_sessions(tenant_id="other") == []
    assert [s.session_id for s in await store.list_sessions(limit=2)] == ["s5", "s4"]
    assert [s.session_id for s in await store.list_sessions(limit=2, offset=2)] == ["s3", "s2"]
    assert [s.session_id for s in await store.list_sessions(limit=10, offset=5)] == ["s0"]
    assert await store.list_sessions(limit=0) == []


async def test_listing_carries_exact_message_counts(store: BaseStore) -> None:
    for index in range(3):
        await store.create_session(f"s{index}", user_id="u")
        await store.append_messages(
            f"s{index}", [NewMessage("user", f"m{n}") for n in range(index * 3)]
        )
    counts = {s.session_id: s.message_count for s in await store.list_sessions(user_id="u")}
    assert counts == {"s0": 0, "s1": 3, "s2": 6}


async def test_update_session(store: BaseStore) -> None:
    created = await store.create_session("s", metadata={"a": 1})
    expiry = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    updated = await store.update_session("s", status="closed", metadata={"b": 2}, expires_at=expiry)
    assert updated.status == "closed"
    assert updated.metadata == {"b": 2}
    assert updated.expires_at == expiry
    assert updated.updated_at >= created.updated_at
    assert await store.get_session("s") == updated
    kept = await store.update_session("s", expires_at=UNSET)
    assert kept.expires_at == expiry
    cleared = await store.update_session("s", expires_at=None)
    assert cleared.expires_at is None
    assert cleared.status == "closed"
    with pytest.raises(SessionNotFoundError):
        await store.update_session("missing", status="closed")


async def test_expiry(store: BaseStore) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    session = await store.create_session("old", expires_at=past)
    assert session.is_expired()
    assert session.effective_status == "expired"
    fresh = await store.create_session("new", expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert not fresh.is_expired()
    assert fresh.effective_status == "active"


async def test_delete_session_takes_messages_and_state(store: BaseStore) -> None:
    await store.create_session("s", agent_id="a")
    await store.create_session("other", agent_id="a")
    await store.append_message("s", "user", "hello")
    await store.append_message("other", "user", "kept")
    await store.save_state("s", {"step": 1})
    assert await store.delete_session("s") is True
    assert await store.get_session("s") is None
    assert await store.list_messages("s") == []
    assert await store.get_state("s") is None
    assert await store.delete_session("s") is False
    assert [m.content for m in await store.list_messages("other")] == ["kept"]
    # A new session may reuse the id and starts from seq 1.
    await store.create_session("s")
    assert (await store.append_message("s", "user", "again")).seq == 1


async def test_agents_upsert_get_list(store: BaseStore) -> None:
    started = datetime(2024, 2, 28, 10, 30, tzinfo=UTC)
    first = await store.upsert_agent(
        "agent-1",
        name="Support",
        state="running",
        provider="openai",
        model="gpt-4o",
        description="Answers questions",
        started_at=started,
    )
    assert first.started_at == started
    assert await store.get_agent("agent-1") == first
    second = await store.upsert_agent(
        "agent-1", name="Support", state="stopped", started_at=started
    )
    assert second.state == "stopped"
    assert second.provider is None
    stored = await store.get_agent("agent-1")
    assert stored is not None
    assert stored.state == "stopped"
    assert stored.created_at == first.created_at
    await store.upsert_agent("agent-2")
    listed = await store.list_agents()
    assert [a.id for a in listed] == ["agent-2", "agent-1"]
    assert [a.id for a in await store.list_agents(limit=1)] == ["agent-2"]
    assert await store.get_agent("missing") is None


async def test_deleting_sessions_keeps_the_agent(store: BaseStore) -> None:
    await store.upsert_agent("a", name="A")
    await store.create_session("s", agent_id="a")
    await store.delete_session("s")
    assert await store.get_agent("a") is not None


@pytest.mark.parametrize(
    "bad_id",
    ["", "x" * 256, "nul\x00id", "\ud800", 42, None],
    ids=["empty", "too-long", "nul", "surrogate", "int", "none"],
)
async def test_bad_session_ids_are_rejected(store: BaseStore, bad_id: object) -> None:
    with pytest.raises(InvalidInputError):
        await store.create_session(bad_id if bad_id is not None else 0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await store.append_message(bad_id, "user", "x")  # type: ignore[arg-type]
    assert await store.list_sessions() == []


async def test_max_length_and_hostile_ids_work(store: BaseStore) -> None:
    ids = [
        "x" * 255,
        "'; DROP TABLE sessions; --",
        "../../etc/passwd",
        "a/b",
        "CON",
        "日本語-セッション-🎉",
        "agent-001:session-123",
    ]
    for session_id in ids:
        await store.create_session(session_id, agent_id=session_id[:40])
        await store.append_message(session_id, "user", session_id)
    for session_id in ids:
        messages = await store.list_messages(session_id)
        assert [m.content for m in messages] == [session_id]
    assert len(await store.list_sessions()) == len(ids)


async def test_bad_metadata_changes_nothing(store: BaseStore) -> None:
    with pytest.raises(InvalidInputError):
        await store.create_session("s", metadata={"x": object()})
    with pytest.raises(InvalidInputError):
        await store.create_session("s", metadata={"x": float("nan")})
    with pytest.raises(InvalidInputError):
        await store.create_session("s", metadata=["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await store.create_session("s", metadata={"x": "nul\x00"})
    with pytest.raises(InvalidInputError):
        await store.create_session("s", metadata={"x": "\udfff"})
    assert await store.get_session("s") is None


async def test_naive_datetimes_are_rejected(store: BaseStore) -> None:
    with pytest.raises(InvalidInputError):
        await store.create_session("s", expires_at=datetime(2030, 1, 1))
    assert await store.get_session("s") is None


async def test_store_satisfies_the_contract(store: BaseStore) -> None:
    from mofa.persistence import Store

    assert isinstance(store, Store)
    assert isinstance(store.backend, str)
    assert store.backend
    assert store.url.masked in repr(store)
