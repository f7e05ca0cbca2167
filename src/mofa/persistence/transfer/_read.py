"""Reading ``mofa-session/1`` files: each session's header, then its records one at a time.

``jsonl`` streams: a line is read, checked and handed on before the next one is read, so a
file of any size imports in flat memory (one line may hold at most :data:`MAX_LINE` bytes).
``json`` and ``yaml`` hold one session and are read whole, up to :data:`MAX_DOCUMENT` and
:data:`MAX_YAML` bytes (export larger sessions as ``jsonl``). Every problem is one
:class:`ExportFormatError` that says where: ``file:line`` or ``file: $.messages[3].role``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, Any, Final, Literal

import orjson
import yaml

from mofa.persistence._entities import AgentState, Message
from mofa.persistence.transfer._canonical import (
    ExportFormatError,
    Header,
    MessageHash,
    header_from,
    message_from,
    state_from,
)

__all__ = ["MAX_DOCUMENT", "MAX_LINE", "MAX_YAML", "Reader", "SessionSource", "open_reader"]

Format = Literal["json", "yaml", "jsonl"]
#: The longest line a jsonl import reads (a 10 MB message is about 10 MB of line).
MAX_LINE: Final = 64 * 1024 * 1024
#: The largest json export an import reads (it is parsed whole).
MAX_DOCUMENT: Final = 256 * 1024 * 1024
#: The largest yaml export an import reads (parsed whole, and YAML parses slowly).
MAX_YAML: Final = 32 * 1024 * 1024
_YAML_DEPTH: Final = 64
_MIB: Final = 1024 * 1024


class SessionSource:
    """One session of a file: its header and, read once, its records.

    ``position`` says where the record last handed on came from, for errors the store
    raises about it. The records end with the integrity check: a count or hash that differs
    raises :class:`ExportFormatError`, which a restore in progress rolls back.
    """

    def __init__(
        self, header: Header, position: str, records: Iterator[tuple[str, Any]], name: str
    ) -> None:
        self.header = header
        self.position = position
        self._records = records
        self._consumed = False
        self._end = f"{name}: the end of session {header.session.session_id!r}"

    def records(self) -> Iterator[Message | AgentState]:
        if self._consumed:
            raise RuntimeError("the records of a session are read once")
        self._consumed = True
        session_id = self.header.session.session_id
        checked = MessageHash()
        for kind, (where, value) in self._records:
            self.position = where
            if kind.endswith("state"):
                yield state_from(value, session_id, where, _EXTRA[kind])
                continue
            message, canonical = message_from(value, session_id, where, _EXTRA[kind])
            checked.add(canonical)
            yield message
        self.position = self._end
        count = self.header.session.message_count
        if checked.count != count:
            raise ExportFormatError(
                f"{self._end}: the file holds {checked.count} of its messages, its header "
                f"says {count}: it was cut short or changed"
            )
        if checked.hexdigest() != self.header.sha256:
            raise ExportFormatError(
                f"{self._end}: the integrity check failed: the SHA-256 of its messages "
                "differs from the one in its header; the file was changed or damaged in transit"
            )

    def drain(self) -> None:
        """Read past what is left of the session (after a skip or a failure)."""
        for _record in self._records:
            pass


_EXTRA: Final = {"state": ("type",), "message": ("type",), "json-state": (), "json-message": ()}


class Reader:
    """The sessions of one file, in order; a damaged one comes as an ExportFormatError."""

    def __init__(self, name: str) -> None:
        self.name = name

    def sessions(
        self, session_id: str | None = None
    ) -> Iterator[SessionSource | ExportFormatError]:
        raise NotImplementedError


def _decode(data: bytes, where: str, first_line: int = 1) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + first_line
        raise ExportFormatError(
            f"{where}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); an export is "
            "UTF-8 JSON, JSON Lines or YAML"
        ) from None


class _Document(Reader):
    """A json or yaml export: one session, read whole."""

    def __init__(self, stream: IO[bytes], name: str, kind: Format, head: bytes) -> None:
        super().__init__(name)
        self._stream = stream
        self._kind = kind
        self._head = head

    def _load(self) -> Any:
        limit = MAX_YAML if self._kind == "yaml" else MAX_DOCUMENT
        data = self._head + self._stream.read(limit + 1 - len(self._head))
        if len(data) > limit:
            raise ExportFormatError(
                f"{self.name}: a {self._kind} export is read whole, up to {limit // _MIB} MiB; "
                "this one is larger: export it with -f jsonl, which streams"
            )
        if self._kind == "json":
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                _decode(data, self.name)
                raise ExportFormatError(
                    f"{self.name}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); "
                    "the file may be cut short"
                ) from None
        return _load_yaml(_decode(data, self.name), self.name)

    def sessions(
        self, session_id: str | None = None
    ) -> Iterator[SessionSource | ExportFormatError]:
        try:
            document = self._load()
            if not isinstance(document, dict):
                raise ExportFormatError(f"{self.name}: $: a session export must be an object")
            where = f"{self.name}: $"
            header = header_from(document, where, ("agent_state", "messages"), session_id)
            lists = {}
            for key in ("agent_state", "messages"):
                value = document.get(key, [])
                if not isinstance(value, list):
                    raise ExportFormatError(f"{self.name}: $.{key}: must be a list")
                lists[key] = value
        except ExportFormatError as exc:
            yield exc
            return

        def records() -> Iterator[tuple[str, tuple[str, Any]]]:
            for index, state in enumerate(lists["agent_state"]):
                yield "json-state", (f"{self.name}: $.agent_state[{index}]", state)
            for index, message in enumerate(lists["messages"]):
                yield "json-message", (f"{self.name}: $.messages[{index}]", message)

        yield SessionSource(header, where, records(), self.name)


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader without aliases (an export has none: no "billion laughs") and with a
    depth bound (building recurses once per level)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise ExportFormatError(
                f"line {event.start_mark.line + 1}: a YAML alias; an export has none"
            )
        self._depth += 1
        try:
            if self._depth > _YAML_DEPTH:
                raise ExportFormatError(f"nests more than {_YAML_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _load_yaml(text: str, name: str) -> Any:
    loader = _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    except ExportFormatError as exc:
        raise ExportFormatError(f"{name}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = "" if mark is None else f":{mark.line + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ExportFormatError(f"{name}{line}: not valid YAML ({problem})") from None
    finally:
        loader.dispose()


class _Lines(Reader):
    """A jsonl export: a header line per session, then its state and message lines."""

    def __init__(self, stream: IO[bytes], name: str, head: bytes) -> None:
        super().__init__(name)
        self._stream = stream
        self._head = head
        self._number = 0
        self._pending: tuple[str, dict[str, Any]] | None = None
        #: Whether the last session's lines were read to the next header or the end.
        self._whole = True

    def _line(self) -> tuple[str, dict[str, Any]] | None:
        """The next non-empty line, parsed, with where it is; ``None`` at the end."""
        while True:
            data = self._head or self._stream.readline(MAX_LINE + 1)
            self._head = b""
            if not data:
                return None
            self._number += 1
            where = f"{self.name}:{self._number}"
            if len(data) > MAX_LINE:
                raise ExportFormatError(
                    f"{where}: the line is longer than {MAX_LINE // _MIB} MiB; a jsonl export "
                    "holds one record per line"
                )
            if not data.strip():
                continue
            if not data.endswith(b"\n"):
                # The last line of a file written by mofa ends with a newline too.
                try:
                    orjson.loads(data)
                except orjson.JSONDecodeError:
                    _decode(data, self.name, self._number)
                    raise ExportFormatError(
                        f"{where}: the line is cut short (no newline, not complete JSON); "
                        "the file was truncated"
                    ) from None
            try:
                value = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                _decode(data, self.name, self._number)
                raise ExportFormatError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(value, dict) or value.get("type") not in _LINE_TYPES:
                raise ExportFormatError(
                    f'{where}: not a record of a {"jsonl"} export (an object with "type" '
                    "session, state or message)"
                )
            return where, value

    def _until_next_header(self) -> Iterator[tuple[str, Any]]:
        self._whole = False
        while True:
            line = self._line()
            if line is None:
                self._whole = True
                return
            where, value = line
            if value["type"] == "session":
                self._pending = line
                self._whole = True
                return
            yield value["type"], (where, value)

    def _resync(self) -> None:
        """Skip to the next header line that parses (after a damaged one)."""
        while True:
            try:
                line = self._line()
            except ExportFormatError:
                continue
            if line is None or line[1]["type"] == "session":
                self._pending = line
                return

    def sessions(
        self, session_id: str | None = None
    ) -> Iterator[SessionSource | ExportFormatError]:
        first = True
        while True:
            try:
                line, self._pending = self._pending, None
                if line is None:
                    line = self._line()
                if line is None:
                    if first:
                        raise ExportFormatError(f"{self.name}: the file holds no session")
                    return
                first = False
                where, value = line
                if value["type"] != "session":
                    raise ExportFormatError(
                        f"{where}: a {value['type']} line before any session header"
                    )
                header = header_from(value, where, ("type",), session_id)
            except ExportFormatError as exc:
                yield exc
                self._resync()
                if self._pending is None:
                    return
                continue
            source = SessionSource(header, where, self._until_next_header(), self.name)
            yield source
            # A damaged line of a session that was skipped or failed already: passed over.
            with contextlib.suppress(ExportFormatError):
                source.drain()
            if not self._whole:
                self._resync()


_LINE_TYPES: Final = ("session", "state", "message")


def open_reader(stream: IO[bytes], name: str, kind: str | None = None) -> Reader:
    """A reader of ``stream``, in ``kind`` or, when ``None``, the format its start shows: a
    first line that is a whole JSON object with ``"type"`` is jsonl, other JSON is json,
    anything else yaml."""
    head = stream.readline(MAX_LINE + 1)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]  # a byte-order mark, which some editors add
    if kind is None:
        kind = "yaml"
        if head.lstrip().startswith(b"{"):
            kind = "json"
            try:
                first = orjson.loads(head)
            except orjson.JSONDecodeError:
                first = None
            if isinstance(first, dict) and "type" in first:
                kind = "jsonl"
    if kind == "jsonl":
        return _Lines(stream, name, head)
    if kind in ("json", "yaml"):
        return _Document(stream, name, kind, head)  # type: ignore[arg-type]
    raise ValueError(f"unknown format {kind!r}")
