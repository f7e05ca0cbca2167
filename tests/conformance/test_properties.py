"""Property tests on every backend: any text or JSON a store accepts comes back as the same
Python value (strictly: types, signs and key order too, which is the value every other backend
returns, since the store hands back the canonical value it wrote); anything it refuses raises
InvalidInputError and changes nothing.

Bounded for CI: a fixed number of examples per backend, derandomized (the same examples every
run: never flaky), no example database written into the repository.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from mofa.persistence import BaseStore, InvalidInputError
from mofa.persistence.testing.conformance.values import strictly_equal

# Hypothesis caches what it learns of the code under ./.hypothesis, even without an example
# database, from collection on (so before any fixture runs): keep that out of the work tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "mofa-tests-hypothesis")

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    # One store serves every example (each writes to sessions of its own); drawing long text
    # and nested JSON is slow by design.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

#: What no store keeps (refused), and characters that trip up encodings, collations and
#: quoting (kept byte for byte).
UNSTORABLE = ["\x00", "\ud800", "\udfff"]
SPECIAL = [
    "🎉",
    "👩\u200d👩\u200d👧\u200d👦",
    "你好，世界",
    "日本語",
    "\u200b",
    "\ufeff",
    "\U0010ffff",
    "'",
    '"',
    "\\",
    "\n",
    "\r\n",
    "%s",
    " ",
]
#: Numbers at the edges of what every backend keeps (-0.0, 1e308, whole floats that JSONB
#: turns into integers, integers around 2**63 and 2**64), and just past them (refused).
EDGE_NUMBERS: list[int | float] = [
    -0.0,
    0.0,
    1e308,
    -1e308,
    5e-324,
    1.7976931348623157e308,
    1e16,
    -1e16,
    9999999999999998.0,
    2.0**63,
    2.0**64,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
]
UNSTORABLE_NUMBERS = [2**64, -(2**63) - 1, 10**30, float("nan"), float("inf"), float("-inf")]
KEYS = ["", "a", "b", "aa", "A", "é", "键", "🔑", "ключ"]


def _texts(storable: bool, max_size: int = 30) -> st.SearchStrategy[str]:
    """Short text of any code point, text built of the special characters, and long text
    (up to 60,000 characters); ``storable``: without NUL or lone surrogates."""
    if storable:
        alphabet = st.characters(codec="utf-8", exclude_characters="\x00")
    else:
        alphabet = st.characters(exclude_categories=())
    short = st.text(alphabet=alphabet, max_size=max_size)
    specials = SPECIAL if storable else SPECIAL + UNSTORABLE
    mixed = st.lists(st.sampled_from(specials) | short, max_size=6).map("".join)
    long = st.builds(
        lambda piece, times: piece * times,
        st.sampled_from(specials) | st.text(alphabet=alphabet, min_size=1, max_size=3),
        st.integers(min_value=1_000, max_value=60_000),
    )
    return short | mixed | long


def _json_objects(storable: bool) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects nested up to a few levels; ``storable``: only values every store keeps."""
    numbers = (
        st.sampled_from(EDGE_NUMBERS if storable else EDGE_NUMBERS + UNSTORABLE_NUMBERS)
        | st.floats(allow_nan=not storable, allow_infinity=not storable)
        | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    )
    if not storable:
        numbers |= st.integers(min_value=2**62, max_value=2**65)
    keys = st.sampled_from(KEYS if storable else KEYS + UNSTORABLE) | _texts(storable, 8)
    values = st.recursive(
        st.none() | st.booleans() | numbers | _texts(storable),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    )
    return st.dictionaries(keys, values, max_size=5)


#: Half the examples hold only what every store keeps, so both outcomes are well covered.
texts = _texts(storable=True) | _texts(storable=False)
json_objects = _json_objects(storable=True) | _json_objects(storable=False)


async def _snapshot(store: BaseStore) -> tuple[Any, ...]:
    """Everything a refused write must leave as it was."""
    sessions = [(s.session_id, s.metadata, s.message_count) for s in await store.list_sessions()]
    messages = [(m.seq, m.content, m.metadata) for m in await store.list_messages("s")]
    return sessions, messages, [(s.version, s.state) for s in await store.list_states("s")]


@SETTINGS
@given(content=texts, metadata=json_objects)
async def test_accepted_messages_come_back_alike_and_refused_ones_change_nothing(
    store: BaseStore, content: str, metadata: dict[str, Any]
) -> None:
    if await store.get_session("s") is None:
        await store.create_session("s")
    before = await _snapshot(store)
    try:
        written = await store.append_message("s", "assistant", content, metadata=metadata)
    except InvalidInputError:
        event("message refused")
        assert await _snapshot(store) == before
        return
    event("message accepted")
    assert written.content == content
    assert written.metadata == metadata
    [read] = await store.list_messages("s", after_seq=written.seq - 1)
    assert read.seq == written.seq
    assert type(read.content) is str
    assert read.content == content
    assert strictly_equal(read.metadata, written.metadata)


@SETTINGS
@given(session_metadata=json_objects, state=json_objects)
async def test_accepted_session_metadata_and_state_come_back_alike(
    store: BaseStore, session_metadata: dict[str, Any], state: dict[str, Any]
) -> None:
    if await store.get_session("s") is None:
        await store.create_session("s")
    before = await _snapshot(store)
    session_id = f"s{len(before[0])}"
    try:
        created = await store.create_session(session_id, metadata=session_metadata)
    except InvalidInputError:
        event("session metadata refused")
        assert await _snapshot(store) == before
    else:
        event("session metadata accepted")
        assert created.metadata == session_metadata
        read = await store.get_session(session_id)
        assert read is not None
        assert strictly_equal(read.metadata, created.metadata)
        updated = await store.update_session("s", metadata=session_metadata)
        assert strictly_equal(updated.metadata, created.metadata)
        before = await _snapshot(store)
    try:
        saved = await store.save_state("s", state)
    except InvalidInputError:
        event("state refused")
        assert await _snapshot(store) == before
        return
    event("state accepted")
    assert saved.state == state
    loaded = await store.get_state("s", saved.version)
    assert loaded is not None
    assert strictly_equal(loaded.state, saved.state)
