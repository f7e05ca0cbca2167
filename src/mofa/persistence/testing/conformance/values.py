"""Values every backend keeps alike: what PostgreSQL's JSONB would change (-0.0, whole floats
from 1e16, key order, a key given twice) is changed at write, in the shared codec, so every
backend returns the same Python value — the same types, signs and key order, not only ``==``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from mofa.persistence import BaseStore, InvalidInputError

#: A value with every kind of change, and what each backend must return for it.
GIVEN: dict[str, Any] = {
    "b": -0.0,
    "aa": [1e16, -1e16, 9999999999999998.0, 1e22, 2.0**63, -(2.0**63), 1.5, 0.0],
    "a": {"zz": 1, "y": {"é": 2, "e": 3, "": 4}},
    "A": 2**64 - 1,
}
RETURNED: dict[str, Any] = {
    "A": 2**64 - 1,
    "a": {"y": {"": 4, "e": 3, "é": 2}, "zz": 1},
    "b": 0.0,
    "aa": [10**16, -(10**16), 9999999999999998.0, 1e22, 2**63, -(2**63), 1.5, 0.0],
}


def strictly_equal(left: Any, right: Any) -> bool:
    """``==`` that also tells int from float, 0.0 from -0.0 and one key order from another."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(
            strictly_equal(left[key], right[key]) for key in left
        )
    if isinstance(left, list):
        return len(left) == len(right) and all(
            strictly_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, float):
        return left == right and math.copysign(1.0, left) == math.copysign(1.0, right)
    return bool(left == right)


def test_the_expected_value_equals_the_given_one() -> None:
    assert RETURNED == GIVEN  # Python's == already ignores all of these differences
    assert not strictly_equal(RETURNED, GIVEN)


async def test_json_comes_back_with_the_same_types_signs_and_key_order(store: BaseStore) -> None:
    session = await store.create_session("s", metadata=GIVEN)
    message = await store.append_message("s", "user", "x", metadata=GIVEN)
    state = await store.save_state("s", GIVEN)
    updated = await store.update_session("s", metadata={"inner": GIVEN})
    for returned in (session.metadata, message.metadata, state.state, updated.metadata["inner"]):
        assert strictly_equal(returned, RETURNED), returned
    loaded = await store.get_session("s")
    assert loaded is not None
    [loaded_message] = await store.list_messages("s")
    loaded_state = await store.get_state("s")
    assert loaded_state is not None
    for read in (loaded.metadata["inner"], loaded_message.metadata, loaded_state.state):
        assert strictly_equal(read, RETURNED), read
    # So the CLI's JSON (json.dumps keeps the order) is the same text on every backend.
    assert json.dumps(loaded_message.metadata) == json.dumps(RETURNED)


class _Key(str):
    """A key that is not equal to the plain string it writes as JSON."""

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


class _TwoItems(dict[str, Any]):
    """A dict whose items() repeats a key, as json.dumps would write it."""

    def items(self) -> Any:
        return [("k", 1), ("k", 2)]


@pytest.mark.parametrize(
    "twice",
    [{_Key("k"): 1, "k": 2}, {"outer": [{_Key("k"): 1, _Key("k"): 2}]}, _TwoItems(k=1)],
    ids=["str-subclass", "nested", "dict-subclass"],
)
async def test_a_key_given_twice_is_refused(store: BaseStore, twice: dict[str, Any]) -> None:
    # JSON would hold {"k":1,"k":2}: JSONB keeps the last, the text backends would keep both.
    await store.create_session("s")
    with pytest.raises(InvalidInputError, match=r"has the key 'k' twice"):
        await store.append_message("s", "user", "x", metadata=twice)
    with pytest.raises(InvalidInputError, match=r"has the key 'k' twice"):
        await store.save_state("s", twice)
    with pytest.raises(InvalidInputError, match=r"has the key 'k' twice"):
        await store.create_session("t", metadata=twice)
    with pytest.raises(InvalidInputError, match=r"has the key 'k' twice"):
        await store.update_session("s", metadata=twice)
    assert await store.count_messages("s") == 0
    assert await store.get_state("s") is None
    assert [s.session_id for s in await store.list_sessions()] == ["s"]
    session = await store.get_session("s")
    assert session is not None
    assert session.metadata == {}
