"""Every way the CLI prints data — box tables, JSON and YAML — in one place.

Commands build plain dictionaries (datetimes left as :class:`~datetime.datetime`) and hand
them here, so the table, JSON and YAML views of one record come from the same values::

    render([{"session_id": "s1", "message_count": 3}], "json")
    render_session_table(document)      # the ``session show`` view

Documents with one long list (a session's messages) can be written piece by piece with
:class:`DocumentWriter`; its output is byte-for-byte what :func:`render` gives for the whole
document, so ``session export`` streams a 100,000-message session without building it.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

__all__ = [
    "CONTENT_WIDTH",
    "CONVERSATION_HEADERS",
    "IDENTIFIER_KEYS",
    "BoxLayout",
    "DocumentWriter",
    "OutputFormat",
    "box_table",
    "clock_time",
    "conversation_cells",
    "display_width",
    "iso_time",
    "plain_time",
    "render",
    "render_session_table",
    "session_header_lines",
    "shown_id",
    "table_cells",
    "to_json",
    "to_yaml",
    "truncate",
]

OutputFormat = Literal["table", "json", "yaml"]

#: Widest Content cell of the conversation table, in terminal columns (the seeds' width).
CONTENT_WIDTH: Final = 68
_ELLIPSIS: Final = "…"


# ----------------------------------------------------------------------------- times


def _utc_seconds(value: datetime) -> datetime:
    """``value`` in UTC, naive, without its sub-second digits (what every form below shows)."""
    return value.astimezone(UTC).replace(tzinfo=None, microsecond=0)


# isoformat, not strftime: strftime("%Y") does not pad years before 1000 on glibc, and every
# form here shows four digits (0999-01-01), which also keeps YAML reading it as a timestamp.
def iso_time(value: datetime) -> str:
    """``2024-02-28T10:30:00Z``: UTC, RFC 3339, to the second — the seeds' JSON and YAML form.

    Sub-second digits are dropped, as in every seed example; message order is the list order.
    """
    return _utc_seconds(value).isoformat() + "Z"


def plain_time(value: datetime) -> str:
    """``2024-02-28 10:30:00`` (UTC, to the second): the tables' and ``session list``'s form."""
    return _utc_seconds(value).isoformat(" ")


def clock_time(value: datetime) -> str:
    """``10:30:05`` (UTC): the conversation table's Timestamp column."""
    return _utc_seconds(value).time().isoformat()


# ---------------------------------------------------------------------- table cells

#: Zero width joiner: between two emoji it makes one picture of them (👩‍👩‍👧), so it is kept.
_ZWJ: Final = "\u200d"
#: What may sit between an emoji and a joiner: variation selector 16, skin tones.
_EMOJI_MODIFIERS: Final = frozenset("\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff")
#: Columns and metadata keys that hold an id: shown exactly, or quoted and escaped (shown_id).
IDENTIFIER_KEYS: Final = frozenset({"session_id", "agent_id", "user_id", "tenant_id"})
_WHITESPACE_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _is_emoji(char: str) -> bool:
    return unicodedata.category(char) == "So"


def _joins_emoji(text: str, index: int) -> bool:
    """Whether ``text[index]`` is a zero width joiner between two emoji."""
    if text[index] != _ZWJ or index + 1 >= len(text) or not _is_emoji(text[index + 1]):
        return False
    before = index - 1
    while before >= 0 and text[before] in _EMOJI_MODIFIERS:
        before -= 1
    return before >= 0 and _is_emoji(text[before])


def _is_visible(text: str, index: int) -> bool:
    return text[index].isprintable() or _joins_emoji(text, index)


def _escape(char: str) -> str:
    """``char`` as Python's ``repr`` writes a character it cannot show (``\\u200b``)."""
    if char in _WHITESPACE_ESCAPES:
        return _WHITESPACE_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown_id(text: str) -> str:
    """An id as the user typed it, or — when something in it would not show (spaces at its
    ends, control or zero-width characters, nothing at all) — quoted and escaped as Python
    writes it: ``'a\\u200bb'`` (in bash or zsh, ``$'a\\u200bb'`` passes it back).

    Joiners inside an emoji sequence (👩‍👩‍👧) are part of the picture and stay as they are,
    so an id made of them is printed exactly and can be copied from the terminal.
    """
    if text and text == text.strip() and all(_is_visible(text, i) for i in range(len(text))):
        return text
    quote = '"' if "'" in text and '"' not in text else "'"
    out = []
    for index, char in enumerate(text):
        if char in ("\\", quote):
            out.append("\\" + char)
        elif _is_visible(text, index):
            out.append(char)
        else:
            out.append(_escape(char))
    return quote + "".join(out) + quote


#: Skin tones: no width of their own after the emoji they colour (👍🏽 is one picture).
_SKIN_TONES: Final = frozenset("\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff")
#: Variation selector 16: asks for the emoji picture, two columns wide (❤️, 1️⃣).
_VS16: Final = "\ufe0f"
#: Keycap bases: a digit, # or * followed by VS16 (and U+20E3) is an emoji.
_KEYCAP_BASES: Final = frozenset("0123456789#*")


def _char_widths(text: str) -> Iterator[int]:
    """Columns each character of ``text`` takes in a terminal, as the ``wcwidth`` library
    measures them (a test compares the two): CJK characters and emoji two, combining marks
    and format characters none, an emoji joined to the one before it none (the sequence is
    one picture, as wide as its first emoji), a skin tone after an emoji none, and VS16 one
    more after a one-column symbol it turns into an emoji (❤️, ©️, 1️⃣).

    Measured here rather than by importing ``wcwidth`` (its tables take ~25 ms to load,
    half of what a ``mofa`` command may spend starting).
    """
    joined = False
    previous_width = 0
    previous = ""
    for char in text:
        if char == _VS16:
            widens = previous_width == 1 and (
                previous in _KEYCAP_BASES or unicodedata.category(previous) in ("So", "Sm")
            )
            width = 1 if widens else 0
        elif (char in _SKIN_TONES and previous_width == 2 and _is_emoji(previous)) or (
            (joined and _is_emoji(char))
            or unicodedata.combining(char)
            or unicodedata.category(char) in ("Mn", "Me", "Cf")
        ):
            width = 0
        else:
            width = 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
        joined = char == _ZWJ
        if width or char not in (_VS16, _ZWJ):
            previous, previous_width = char, width
        yield width


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal (CJK characters take two)."""
    if text.isascii():
        return len(text)
    return sum(_char_widths(text))


def _cell_text(value: object, *, identifier: bool = False) -> str:
    """One line of visible text.

    Line breaks, tabs and other whitespace become spaces (they would break the table's
    borders); other characters that would not show — control characters, which could drive
    the terminal, and zero-width ones — are escaped (``\\u200b``), so what is printed is what
    is there. An ``identifier`` is shown as :func:`shown_id` shows it.
    """
    if value is None:
        text = "-"
    elif isinstance(value, datetime):
        text = plain_time(value)
    elif isinstance(value, Mapping | list):
        text = to_json(value, indent=None)
    elif identifier and isinstance(value, str):
        return shown_id(value)
    else:
        text = str(value)
    if text.isprintable():
        return text
    return "".join(
        " " if char.isspace() else char if _is_visible(text, index) else _escape(char)
        for index, char in enumerate(text)
    )


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns, ending in "…" when something was cut."""
    if text.isascii():
        return text if len(text) <= width else text[: max(width - 1, 0)].rstrip() + _ELLIPSIS
    # One pass, stopping at the first character past the width: a long cell is not measured
    # whole. ``kept`` is the longest start that leaves a column for the ellipsis.
    used = kept = 0
    for index, char_width in enumerate(_char_widths(text)):
        used += char_width
        if used > width:
            return text[:kept].rstrip() + _ELLIPSIS
        if used < width:
            kept = index + 1
    return text


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def table_cells(
    headers: Sequence[str],
    row: Sequence[object],
    max_widths: Mapping[str, int] | None = None,
) -> list[str]:
    """One row's cells as a table prints them (see :func:`box_table`)."""
    limits = max_widths or {}
    line = []
    for header, value in zip(headers, row, strict=True):
        text = _cell_text(value, identifier=header in IDENTIFIER_KEYS)
        if header in limits:
            text = truncate(text, limits[header])
        line.append(text)
    return line


class BoxLayout:
    """The lines of a box table whose column widths are known: a table can be printed a
    row at a time (``session show`` of a long session), its widths measured beforehand."""

    def __init__(self, widths: Sequence[int]) -> None:
        self.widths = list(widths)
        self._box = _BOX if _can_draw_boxes() else _ASCII_BOX

    @classmethod
    def measure(cls, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> BoxLayout:
        """Columns as wide as the widest of ``headers`` and the cells of ``rows``."""
        widths = [display_width(header) for header in headers]
        for line in rows:
            for index, text in enumerate(line):
                widths[index] = max(widths[index], display_width(text))
        return cls(widths)

    def _border(self, left: str, middle: str, right: str) -> str:
        return left + middle.join(self._box[0] * (width + 2) for width in self.widths) + right

    def row(self, values: Sequence[str]) -> str:
        bar = self._box[1]
        padded = (_pad(text, width) for text, width in zip(values, self.widths, strict=True))
        return f"{bar} " + f" {bar} ".join(padded) + f" {bar}"

    def head(self, headers: Sequence[str]) -> list[str]:
        """The top border, the header row and the rule under it."""
        return [self._border(*self._box[2:5]), self.row(headers), self._border(*self._box[5:8])]

    def bottom(self) -> str:
        return self._border(*self._box[8:11])


def box_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    max_widths: Mapping[str, int] | None = None,
) -> str:
    """A box-drawn table (``┌─┬─┐``), each column as wide as its widest cell.

    Cells are made single-line and visible (see :func:`_cell_text`); a column named in
    ``max_widths`` is cut to that many columns with "…"; an id column (``session_id``…)
    is shown as :func:`shown_id` shows it, never cut.
    """
    cells = [table_cells(headers, row, max_widths) for row in rows]
    layout = BoxLayout.measure(headers, cells)
    out = layout.head(headers)
    out.extend(layout.row(line) for line in cells)
    out.append(layout.bottom())
    return "\n".join(out)


#: Line, bar, then the corners and joints of the top, middle and bottom borders.
_BOX: Final = "─│┌┬┐├┼┤└┴┘"
_ASCII_BOX: Final = "-|+++++++++"


def _can_draw_boxes() -> bool:
    """Whether stdout's encoding has the box-drawing characters (not so for latin-1, ascii)."""
    try:
        _BOX.encode(getattr(sys.stdout, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


# ------------------------------------------------------------------------ JSON, YAML


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return iso_time(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(value: object, *, indent: int | None = 2) -> str:
    """JSON text (UTF-8 characters kept as they are, datetimes as :func:`iso_time`)."""
    import json

    return json.dumps(value, indent=indent, ensure_ascii=False, default=_json_default)


#: Text that PyYAML writes as a plain scalar and reads back as the same string: starts with
#: a letter, ASCII without YAML's indicators (":", "#", quotes at the start…), no doubled or
#: trailing space. What does not match simply goes through PyYAML (tests/cli compares the two).
_PLAIN_YAML = re.compile(r"[A-Za-z](?:[A-Za-z0-9_.,;!?()/'\"+-]| (?! ))*(?<! )")
#: Words YAML 1.1 reads as booleans or null when written plain.
_YAML_WORDS: Final = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})


def _plain_yaml_scalar(value: object) -> str | None:
    """``value`` as PyYAML would write it in block style, when that is sure to be plain text
    (or a timestamp); ``None`` otherwise."""
    if isinstance(value, str):
        if _PLAIN_YAML.fullmatch(value) and value.lower() not in _YAML_WORDS:
            return value
        return None
    if isinstance(value, datetime):
        return iso_time(value)
    return None


def _fast_yaml_mapping(item: Mapping[str, Any]) -> list[str] | None:
    """The lines of ``to_yaml(item)`` for a flat mapping of plain text and times, built
    without PyYAML (about 20x faster: exporting YAML is mostly this); ``None`` when any key
    or value needs PyYAML's judgement."""
    lines = []
    for key, value in item.items():
        text = _plain_yaml_scalar(value)
        if text is None or _plain_yaml_scalar(key) != key:
            return None
        lines.append(f"{key}: {text}")
    return lines or None


def to_yaml(value: object) -> str:
    """Block-style YAML that ``yaml.safe_load`` reads back to ``value`` (keys in order).

    PyYAML loads on the first call (:mod:`mofa.cli._yaml_dump`): commands that print no
    YAML never import it.
    """
    from mofa.cli._yaml_dump import dump

    return dump(value)


def render(value: object, output_format: OutputFormat) -> str:
    """``value`` as JSON, YAML or (for a list of flat dictionaries) a box table.

    The text has no trailing newline.
    """
    if output_format == "json":
        return to_json(value)
    if output_format == "yaml":
        return to_yaml(value).rstrip("\n")
    if not isinstance(value, list) or not value:
        raise ValueError("a table needs a non-empty list of dictionaries")
    headers = list(value[0])
    return box_table(headers, ([row[key] for key in headers] for row in value))


class DocumentWriter:
    """Writes ``{header..., list_key: [items...]}`` as JSON or YAML, one item at a time.

    The result equals ``render(document, fmt) + "\\n"``; only one item is ever held as text.
    Call :meth:`start`, then :meth:`add` per item, then :meth:`finish`.
    """

    def __init__(self, output_format: Literal["json", "yaml"], write: Callable[[str], object]):
        self._format = output_format
        self._write = write
        self._count = 0
        self._open_ended = False

    @property
    def count(self) -> int:
        """Items written so far."""
        return self._count

    def start(self, header: Mapping[str, Any], list_key: str) -> None:
        if not header:
            raise ValueError("the document needs at least one field besides the list")
        if self._format == "json":
            head = to_json(dict(header))
            # Reopen the object after its last field: drop the closing "\n}".
            self._write(f"{head[:-2]},\n  {to_json(list_key)}: [")
        else:
            key_line = to_yaml({list_key: None}).rstrip("\n").removesuffix(" null")
            self._write(to_yaml(dict(header)) + key_line)

    def add(self, item: Mapping[str, Any]) -> None:
        first = self._count == 0
        self._count += 1
        if self._format == "json":
            body = to_json(dict(item)).replace("\n", "\n    ")
            self._write(("\n    " if first else ",\n    ") + body)
            return
        fast = _fast_yaml_mapping(item)
        if fast is not None:
            self._open_ended = False
            self._write(("\n  - " if first else "  - ") + "\n    ".join(fast) + "\n")
            return
        lines = to_yaml(dict(item)).rstrip("\n").split("\n")
        # A kept-newlines block ("|+") last in a document makes PyYAML end it with "...";
        # mid-document that marker would end the document early.
        self._open_ended = lines[-1] == "..."
        if self._open_ended:
            lines.pop()
        out = ["\n  - " + lines[0] if first else "  - " + lines[0]]
        # Empty lines inside a literal block stay empty: indentation there would be content.
        out.extend("    " + line if line else line for line in lines[1:])
        self._write("\n".join(out) + "\n")

    def finish(self) -> None:
        if self._format == "json":
            self._write("\n  ]\n}\n" if self._count else "]\n}\n")
        elif not self._count:
            self._write(" []\n")
        elif self._open_ended:
            self._write("...\n")


# --------------------------------------------------------------------- session show


#: The conversation table's columns (``session show``).
CONVERSATION_HEADERS: Final = ("Timestamp", "Role", "Content")


def session_header_lines(document: Mapping[str, Any]) -> list[str]:
    """The ``session show`` table view's lines above the conversation table."""
    lines = [
        f"Session: {_cell_text(document['session_id'], identifier=True)}",
        f"Created: {_cell_text(document['created_at'])}",
        f"Messages: {document['message_count']}",
        f"Status: {_cell_text(document['status'])}",
        "",
        "Metadata:",
    ]
    lines.extend(_metadata_lines(document["metadata"]))
    if document.get("shadowed_metadata"):
        lines += ["", "Shadowed metadata (stored under a column's name):"]
        lines.extend(_metadata_lines(document["shadowed_metadata"], identifiers=False))
    lines += ["", "Conversation:", ""]
    return lines


def conversation_cells(message: Mapping[str, Any]) -> list[str]:
    """A message's cells in the conversation table."""
    return table_cells(
        CONVERSATION_HEADERS,
        [clock_time(message["timestamp"]), _role_text(message), message["content"]],
        {"Content": CONTENT_WIDTH},
    )


def render_session_table(document: Mapping[str, Any]) -> str:
    """The ``session show`` table view of the document that its JSON and YAML views print.

    Ids are printed exactly, or quoted and escaped when something in them would not show
    (:func:`shown_id`); a message whose metadata has a ``status`` (``partial``, ``failed``)
    says so in the Role column.
    """
    lines = session_header_lines(document)
    messages: list[Mapping[str, Any]] = document["messages"]
    if not messages:
        lines.append("No messages.")
    else:
        cells = [conversation_cells(message) for message in messages]
        layout = BoxLayout.measure(CONVERSATION_HEADERS, cells)
        lines += [*layout.head(CONVERSATION_HEADERS), *map(layout.row, cells), layout.bottom()]
    return "\n".join(lines)


def _metadata_lines(metadata: Mapping[str, Any], *, identifiers: bool = True) -> list[str]:
    return [
        f"  {_cell_text(key)}: "
        + _cell_text(value, identifier=identifiers and key in IDENTIFIER_KEYS)
        for key, value in metadata.items()
    ]


def _role_text(message: Mapping[str, Any]) -> str:
    """``assistant``, or ``assistant (partial)`` for a reply whose metadata gives a status."""
    status = message.get("metadata", {}).get("status")
    if isinstance(status, str) and status:
        return f"{message['role']} ({status})"
    return str(message["role"])
