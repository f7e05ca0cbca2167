"""The CLI's one renderer: box tables, JSON and YAML from the same dictionaries, and the
streaming writer that must produce exactly what rendering the whole document gives."""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from mofa.cli._render import (
    DocumentWriter,
    _plain_yaml_scalar,
    box_table,
    display_width,
    render,
    render_session_table,
    shown_id,
    to_yaml,
    truncate,
)

T0 = datetime(2024, 2, 28, 10, 30, tzinfo=UTC)

#: Text that is awkward for YAML, JSON or a table cell.
AWKWARD = [
    "Hello",
    "yes",
    "no",
    "null",
    "~",
    "- x",
    "a: b",
    "#x",
    "x #y",
    " lead",
    "trail ",
    "multi\nline",
    "multi\nline\n",
    "\ttab",
    "😀 emoji",
    "你好，世界",
    "é",
    "'q'",
    '"d"',
    "",
    "0123",
    "1e3",
    "2024-02-28",
    "10:30",
    "a\x85b",
    "a\u2028b",
    "x" * 500,
    "\x07bell",
    "@at",
    "`b",
    "%p",
    "!bang",
    "&a",
    "*a",
    "|p",
    ">f",
    "[a]",
    "{a}",
    "a,b",
    "?q",
    "? q",
    ":x",
    "multi\n\n  indent\n",
    "trailing\n\n",
    "\n\nlead",
    "\r\nwindows",
    "a\rb",
    "\ufeffbom",
    "\x1b[31mred",
    "...",
    "---",
    "--- x",
    "... x",
    "key:\n  - item",
    "true",
    "NaN",
    ".inf",
]


def document(contents: list[str]) -> dict[str, Any]:
    return {
        "session_id": "agent-001:session-123",
        "created_at": T0,
        "message_count": len(contents),
        "status": "active",
        "metadata": {
            "agent_id": "agent-001",
            "user_id": None,
            "tags": ["a", "b"],
            "nested": {"k": [1, {"x": "y"}]},
        },
        "messages": [
            {"timestamp": T0 + timedelta(seconds=index), "role": "user", "content": content}
            for index, content in enumerate(contents)
        ],
    }


def streamed(output_format: str, doc: dict[str, Any]) -> str:
    chunks: list[str] = []
    writer = DocumentWriter(output_format, chunks.append)  # type: ignore[arg-type]
    writer.start({key: value for key, value in doc.items() if key != "messages"}, "messages")
    for item in doc["messages"]:
        writer.add(item)
    writer.finish()
    assert writer.count == len(doc["messages"])
    return "".join(chunks)


def normalised(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as JSON gives it back: datetimes become the seeds' "…Z" strings."""
    return json.loads(render(doc, "json"))  # type: ignore[no-any-return]


def as_strings(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {key: as_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_strings(item) for item in value]
    return value


@pytest.mark.parametrize("output_format", ["json", "yaml"])
@pytest.mark.parametrize("size", [0, 1, 3])
def test_streaming_equals_rendering_the_whole_document(output_format: str, size: int) -> None:
    doc = document(AWKWARD[:size])
    assert streamed(output_format, doc) == render(doc, output_format) + "\n"  # type: ignore[arg-type]


@pytest.mark.parametrize("output_format", ["json", "yaml"])
def test_awkward_text_streams_and_reads_back_exactly(output_format: str) -> None:
    doc = document(AWKWARD)
    text = streamed(output_format, doc)
    assert text == render(doc, output_format) + "\n"  # type: ignore[arg-type]
    loaded = json.loads(text) if output_format == "json" else as_strings(yaml.safe_load(text))
    assert loaded == normalised(doc)
    assert list(loaded) == list(doc)


def test_yaml_is_unquoted_like_the_seeds_and_timestamps_read_back_as_instants() -> None:
    doc = document(
        ["Hello, I need help with my order", "I'd be happy to help! What's your order number?"]
    )
    text = render(doc, "yaml")
    assert text.startswith(
        "session_id: agent-001:session-123\n"
        "created_at: 2024-02-28T10:30:00Z\n"
        "message_count: 2\n"
        "status: active\n"
        "metadata:\n"
        "  agent_id: agent-001\n"
        "  user_id: null\n"
        "  tags:\n"
        "    - a\n"
        "    - b\n"
    )
    assert text.endswith(
        "messages:\n"
        "  - timestamp: 2024-02-28T10:30:00Z\n"
        "    role: user\n"
        "    content: Hello, I need help with my order\n"
        "  - timestamp: 2024-02-28T10:30:01Z\n"
        "    role: user\n"
        "    content: I'd be happy to help! What's your order number?"
    )
    assert yaml.safe_load(text)["created_at"] == T0


def test_multiline_text_is_a_literal_block() -> None:
    text = render({"content": "line one\nline two"}, "yaml")
    assert text == "content: |-\n  line one\n  line two"


def test_box_table_fits_columns_to_the_widest_cell_including_wide_characters() -> None:
    table = box_table(["id", "n"], [["你好", 1], ["abc", 22]])
    assert table.splitlines() == [
        "┌──────┬────┐",
        "│ id   │ n  │",
        "├──────┼────┤",
        "│ 你好 │ 1  │",
        "│ abc  │ 22 │",
        "└──────┴────┘",
    ]
    assert {display_width(line) for line in table.splitlines()} == {13}


def test_cells_are_single_line_and_cut_with_an_ellipsis() -> None:
    # Whitespace becomes a space; a control character is shown escaped, not obeyed.
    table = box_table(["c"], [["a\nb\tc\x1bd"], ["x" * 80]], max_widths={"c": 10})
    rows = table.splitlines()[3:5]
    assert rows == ["│ a b c\\x1bd │", "│ xxxxxxxxx… │"]
    assert truncate("你好世界", 5) == "你好…"
    assert truncate("short", 10) == "short"


def test_table_render_uses_dictionary_keys_as_headers() -> None:
    rows = [
        {
            "session_id": "s1",
            "created_at": "2024-02-28 10:30:00",
            "message_count": 3,
            "status": "active",
        }
    ]
    assert render(rows, "table").splitlines()[1] == (
        "│ session_id │ created_at          │ message_count │ status │"
    )
    assert json.loads(render(rows, "json")) == rows


def test_session_table_without_messages() -> None:
    doc = document([])
    text = render_session_table(doc)
    assert text.endswith("Conversation:\n\nNo messages.")
    assert "  user_id: -\n" in text
    assert '  tags: ["a", "b"]\n' in text


@pytest.mark.parametrize("contents", [["trailing\n\n"], ["a", "kept\n\n"], ["x\n", "y"]])
def test_kept_trailing_newlines_anywhere_in_the_list(contents: list[str]) -> None:
    doc = document(contents)
    text = streamed("yaml", doc)
    assert text == render(doc, "yaml") + "\n"
    assert as_strings(yaml.safe_load(text)) == normalised(doc)


def test_yaml_fast_path_writes_exactly_what_pyyaml_writes() -> None:
    """Plain text skips PyYAML when exporting; for every string it accepts, the line must be
    PyYAML's own and read back as the same string. Seeded, so a failure reproduces."""
    rng = random.Random(20261121)
    alphabet = "abYyeE019" + string.punctuation + "  \t\n"
    words = ["yes", "No", "TRUE", "off", "On", "null", "NULL", "y", "n", "e1", "inf", "x1e5"]
    samples = words + [
        rng.choice("aZ") + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        for _ in range(30_000)
    ]
    accepted = 0
    for text in samples:
        fast = _plain_yaml_scalar(text)
        if fast is None:
            continue
        accepted += 1
        assert to_yaml({"content": text}) == f"content: {fast}\n", text
        assert yaml.safe_load(f"content: {fast}") == {"content": text}, text
    assert accepted > 3_000  # the fast path is taken for ordinary text
    for word in words[:8]:
        assert _plain_yaml_scalar(word) is None


def test_a_document_of_random_text_streams_as_pyyaml_renders_it() -> None:
    rng = random.Random(7)
    alphabet = "ab ?,.'!-()\n:#" + "😀"
    contents = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(300)
    ]
    doc = document(contents)
    text = streamed("yaml", doc)
    assert text == render(doc, "yaml") + "\n"
    assert as_strings(yaml.safe_load(text)) == normalised(doc)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("agent-001:session-123", "agent-001:session-123"),
        ("你好", "你好"),
        ("👩\u200d👩\u200d👧", "👩\u200d👩\u200d👧"),  # the joiners make one picture: kept
        ("👍🏽\u200d👍", "👍🏽\u200d👍"),
        ("a\u200bb", "'a\\u200bb'"),
        ("a\u200db", "'a\\u200db'"),  # a joiner between letters shows nothing
        ("👩\u200d", "'👩\\u200d'"),
        ("\u202eevil", "'\\u202eevil'"),
        ("nope ", "'nope '"),
        ("a\tb", "'a\\tb'"),
        ("", "''"),
        ("it's\x00", '"it\'s\\x00"'),
        ("\U000e0067", "'\\U000e0067'"),
    ],
)
def test_shown_id_is_exact_or_quoted_and_escaped_like_repr(text: str, shown: str) -> None:
    assert shown_id(text) == shown


def test_cells_show_zero_width_characters_escaped_and_keep_emoji_sequences() -> None:
    table = box_table(
        ["session_id", "Content"],
        [["a\u200bb", "zero\u200bwidth 👩\u200d👩\u200d👧!"], ["👩\u200d👩\u200d👧", "x"]],
    )
    lines = table.splitlines()
    assert lines[3] == "│ 'a\\u200bb' │ zero\\u200bwidth 👩\u200d👩\u200d👧! │"
    assert lines[4] == "│ 👩\u200d👩\u200d👧         │ x                   │"
    assert {display_width(line) for line in lines} == {display_width(lines[0])}
    assert display_width("👩\u200d👩\u200d👧") == 2
    assert truncate("👩\u200d👩\u200d👧abc", 3) == "👩\u200d👩\u200d👧…"


@pytest.mark.parametrize(
    ("moment", "iso", "plain"),
    [
        (
            datetime(999, 1, 1, 5, 6, 7, 890, tzinfo=UTC),
            "0999-01-01T05:06:07Z",
            "0999-01-01 05:06:07",
        ),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z", "0001-01-01 00:00:00"),
        (datetime.max.replace(tzinfo=UTC), "9999-12-31T23:59:59Z", "9999-12-31 23:59:59"),
        (
            T0.astimezone(timezone(timedelta(hours=2))),
            "2024-02-28T10:30:00Z",
            "2024-02-28 10:30:00",
        ),
    ],
)
def test_every_year_prints_in_four_digits_in_every_format(
    moment: datetime, iso: str, plain: str
) -> None:
    # A second object for the message: PyYAML writes one object twice as an anchor.
    stamp = moment.replace(microsecond=0)
    doc = {"created_at": moment, "messages": [{"timestamp": stamp, "role": "user", "content": "x"}]}
    assert json.loads(render(doc, "json"))["created_at"] == iso
    assert f"created_at: {iso}\n" in render(doc, "yaml")
    # YAML reads a four-digit year back as a timestamp (an unpadded one would be text).
    assert yaml.safe_load(render(doc, "yaml"))["created_at"] == moment.replace(microsecond=0)
    assert plain in render([{"created_at": moment}], "table")
    table = render_session_table(
        {**doc, "session_id": "s", "message_count": 1, "status": "active", "metadata": {}}
    )
    assert f"Created: {plain}\n" in table
    assert f"│ {plain[-8:]}  │ user │" in table
