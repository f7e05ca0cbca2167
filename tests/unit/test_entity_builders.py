"""The fast builders the row readers use make entities indistinguishable from the public
constructors' (issue 18): the same type, attributes, equality, hashing, immutability, repr,
pickling, copies and dataclasses.replace, whichever way an object was made."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from mofa.persistence import Message, Role, Session
from mofa.persistence._entities import build_message, build_session

WHEN = datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)
LATER = datetime(2026, 12, 7, tzinfo=UTC)

MESSAGE_ARGS = ("s-1", 3, Role.ASSISTANT, "hello", {"model": "m", "n": [1, 2]}, WHEN, 42)
SESSION_ARGS = ("s-1", "agent", "user", None, "active", {"k": "v"}, 7, WHEN, LATER, None)

CASES = [
    pytest.param(Message, build_message, MESSAGE_ARGS, "seq", id="message"),
    pytest.param(Session, build_session, SESSION_ARGS, "message_count", id="session"),
]


def pair(entity: type, builder: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, Any]:
    """The same values, once through the public constructor and once through the builder.
    Each gets its own copy of the mutable metadata, as two loads would."""
    made = entity(*copy.deepcopy(args))
    built = builder(*copy.deepcopy(args))
    return made, built


@pytest.mark.parametrize(("entity", "builder", "args", "number"), CASES)
class TestBuiltIsTheEntity:
    def test_type_and_attributes(
        self, entity: type, builder: Callable[..., Any], args: tuple[Any, ...], number: str
    ) -> None:
        made, built = pair(entity, builder, args)
        assert type(built) is entity
        assert isinstance(built, entity)
        for item in dataclasses.fields(entity):
            assert getattr(built, item.name) == getattr(made, item.name)
        assert not hasattr(built, "__dict__")
        assert dataclasses.is_dataclass(built)
        assert dataclasses.asdict(built) == dataclasses.asdict(made)  # type: ignore[arg-type]
        assert dataclasses.astuple(built) == dataclasses.astuple(made)  # type: ignore[arg-type]

    def test_equality_both_ways(
        self, entity: type, builder: Callable[..., Any], args: tuple[Any, ...], number: str
    ) -> None:
        made, built = pair(entity, builder, args)
        assert built == made
        assert made == built
        assert (built != made) is False
        other = dataclasses.replace(made, **{number: getattr(made, number) + 1})
        assert built != other
        assert other != built

    def test_hashing_behaves_the_same(
        self, entity: type, builder: Callable[..., Any], args: tuple[Any, ...], number: str
    ) -> None:
        made, built = pair(entity, builder, args)
        # Both carry a metadata dict: both refuse to hash, with the same error.
        with pytest.raises(TypeError) as from_made:
            hash(made)
        with pytest.raises(TypeError) as from_built:
            hash(built)
        assert str(from_built.value) == str(from_made.value)
        assert type(built).__hash__ is type(made).__hash__

    def test_immutable(
        self, entity: type, builder: Callable[..., Any], args: tuple[Any, ...], number: str
    ) -> None:
        _made, built = pair(entity, builder, args)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(built, number, 99)
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(built, number)
        with pytest.raises((AttributeError, TypeError)):
            built.unknown = 1
        assert (
            getattr(built, number)
            == args[list(f.name for f in dataclasses.fields(entity)).index(number)]
        )

    def test_repr(
        self, entity: type, builder: Callable[..., Any], args: tuple[Any, ...], number: str
    ) -> None:
        made, built = pair(entity, builder, args)
        assert repr(built) == repr(made)
        assert repr(built).startswith(entity.__name__ + "(")

    def test_pickling(
        self, entity: type, builder: Callable[..., Any], args: tuple[Any, ...], number: str
    ) -> None:
        made, built = pair(entity, builder, args)
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            loaded = pickle.loads(pickle.dumps(built, protocol))
            assert type(loaded) is entity
            assert loaded == made
            assert pickle.dumps(built, protocol) == pickle.dumps(made, protocol)

    def test_copies(
        self, entity: type, builder: Callable[..., Any], args: tuple[Any, ...], number: str
    ) -> None:
        made, built = pair(entity, builder, args)
        shallow = copy.copy(built)
        assert type(shallow) is entity
        assert shallow == made
        assert shallow.metadata is built.metadata  # type: ignore[attr-defined]
        deep = copy.deepcopy(built)
        assert type(deep) is entity
        assert deep == made
        assert deep.metadata is not built.metadata

    def test_replace(
        self, entity: type, builder: Callable[..., Any], args: tuple[Any, ...], number: str
    ) -> None:
        made, built = pair(entity, builder, args)
        changed = dataclasses.replace(built, **{number: 100})
        assert type(changed) is entity
        assert getattr(changed, number) == 100
        assert changed == dataclasses.replace(made, **{number: 100})
        assert getattr(built, number) != 100  # the original is untouched


def test_builders_make_no_other_class() -> None:
    """Nothing of the builder classes shows: not in the MRO, not as a type."""
    message = build_message(*MESSAGE_ARGS)
    session = build_session(*SESSION_ARGS)
    assert type(message).__mro__ == (Message, object)
    assert type(session).__mro__ == (Session, object)
    assert session.effective_status == "active"  # Session's own methods work
    assert not session.is_expired()


async def test_loaded_entities_are_plain_entities(tmp_path: Any) -> None:
    """What a store's reads return (built by the row readers) compares, pickles and copies
    as the public constructors' objects do."""
    from mofa.persistence import NewMessage, open_store

    store = await open_store(f"sqlite://{tmp_path / 'b.db'}")
    try:
        created = await store.create_session("s", user_id="u", agent_id="a", metadata={"x": 1})
        appended = await store.append_messages(
            "s", [NewMessage("user", "hi", {"a": [1]}), NewMessage("assistant", "yo")]
        )
        loaded = await store.list_messages("s")
        listed = await store.list_sessions(user_id="u")
    finally:
        await store.close()
    assert loaded == appended
    for message in [*loaded, *appended]:
        assert type(message) is Message
        twin = Message(*(getattr(message, f.name) for f in dataclasses.fields(Message)))
        assert twin == message
        assert repr(twin) == repr(message)
        assert pickle.loads(pickle.dumps(message)) == message
        assert copy.deepcopy(message) == message
        with pytest.raises(dataclasses.FrozenInstanceError):
            message.content = "changed"  # type: ignore[misc]
    (session,) = listed
    assert type(session) is Session
    assert session.metadata == created.metadata == {"x": 1}
    assert dataclasses.replace(session, message_count=0).message_count == 0
