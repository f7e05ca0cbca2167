"""Messages: order, atomicity, paging, counts and byte-exact round trips on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from mofa.persistence import (
    BaseStore,
    InvalidInputError,
    NewMessage,
    Role,
    SessionNotFoundError,
)
from mofa.persistence._codec import MAX_JSON_DEPTH


async def test_appends_number_messages_per_session(store: BaseStore) -> None:
    await store.create_session("a")
    await store.create_session("b")
    first = await store.append_message("a", "user", "one")
    second = await store.append_message("a", Role.ASSISTANT, "two", metadata={"model": "m"})
    other = await store.append_message("b", "user", "other")
    assert (first.seq, second.seq, other.seq) == (1, 2, 1)
    assert second.role is Role.ASSISTANT
    assert second.metadata == {"model": "m"}
    history = await store.list_messages("a")
    assert [(m.seq, m.role, m.content) for m in history] == [
        (1, Role.USER, "one"),
        (2, Role.ASSISTANT, "two"),
    ]
    assert history[1] == second


async def test_append_moves_count_and_updated_at(store: BaseStore) -> None:
    created = await store.create_session("s")
    await store.append_message("s", "user", "x")
    await store.append_messages("s", [NewMessage("user", "y"), NewMessage("assistant", "z")])
    session = await store.get_session("s")
    assert session is not None
    assert session.message_count == 3
    assert await store.count_messages("s") == 3
    assert session.updated_at >= created.updated_at
    assert session.created_at == created.created_at


async def test_batch_keeps_order_and_returns_messages(store: BaseStore) -> None:
    await store.create_session("s")
    await store.append_message("s", "system", "be brief")
    batch = [NewMessage("user" if n % 2 else "assistant", f"m{n}", {"n": n}) for n in range(50)]
    stored = await store.append_messages("s", batch)
    assert [m.seq for m in stored] == list(range(2, 52))
    assert [m.content for m in stored] == [f"m{n}" for n in range(50)]
    history = await store.list_messages("s")
    assert [m.seq for m in history] == list(range(1, 52))
    assert [m.metadata for m in history[1:]] == [{"n": n} for n in range(50)]
    assert history[1:] == stored


async def test_batch_is_all_or_nothing(store: BaseStore) -> None:
    await store.create_session("s")
    await store.append_message("s", "user", "before")
    bad = [NewMessage("user", "fine"), NewMessage("robot", "bad role")]
    with pytest.raises(InvalidInputError):
        await store.append_messages("s", bad)
    nul = [NewMessage("user", "fine"), NewMessage("user", "bad\x00")]
    with pytest.raises(InvalidInputError):
        await store.append_messages("s", nul)
    with pytest.raises(SessionNotFoundError):
        await store.append_messages("missing", [NewMessage("user", "x")])
    assert [m.content for m in await store.list_messages("s")] == ["before"]
    assert await store.count_messages("s") == 1
    assert await store.append_messages("s", []) == []
    with pytest.raises(SessionNotFoundError):
        await store.append_messages("missing", [])


async def test_last_n_and_paging(store: BaseStore) -> None:
    await store.create_session("s")
    await store.append_messages("s", [NewMessage("user", f"m{n}") for n in range(1, 101)])
    recent = await store.list_recent_messages("s", limit=20)
    assert [m.seq for m in recent] == list(range(81, 101))
    assert [m.content for m in recent] == [f"m{n}" for n in range(81, 101)]
    assert [m.seq for m in await store.list_recent_messages("s", limit=500)] == list(range(1, 101))
    assert await store.list_recent_messages("s", limit=0) == []
    page = await store.list_messages("s", limit=10)
    assert [m.seq for m in page] == list(range(1, 11))
    page = await store.list_messages("s", limit=10, after_seq=page[-1].seq)
    assert [m.seq for m in page] == list(range(11, 21))
    assert [m.seq for m in await store.list_messages("s", after_seq=95)] == [96, 97, 98, 99, 100]
    assert await store.list_messages("s", after_seq=100) == []
    streamed = [m.seq async for m in store.iter_messages("s", batch_size=7)]
    assert streamed == list(range(1, 101))


async def test_unknown_role_and_missing_session(store: BaseStore) -> None:
    await store.create_session("s")
    with pytest.raises(InvalidInputError, match="role"):
        await store.append_message("s", "robot", "hi")
    with pytest.raises(SessionNotFoundError):
        await store.append_message("missing", "user", "hi")
    with pytest.raises(SessionNotFoundError):
        await store.append_messages("missing", [NewMessage("user", f"m{n}") for n in range(4)])
    assert await store.count_messages("s") == 0
    assert await store.get_session("missing") is None


@pytest.mark.parametrize(
    "content", ["nul \x00 inside", "lone \ud83d surrogate"], ids=["nul", "surrogate"]
)
async def test_unstorable_text_is_rejected(store: BaseStore, content: str) -> None:
    await store.create_session("s")
    with pytest.raises(InvalidInputError):
        await store.append_message("s", "user", content)
    with pytest.raises(InvalidInputError):
        await store.append_message("s", "user", "ok", metadata={"k": content})
    assert await store.count_messages("s") == 0


async def test_metadata_must_be_json(store: BaseStore) -> None:
    await store.create_session("s")
    with pytest.raises(InvalidInputError):
        await store.append_message("s", "user", "x", metadata={"when": datetime.now(UTC)})
    with pytest.raises(InvalidInputError):
        await store.append_message("s", "user", "x", metadata={"n": float("inf")})
    with pytest.raises(InvalidInputError):
        await store.append_message("s", "user", 42)  # type: ignore[arg-type]
    assert await store.count_messages("s") == 0


async def test_keys_that_are_not_strings_are_refused_not_turned_into_strings(
    store: BaseStore,
) -> None:
    # json.dumps writes 1 as "1": {1: "a", "1": "b"} would come back as {"1": "b"}.
    await store.create_session("s")
    bad_maps: list[dict[Any, object]] = [  # keys of any type: the store must refuse them
        {1: "a", "1": "b"},
        {"x": [{None: 1}]},
        {"x": {"y": {1.5: 2}}},
        {True: 1},
    ]
    for bad in bad_maps:
        with pytest.raises(InvalidInputError, match="which is not a string"):
            await store.append_message("s", "user", "x", metadata=bad)
        with pytest.raises(InvalidInputError, match="which is not a string"):
            await store.save_state("s", bad)
        with pytest.raises(InvalidInputError, match="which is not a string"):
            await store.create_session(metadata=bad)
    assert await store.count_messages("s") == 0
    assert await store.get_state("s") is None
    assert [session.session_id for session in await store.list_sessions()] == ["s"]


async def test_integers_beyond_64_bits_are_refused_not_rounded(store: BaseStore) -> None:
    await store.create_session("s")
    for huge in (2**64, -(2**63) - 1, 10**30):
        with pytest.raises(InvalidInputError, match="64-bit"):
            await store.append_message("s", "user", "x", metadata={"n": [1, {"deep": huge}]})
        with pytest.raises(InvalidInputError, match="64-bit"):
            await store.save_state("s", {"n": huge})
    assert await store.count_messages("s") == 0
    assert await store.get_state("s") is None

    edges = {"max": 2**64 - 1, "min": -(2**63), "digits": "1" * 40, "float": 1.5e300}
    await store.append_message("s", "user", "x", metadata=edges)
    await store.save_state("s", edges)
    assert (await store.list_messages("s"))[0].metadata == edges
    state = await store.get_state("s")
    assert state is not None
    assert state.state == edges


def _nested(depth: int) -> dict[str, object]:
    """A JSON object ``depth`` levels deep (the object itself is level 1)."""
    inner: object = "leaf"
    for level in range(depth - 1):
        inner = [inner] if level % 2 else {"k": inner}
    return {"top": inner}


async def test_nesting_deeper_than_every_backend_stores_is_refused(store: BaseStore) -> None:
    await store.create_session("s")
    for depth in (MAX_JSON_DEPTH + 1, 5000):  # one level too many, and past Python's stack
        with pytest.raises(InvalidInputError, match="levels deep"):
            await store.append_message("s", "user", "x", metadata=_nested(depth))
        with pytest.raises(InvalidInputError, match="levels deep"):
            await store.append_messages("s", [NewMessage("user", "x", _nested(depth))])
        with pytest.raises(InvalidInputError, match="levels deep"):
            await store.save_state("s", _nested(depth))
        with pytest.raises(InvalidInputError, match="levels deep"):
            await store.create_session("t", metadata=_nested(depth))
    assert await store.count_messages("s") == 0
    assert await store.get_state("s") is None
    assert await store.get_session("t") is None

    deepest = _nested(MAX_JSON_DEPTH)
    await store.append_message("s", "user", "x", metadata=deepest)
    await store.save_state("s", deepest)
    await store.create_session("t", metadata=deepest)
    assert (await store.list_messages("s"))[0].metadata == deepest
    state = await store.get_state("s")
    assert state is not None
    assert state.state == deepest
    session = await store.get_session("t")
    assert session is not None
    assert session.metadata == deepest
    # Brackets inside strings are text, not nesting.
    await store.append_message("s", "user", "x", metadata={"text": "[{" * 100})


async def test_limits_beyond_any_count_mean_no_limit(store: BaseStore) -> None:
    await store.create_session("s", agent_id="a")
    await store.append_messages("s", [NewMessage("user", f"m{n}") for n in range(3)])
    await store.save_state("s", {"v": 1})
    for huge in (2**31, 2**63, 2**64, 10**30):
        assert len(await store.list_messages("s", limit=huge)) == 3
        assert len(await store.list_recent_messages("s", limit=huge)) == 3
        assert await store.list_messages("s", after_seq=huge) == []
        assert [m.seq async for m in store.iter_messages("s", batch_size=huge)] == [1, 2, 3]
        assert len(await store.list_sessions(limit=huge)) == 1
        assert await store.list_sessions(limit=5, offset=huge) == []
        assert len(await store.list_states("s", limit=huge)) == 1
        assert await store.get_state("s", version=huge) is None
        assert [agent.id for agent in await store.list_agents(limit=huge)] == ["a"]


async def test_text_round_trips_byte_for_byte(store: BaseStore) -> None:
    await store.create_session("s")
    samples = [
        "emoji 🎉👩‍👩‍👧‍👦 and CJK 你好，世界 日本語 한국어",
        "",
        "  leading and trailing spaces  ",
        "line\nbreaks\r\nand\ttabs",
        "quotes ' \" ` and backslashes \\ \\n and %s %(x)s {} $1 ?",
        "\u200b zero width, \ufeff BOM, \U0010ffff max code point",
        "'); DROP TABLE messages; --",
    ]
    for text in samples:
        await store.append_message("s", "user", text, metadata={"echo": text, "nested": [text]})
    history = await store.list_messages("s")
    assert [m.content for m in history] == samples
    assert [m.metadata for m in history] == [{"echo": t, "nested": [t]} for t in samples]


async def test_ten_megabyte_message(store: BaseStore) -> None:
    await store.create_session("s")
    big = ("0123456789abcdef" * 65536) * 10  # 10 MiB
    big = big[:-4] + "末尾🎉"
    stored = await store.append_message("s", "tool", big)
    assert stored.content == big
    [loaded] = await store.list_messages("s")
    assert loaded.content == big
    assert len(loaded.content.encode()) == len(big.encode())


async def test_datetimes_round_trip_in_utc(store: BaseStore) -> None:
    await store.create_session("s")
    plus_two = timezone(timedelta(hours=2))
    written = datetime(2024, 2, 28, 12, 30, 5, 123456, tzinfo=plus_two)
    stored = await store.append_message("s", "user", "x", timestamp=written)
    assert stored.timestamp == written
    [loaded] = await store.list_messages("s")
    assert loaded.timestamp == written
    assert loaded.timestamp.utcoffset() == timedelta(0)
    assert loaded.timestamp.hour == 10
    with pytest.raises(InvalidInputError):
        await store.append_message("s", "user", "x", timestamp=datetime(2024, 1, 1))


async def test_default_timestamps_are_recent_and_ordered(store: BaseStore) -> None:
    await store.create_session("s")
    before = datetime.now(UTC)
    for n in range(5):
        await store.append_message("s", "user", str(n))
    after = datetime.now(UTC)
    stamps = [m.timestamp for m in await store.list_messages("s")]
    assert stamps == sorted(stamps)
    assert all(before - timedelta(seconds=1) <= s <= after + timedelta(seconds=1) for s in stamps)


async def test_metadata_types_round_trip(store: BaseStore) -> None:
    await store.create_session("s")
    metadata = {
        "model": "gpt-4o",
        "usage": {"prompt_tokens": 12, "completion_tokens": 30},
        "latency_ms": 123.5,
        "ok": True,
        "none": None,
        "list": [1, "two", 3.0, False],
        "big": 2**53,
        "negative": -7,
        "unicode": "ключ 🔑",
    }
    await store.append_message("s", "assistant", "x", metadata=metadata)
    [loaded] = await store.list_messages("s")
    assert loaded.metadata == metadata
