"""Owner scopes: through ``owner=`` (and so through a plugin) another owner's session reads
and writes exactly like a missing one, on every backend, and agent records stay with the
tenant that registered them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from mofa.persistence import (
    AgentExistsError,
    BaseStore,
    InvalidInputError,
    Message,
    NewMessage,
    Owner,
    PersistencePlugin,
    Session,
    SessionExistsError,
    SessionNotFoundError,
)
from mofa.persistence._entities import AgentState

BOB = Owner(tenant_id="globex", user_id="bob", agent_id="support")
#: Scopes that differ from bob's in one respect each (and a hostile one).
STRANGERS = {
    "other tenant": Owner("acme", "bob", "support"),
    "other user": Owner("globex", "alice", "support"),
    "other agent": Owner("globex", "bob", "billing"),
    "no tenant": Owner(None, "bob", "support"),
    "no user": Owner("globex", None, "support"),
    "no agent": Owner("globex", "bob", None),
    "empty scope": Owner(),
    "sql in an id": Owner("globex' OR '1'='1", "bob", "support"),
}


@dataclass
class Snapshot:
    session: Session | None
    messages: list[Message]
    states: list[AgentState]


async def _bobs_session(store: BaseStore, session_id: str = "b-1") -> None:
    await store.create_session(
        session_id,
        agent_id=BOB.agent_id,
        user_id=BOB.user_id,
        tenant_id=BOB.tenant_id,
        metadata={"owner": "bob"},
    )
    await store.append_messages(
        session_id,
        [NewMessage("user", "my card number is 4242"), NewMessage("assistant", "noted")],
    )
    await store.append_message(session_id, "user", "thanks")
    await store.save_state(session_id, {"step": 1})
    await store.save_state(session_id, {"step": 2})


async def _snapshot(store: BaseStore, session_id: str = "b-1") -> Snapshot:
    return Snapshot(
        await store.get_session(session_id),
        await store.list_messages(session_id),
        await store.list_states(session_id),
    )


@pytest.mark.parametrize("stranger", STRANGERS.values(), ids=list(STRANGERS))
async def test_another_owners_session_is_missing_and_unchanged(
    store: BaseStore, stranger: Owner
) -> None:
    await _bobs_session(store)
    before = await _snapshot(store)

    assert await store.get_session("b-1", owner=stranger) is None
    assert await store.list_messages("b-1", owner=stranger) == []
    assert await store.list_messages("b-1", owner=stranger, after_seq=1, limit=1) == []
    assert await store.list_recent_messages("b-1", limit=10, owner=stranger) == []
    assert [m async for m in store.iter_messages("b-1", owner=stranger)] == []
    assert await store.count_messages("b-1", owner=stranger) == 0
    assert await store.get_state("b-1", owner=stranger) is None
    assert await store.get_state("b-1", 1, owner=stranger) is None
    assert await store.list_states("b-1", owner=stranger) == []
    listed = await store.list_sessions(owner=stranger)
    assert "b-1" not in [session.session_id for session in listed]
    assert await store.list_sessions(user_id="bob", tenant_id="globex", owner=stranger) == []

    with pytest.raises(SessionNotFoundError, match="Session not found: 'b-1'"):
        await store.append_message("b-1", "user", "injected", owner=stranger)
    with pytest.raises(SessionNotFoundError):
        await store.append_messages("b-1", [NewMessage("user", "injected")], owner=stranger)
    with pytest.raises(SessionNotFoundError):
        await store.append_messages("b-1", [], owner=stranger)
    with pytest.raises(SessionNotFoundError):
        await store.save_state("b-1", {"step": 99}, owner=stranger)
    with pytest.raises(SessionNotFoundError):
        await store.update_session("b-1", status="expired", owner=stranger)
    with pytest.raises(SessionNotFoundError):
        await store.update_session("b-1", metadata={"owner": "mallory"}, owner=stranger)
    with pytest.raises(SessionNotFoundError):
        await store.update_session("b-1", expires_at=None, owner=stranger)
    assert await store.delete_session("b-1", owner=stranger) is False

    assert await _snapshot(store) == before  # not even updated_at moved


async def test_the_owner_reaches_its_own_session_through_its_scope(store: BaseStore) -> None:
    await _bobs_session(store)
    session = await store.get_session("b-1", owner=BOB)
    assert session is not None
    assert session.message_count == 3
    assert [m.content for m in await store.list_recent_messages("b-1", limit=2, owner=BOB)] == [
        "noted",
        "thanks",
    ]
    assert [m.seq async for m in store.iter_messages("b-1", batch_size=2, owner=BOB)] == [1, 2, 3]
    assert await store.count_messages("b-1", owner=BOB) == 3
    state = await store.get_state("b-1", owner=BOB)
    assert state is not None
    assert state.state == {"step": 2}
    assert len(await store.list_states("b-1", owner=BOB)) == 2
    assert (await store.append_message("b-1", "assistant", "ok", owner=BOB)).seq == 4
    batch = await store.append_messages("b-1", [NewMessage("user", "a")], owner=BOB)
    assert [m.seq for m in batch] == [5]
    assert (await store.save_state("b-1", {"step": 3}, owner=BOB)).version == 3
    updated = await store.update_session("b-1", status="closed", owner=BOB)
    assert updated.status == "closed"
    assert [s.session_id for s in await store.list_sessions(owner=BOB)] == ["b-1"]
    assert await store.delete_session("b-1", owner=BOB) is True
    assert await store.get_session("b-1") is None


async def test_a_scope_none_field_matches_only_sessions_without_it(store: BaseStore) -> None:
    await store.create_session("no-tenant", agent_id="a", user_id="u")
    await store.create_session("tenant", agent_id="a", user_id="u", tenant_id="t")
    await store.create_session("no-user", agent_id="a", tenant_id="t")
    await store.create_session("bare")
    untenanted = Owner(None, "u", "a")
    assert [s.session_id for s in await store.list_sessions(owner=untenanted)] == ["no-tenant"]
    assert await store.get_session("tenant", owner=untenanted) is None
    assert (await store.append_message("no-tenant", "user", "hi", owner=untenanted)).seq == 1
    userless = Owner("t", None, "a")
    assert [s.session_id for s in await store.list_sessions(owner=userless)] == ["no-user"]
    assert [s.session_id for s in await store.list_sessions(owner=Owner())] == ["bare"]
    assert await store.get_session("bare", owner=Owner()) is not None
    # A filter inside the scope narrows it; one outside it lists nothing.
    assert [s.session_id for s in await store.list_sessions(agent_id="a", owner=userless)] == [
        "no-user"
    ]
    assert await store.list_sessions(agent_id="b", owner=userless) == []


async def test_listing_through_a_scope_pages_its_own_sessions(store: BaseStore) -> None:
    for number in range(5):
        await store.create_session(f"mine-{number}", agent_id="a", user_id="u", tenant_id="t")
        await store.create_session(f"theirs-{number}", agent_id="a", user_id="u", tenant_id="x")
        await store.create_session(f"untenanted-{number}", agent_id="a", user_id="u")
    scope = Owner("t", "u", "a")
    everything = [s.session_id for s in await store.list_sessions(owner=scope)]
    assert sorted(everything) == [f"mine-{number}" for number in range(5)]
    pages = [
        [s.session_id for s in await store.list_sessions(owner=scope, limit=2, offset=offset)]
        for offset in (0, 2, 4)
    ]
    assert [session_id for page in pages for session_id in page] == everything


async def test_a_session_recreated_by_another_owner_gets_none_of_the_first_owners_writes(
    store: BaseStore,
) -> None:
    alice = Owner("acme", "alice", "support-acme")
    await store.create_session("s", agent_id="support-acme", user_id="alice", tenant_id="acme")
    await store.append_message("s", "user", "first", owner=alice)
    # Between two of alice's calls the id is deleted and taken by bob.
    assert await store.delete_session("s") is True
    await store.create_session("s", agent_id="support", user_id="bob", tenant_id="globex")
    await store.append_message("s", "user", "bob's own", owner=BOB)

    with pytest.raises(SessionNotFoundError):
        await store.append_message("s", "user", "second", owner=alice)
    with pytest.raises(SessionNotFoundError):
        await store.save_state("s", {"alice": True}, owner=alice)
    assert await store.list_recent_messages("s", limit=10, owner=alice) == []
    assert [m.content for m in await store.list_messages("s")] == ["bob's own"]
    assert await store.list_states("s") == []


async def test_iterating_stops_when_the_session_changes_owner_between_batches(
    store: BaseStore,
) -> None:
    alice = Owner("acme", "alice", "support-acme")
    await store.create_session("s", agent_id="support-acme", user_id="alice", tenant_id="acme")
    await store.append_messages("s", [NewMessage("user", f"alice {n}") for n in range(4)])
    seen = []
    async for message in store.iter_messages("s", batch_size=2, owner=alice):
        seen.append(message.content)
        if len(seen) == 2:
            await store.delete_session("s")
            await store.create_session("s", agent_id="support", user_id="bob", tenant_id="globex")
            await store.append_messages("s", [NewMessage("user", f"bob {n}") for n in range(4)])
    assert seen == ["alice 0", "alice 1"]


async def test_agent_records_stay_with_the_tenant_that_registered_them(
    store: BaseStore,
) -> None:
    acme, globex = Owner("acme", "alice"), Owner("globex", "bob")
    registered = await store.upsert_agent("support", name="Acme support", model="m1", owner=acme)
    assert registered.tenant_id == "acme"
    with pytest.raises(AgentExistsError, match="'support' is registered by another tenant"):
        await store.upsert_agent("support", name="Globex support", model="m2", owner=globex)
    with pytest.raises(AgentExistsError):
        await store.upsert_agent("support", name="No tenant", owner=Owner(None, "bob"))
    assert await store.get_agent("support") == registered  # unchanged

    again = await store.upsert_agent("support", name="Acme support", state="stopped", owner=acme)
    assert (again.state, again.tenant_id, again.created_at) == (
        "stopped",
        "acme",
        registered.created_at,
    )
    # Code holding the store itself (no scope) may change it, and keeps its tenant.
    admin = await store.upsert_agent("support", name="Renamed")
    assert (admin.name, admin.tenant_id) == ("Renamed", "acme")
    assert await store.get_agent("support") == admin
    assert [agent.tenant_id for agent in await store.list_agents()] == ["acme"]


async def test_an_agent_a_session_creates_belongs_to_the_sessions_tenant(
    store: BaseStore,
) -> None:
    await store.create_session("s", agent_id="helper", user_id="bob", tenant_id="globex")
    placeholder = await store.get_agent("helper")
    assert placeholder is not None
    assert placeholder.tenant_id == "globex"
    with pytest.raises(AgentExistsError):
        await store.upsert_agent("helper", name="Acme's helper", owner=Owner("acme"))
    claimed = await store.upsert_agent("helper", name="Globex helper", owner=Owner("globex"))
    assert (claimed.name, claimed.tenant_id) == ("Globex helper", "globex")
    unscoped = await store.upsert_agent("fresh")
    assert unscoped.tenant_id is None


async def test_an_owner_must_be_an_owner(store: BaseStore) -> None:
    await _bobs_session(store)
    with pytest.raises(InvalidInputError, match=r"owner must be a mofa\.persistence\.Owner"):
        await store.get_session("b-1", owner="globex")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="tenant id"):
        await store.list_messages("b-1", owner=Owner(tenant_id=""))


# ------------------------------------------------------------------ the plugin


def _plugin(store: BaseStore, owner: Owner) -> PersistencePlugin:
    return PersistencePlugin("persistence", store, owner.user_id, owner.tenant_id, owner.agent_id)


@pytest.mark.parametrize("stranger", STRANGERS.values(), ids=list(STRANGERS))
async def test_every_plugin_method_treats_another_owners_session_as_missing(
    store: BaseStore, stranger: Owner
) -> None:
    await _bobs_session(store)
    before = await _snapshot(store)
    plugin = _plugin(store, stranger)

    assert await plugin.get_session("b-1") is None
    with pytest.raises(SessionNotFoundError):
        await plugin.require_session("b-1")
    assert await plugin.load_history("b-1", limit=10) == []
    assert await plugin.load_history("b-1", limit=10, up_to_seq=3) == []
    assert await plugin.load_state("b-1") is None
    assert "b-1" not in [session.session_id for session in await plugin.list_sessions()]
    with pytest.raises(SessionNotFoundError):
        await plugin.record_user_message("b-1", "injected")
    with pytest.raises(SessionNotFoundError):
        await plugin.record_reply("b-1", "injected", {"model": "m"})
    with pytest.raises(SessionNotFoundError):
        await plugin.record_error("b-1", "boom", {})
    with pytest.raises(SessionNotFoundError):
        await plugin.record_messages("b-1", [NewMessage("user", "injected")])
    with pytest.raises(SessionNotFoundError):
        await plugin.save_state("b-1", {"step": 99})
    with pytest.raises(SessionNotFoundError):
        await plugin.mark_expired("b-1")
    with pytest.raises(SessionNotFoundError):
        await plugin.extend_session("b-1", 3600)
    assert await plugin.delete_session("b-1") is False
    # Only taking the id is refused as taken: session ids are global.
    with pytest.raises(SessionExistsError):
        await plugin.open_session("b-1")
    with pytest.raises(SessionExistsError):
        await plugin.create_session("b-1")

    assert await _snapshot(store) == before


async def test_the_plugin_works_on_its_own_sessions(store: BaseStore) -> None:
    plugin = _plugin(store, BOB)
    await plugin.register_agent(
        "support", name=None, state="running", provider="p", model="m", description=None
    )
    session = await plugin.open_session("mine", ttl_seconds=60)
    assert (session.tenant_id, session.user_id, session.agent_id) == ("globex", "bob", "support")
    assert (await plugin.open_session("mine")).session_id == "mine"
    await plugin.record_user_message("mine", "hello")
    await plugin.record_reply("mine", "hi", {"model": "m"})
    assert [m.content for m in await plugin.load_history("mine", limit=5)] == ["hello", "hi"]
    await plugin.save_state("mine", {"k": 1})
    state = await plugin.load_state("mine")
    assert state is not None
    assert state.state == {"k": 1}
    extended = await plugin.extend_session("mine", 3600)
    assert extended.expires_at is not None
    assert extended.expires_at - extended.updated_at > timedelta(seconds=3000)
    assert (await plugin.mark_expired("mine")).status == "expired"
    assert [s.session_id for s in await plugin.list_sessions()] == ["mine"]
    assert await plugin.delete_session("mine") is True


async def test_two_tenants_registering_one_agent_id_through_plugins(store: BaseStore) -> None:
    acme = PersistencePlugin("persistence", store, "alice", "acme", "support")
    globex = PersistencePlugin("persistence", store, "bob", "globex", "support")
    fields: dict[str, Any] = {"name": "Support", "state": "running", "provider": "p"}
    await acme.register_agent("support", model="acme-model", description=None, **fields)
    with pytest.raises(AgentExistsError):
        await globex.register_agent("support", model="globex-model", description=None, **fields)
    agent = await store.get_agent("support")
    assert agent is not None
    assert (agent.model, agent.tenant_id) == ("acme-model", "acme")
