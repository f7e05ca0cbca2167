"""Export and import (``mofa.persistence.transfer``): export → import → export gives the same
bytes, in every format, and the export keeps the seeds' shape."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from mofa.persistence import BaseStore, NewMessage, Owner
from mofa.persistence.transfer import (
    ExportFormatError,
    export_session,
    export_sessions,
    import_session,
    import_sessions,
)

AWKWARD = [
    NewMessage("system", "You are terse."),
    NewMessage(
        "user", "emoji 👍🏽 ❤️ 1️⃣, CJK 你好世界, RTL שלום, \u200b zero-width, \t tab\nnewline"
    ),
    NewMessage(
        "assistant",
        "partial answer",
        {"status": "partial", "usage": {"prompt_tokens": 3, "ratio": 0.1, "neg": -0.0}},
    ),
    NewMessage(
        "tool", '{"json": "inside text"}', {"tool_call_id": "call_1", "deep": [[[{"a": 1}]]]}
    ),
    NewMessage("assistant", "failed", {"status": "failed", "error": "timeout"}),
]


async def fill(store: BaseStore, session_id: str = "awkward", **owner: str) -> None:
    await store.upsert_agent(
        owner.get("agent_id", "agent-t"), name="Tester", provider="openai", model="gpt-4o-mini"
    )
    await store.create_session(
        session_id,
        agent_id=owner.get("agent_id", "agent-t"),
        user_id=owner.get("user_id", "user-t"),
        tenant_id=owner.get("tenant_id", "tenant-t"),
        metadata={"topic": "tests", "user_id": "shadowed", "nested": {"k": [1, None, True]}},
        expires_at=datetime(2020, 1, 1, 0, 0, 0, 1, tzinfo=UTC),  # expired
    )
    start = datetime(2024, 2, 28, 10, 30, 5, 123456, tzinfo=UTC)
    await store.append_messages(
        session_id,
        [
            NewMessage(m.role, m.content, m.metadata, start + timedelta(microseconds=index))
            for index, m in enumerate(AWKWARD)
        ],
    )
    await store.save_state(session_id, {"step": 1})
    await store.save_state(session_id, {"step": 2, "memory": ["a", "ü"]})
    await store.update_session(session_id, status="closed")


async def exported(store: BaseStore, session_id: str, kind: str) -> bytes:
    buffer = io.BytesIO()
    await export_session(store, session_id, buffer, format=kind)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["json", "yaml", "jsonl"])
async def test_export_import_export_gives_the_same_bytes(store: BaseStore, kind: str) -> None:
    await fill(store)
    first = await exported(store, "awkward", kind)
    assert await store.delete_session("awkward")
    result = await import_session(store, io.BytesIO(first), name="backup")
    assert (result.session_id, result.outcome, result.messages) == ("awkward", "imported", 5)
    assert await exported(store, "awkward", kind) == first


async def test_the_json_export_keeps_the_seeds_shape(store: BaseStore) -> None:
    await fill(store)
    document = json.loads(await exported(store, "awkward", "json"))
    assert document["format"] == "mofa-session/1"
    assert document["session_id"] == "awkward"
    assert document["metadata"]["agent_id"] == "agent-t"
    assert document["metadata"]["user_id"] == "user-t"
    assert document["shadowed_metadata"] == {"user_id": "shadowed"}
    assert [m["role"] for m in document["messages"]] == [m.role for m in AWKWARD]
    assert document["messages"][0]["timestamp"] == "2024-02-28T10:30:05.123456Z"
    assert [m["seq"] for m in document["messages"]] == [1, 2, 3, 4, 5]
    assert [s["version"] for s in document["agent_state"]] == [1, 2]
    assert document["status"] == "closed"
    assert document["expires_at"] == "2020-01-01T00:00:00.000001Z"
    assert document["agent"]["model"] == "gpt-4o-mini"
    assert document["integrity"]["message_count"] == 5


async def test_a_tenant_backup_restores_every_session(store: BaseStore) -> None:
    for index in range(3):
        await fill(store, f"acme-{index}", tenant_id="acme")
    await fill(store, "other", tenant_id="globex")
    backup = io.BytesIO()
    totals = await export_sessions(store, backup, tenant_id="acme")
    assert (totals.sessions, totals.messages) == (3, 15)
    before = {sid: await exported(store, sid, "jsonl") for sid in ("acme-0", "acme-1", "acme-2")}
    for session_id in before:
        await store.delete_session(session_id)
    results = await import_sessions(store, io.BytesIO(backup.getvalue()))
    assert [(r.session_id, r.outcome) for r in results] == [
        ("acme-0", "imported"),
        ("acme-1", "imported"),
        ("acme-2", "imported"),
    ]
    for session_id, data in before.items():
        assert await exported(store, session_id, "jsonl") == data
    # skip: a re-import changes nothing
    again = await import_sessions(store, io.BytesIO(backup.getvalue()), on_conflict="skip")
    assert {r.outcome for r in again} == {"skipped"}
    for session_id, data in before.items():
        assert await exported(store, session_id, "jsonl") == data


async def test_a_taken_id_fails_or_imports_under_a_new_one(store: BaseStore) -> None:
    await fill(store)
    data = await exported(store, "awkward", "json")
    with pytest.raises(ExportFormatError, match="awkward"):
        await import_session(store, io.BytesIO(data))
    results = await import_sessions(store, io.BytesIO(data))
    assert results[0].outcome == "failed"
    copy = await import_session(store, io.BytesIO(data), session_id="copy")
    assert copy.session_id == "copy"
    copied = await store.get_session("copy")
    original = await store.get_session("awkward")
    assert copied is not None
    assert original is not None
    assert (copied.updated_at, copied.message_count) == (original.updated_at, 5)
    replaced = await import_session(store, io.BytesIO(data), on_conflict="replace")
    assert replaced.outcome == "replaced"
    assert await exported(store, "awkward", "json") == data


async def test_an_import_through_an_owner_never_replaces_another_owners_session(
    store: BaseStore,
) -> None:
    """A tenant restoring its own backup cannot overwrite another tenant's session that has
    the same id, nor import a session that is not its own."""
    await fill(store, "shared", tenant_id="victim", user_id="v", agent_id="agent-v")
    victim = await exported(store, "shared", "jsonl")
    await fill(store, "mine", tenant_id="acme", user_id="u", agent_id="agent-a")
    mine = await exported(store, "mine", "jsonl")
    acme = Owner(tenant_id="acme", user_id="u", agent_id="agent-a")
    # acme's backup, edited to claim the victim's id
    hostile = mine.replace(b'"session_id":"mine"', b'"session_id":"shared"')
    for policy in ("fail", "skip", "replace"):
        results = await import_sessions(
            store,
            io.BytesIO(hostile),
            on_conflict=policy,
            owner=acme,
        )
        assert [r.outcome for r in results] == ["failed"]
        assert "already exists" in (results[0].error or "")
        assert ("another owner" in (results[0].error or "")) == (policy != "fail")
    assert await exported(store, "shared", "jsonl") == victim
    # the victim's own export, imported through acme's scope
    (result,) = await import_sessions(store, io.BytesIO(victim), owner=acme, session_id="new")
    assert (result.outcome, "owner scope" in (result.error or "")) == ("failed", True)
    assert await store.get_session("new") is None
    # acme's own session is replaced through acme's scope
    (result,) = await import_sessions(store, io.BytesIO(mine), on_conflict="replace", owner=acme)
    assert result.outcome == "replaced"
    assert await exported(store, "mine", "jsonl") == mine
