"""The local file store (see the package's docstring for its layout and its promises)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import functools
import hashlib
import os
import threading
import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Self, TypeVar

import orjson

from mofa.persistence._base import BaseStore, EncodedMessage
from mofa.persistence._codec import (
    ROLES,
    damaged_record,
    decode_json,
    format_time,
    parse_time,
)
from mofa.persistence._contract import Unset
from mofa.persistence._entities import Agent, AgentState, Message, Owner, Session
from mofa.persistence._url import DatabaseURL, parse_url
from mofa.persistence.backends._toolkit import (
    check_flag,
    check_option,
    placeholder_agent,
    reject_unknown_options,
)
from mofa.persistence.backends.files._tree import DIR_MODE, FILE_MODE, FileTree, write_all
from mofa.persistence.errors import (
    AgentExistsError,
    ConflictError,
    InvalidInputError,
    PermissionDeniedError,
    PersistenceError,
    QueryError,
    SchemaError,
    SessionExistsError,
    SessionNotFoundError,
    StoreConnectionError,
)
from mofa.persistence.locations import (
    STORE_MARKER,
    default_data_dir,
    default_store_url,
    directory_url,
)

__all__ = [
    "STORE_MARKER",
    "FileStore",
    "default_data_dir",
    "default_store_url",
    "directory_url",
    "encode_name",
]

_T = TypeVar("_T")

#: The on-disk format this module writes; a directory marked with a newer one is refused.
#: 2 added the session list (``session-list.jsonl``); the record files did not change.
FORMAT_VERSION: Final = 2
#: The format named inside headers and agent records (unchanged since format 1).
_RECORD_FORMAT: Final = 1
#: The session list, and its lock ('@' is always escaped in names: no session's lock).
LISTING_FILE: Final = "session-list.jsonl"
_LISTING_LOCK: Final = "@session-list.lock"
#: The directory of sessions without an agent: '@' is always escaped, so no id encodes to it.
NO_AGENT_DIR: Final = "@none"

_BLOCK = 64 * 1024
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_MAX_NAME = 100
_DIGEST_CHARS = 40
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{n}" for n in range(10)] + [f"lpt{n}" for n in range(10)]
)
_SEQ_PREFIX = b'{"seq":'
_VERSION_PREFIX = b'{"version":'
_SUMMARY_SIZE = 160


# ------------------------------------------------------------------- names and paths


def encode_name(value: str) -> str:
    """The file-name form of an id: injective, safe on every file system, at most 141 bytes.

    ``[a-z0-9_-]`` stay as they are; every other character becomes ``%XX`` per UTF-8 byte
    (upper-case hex; upper-case letters are escaped too, so two names never differ only in
    case). A Windows device name gets its first letter escaped. A name longer than 100
    characters is cut at an escape boundary and ends with ``~`` and 40 hex digits of the id's
    SHA-256; ``~`` appears in no other name, so a hashed name never equals a plain one.
    """
    units = [char if char in _SAFE else _escape(char) for char in value]
    name = "".join(units)
    if name in _RESERVED:
        name = _escape(name[0]) + name[1:]
    if len(name) <= _MAX_NAME:
        return name
    prefix: list[str] = []
    length = 0
    for unit in units:
        if length + len(unit) > _MAX_NAME:
            break
        prefix.append(unit)
        length += len(unit)
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    return f"{''.join(prefix)}~{digest}"


def _escape(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))


#: :func:`encode_name` for building paths: one operation names a session's lock, index and
#: files, so each id is encoded once (ids are at most 255 characters, so the cache stays small).
_stem = functools.lru_cache(maxsize=4096)(encode_name)


def _agent_dir_name(agent_id: str | None) -> str:
    return NO_AGENT_DIR if agent_id is None else _stem(agent_id)


@dataclass(frozen=True, slots=True)
class _SessionFiles:
    """Where one session's files live."""

    directory: Path
    header: Path
    messages: Path
    states: Path
    summary: Path

    @classmethod
    def at(cls, sessions_root: Path, agent_id: str | None, session_id: str) -> _SessionFiles:
        directory = sessions_root / _agent_dir_name(agent_id)
        stem = _stem(session_id)
        return cls(
            directory=directory,
            header=directory / f"{stem}.json",
            messages=directory / f"{stem}.messages.jsonl",
            states=directory / f"{stem}.states.jsonl",
            summary=directory / f"{stem}.summary",
        )


# ------------------------------------------------------------------- low-level file work


def _sync_data(fd: int) -> None:
    # fdatasync flushes the data and the size; the other metadata does not matter here.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS
        os.fsync(fd)


def _append_durably(fd: int, data: bytes, size: int, good_end: int) -> None:
    """Append ``data`` to a log of ``size`` bytes whose complete lines end at ``good_end``,
    and fdatasync it. A tail cut short by an earlier crash is dropped first, so the log stays
    line-aligned; if this write fails, the log is cut back to ``good_end``."""
    if good_end < size:
        os.ftruncate(fd, good_end)
    try:
        write_all(fd, data)
        _sync_data(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, good_end)
        raise


# ------------------------------------------------------------------- append-only logs


def _lines_backward(fd: int, end: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(start, line)`` for each newline-terminated line before ``end``, last first.

    Bytes after the last newline are a torn write and are skipped. Reads 64 KiB blocks from
    the end, so the last lines of a long log cost a read or two.
    """
    position = end
    parts: list[bytes] = []  # pieces of the line being assembled, right to left
    complete = False  # False while still inside the torn tail
    while position > 0:
        size = min(_BLOCK, position)
        position -= size
        chunk = os.pread(fd, size, position)
        cut = len(chunk)
        while True:
            newline = chunk.rfind(b"\n", 0, cut)
            if newline < 0:
                if complete:
                    parts.append(chunk[:cut])
                break
            if complete:
                parts.append(chunk[newline + 1 : cut])
                parts.reverse()
                yield position + newline + 1, b"".join(parts)
            parts = []
            complete = True
            cut = newline
    if complete:
        parts.reverse()
        yield 0, b"".join(parts)


def _lines_forward(fd: int, start: int, end: int) -> Iterator[bytes]:
    """Yield the lines between ``start`` (a line start) and ``end`` (a line end), in order."""
    position = start
    parts: list[bytes] = []  # the start of a line that continues in the next block
    while position < end:
        chunk = os.pread(fd, min(4 * _BLOCK, end - position), position)
        if not chunk:
            break
        position += len(chunk)
        pieces = chunk.split(b"\n")
        if len(pieces) == 1:  # inside a long line: keep the pieces, join once
            parts.append(chunk)
            continue
        parts.append(pieces[0])
        yield b"".join(parts)
        yield from pieces[1:-1]
        parts = [pieces[-1]] if pieces[-1] else []


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def _parse_logged(line: bytes) -> dict[str, Any]:
    """A line of a log's valid part, which must parse (else the log was damaged later)."""
    record = _parse(line)
    if record is None:
        raise QueryError("The file store log has a damaged line; restore it from a backup.")
    return record


@dataclass(frozen=True, slots=True)
class _Tail:
    """The valid part of a log: its end offset, last key and the time of the last append."""

    end: int
    last: int
    at: str | None


_EMPTY_TAIL = _Tail(0, 0, None)


def _is_batch_end(record: dict[str, Any] | None, key: str) -> bool:
    return (
        record is not None and isinstance(record.get(key), int) and record.get("end") == record[key]
    )


def _scan_tail(fd: int, size: int, key: str) -> _Tail:
    """Find where the valid log ends: after the last line that completes a batch.

    Everything before the last acknowledged write was fsynced, so only the final write can be
    damaged; walking back over it until a batch's last record turns up is enough.
    """
    for start, line in _lines_backward(fd, size):
        record = _parse(line)
        if _is_batch_end(record, key):
            assert record is not None
            return _Tail(start + len(line) + 1, int(record[key]), record.get("at"))
    return _EMPTY_TAIL


def _verify_forward(fd: int, start: _Tail, size: int, key: str) -> _Tail:
    """Check the log from a known-good point (``start``) to ``size``, record by record.

    Used when the summary is older than the log: the bytes after it may come from a write
    that a power loss cut anywhere (even zero-filled pages in the middle). The valid log ends
    after the last batch whose every line parses and continues the sequence.
    """
    good = start
    expected = start.last + 1
    batch_end: int | None = None
    position = start.end
    for line in _lines_forward(fd, start.end, size):
        position += len(line) + 1
        record = _parse(line)
        if record is None or record.get(key) != expected:
            break
        end = record.get("end")
        if not isinstance(end, int) or end < expected or batch_end not in (None, end):
            break
        batch_end = end
        if expected == end:
            good = _Tail(position, end, record.get("at"))
            batch_end = None
        expected += 1
    return good


def _tail_from_summary(
    fd: int, size: int, summary: tuple[int, int, str] | None, *, writer: bool = False
) -> _Tail:
    """The valid end of a messages log of ``size`` bytes, given its summary as read.

    The summary answers when it describes the log's current size. When the log has grown
    past it (a writer died between its fdatasync and the summary update, or is between
    them right now), the records after it are checked one by one. With no usable
    summary, a writer checks the whole log; a reader only looks at its last lines.
    """
    if size == 0:
        return _EMPTY_TAIL
    if summary is not None and summary[1] == size:
        return _Tail(size, summary[0], summary[2])
    if summary is not None and summary[1] < size:
        return _verify_forward(fd, _Tail(summary[1], summary[0], summary[2]), size, "seq")
    if writer:
        return _verify_forward(fd, _EMPTY_TAIL, size, "seq")
    return _scan_tail(fd, size, "seq")


def _key_at(fd: int, offset: int, prefix: bytes) -> int:
    """The key (``seq`` or ``version``) of the line at ``offset``, read from its first bytes."""
    head = os.pread(fd, len(prefix) + 24, offset)
    digits = head[len(prefix) :].split(b",", 1)[0] if head.startswith(prefix) else b""
    try:
        return int(digits)
    except ValueError:
        raise QueryError(
            f"The file store log is damaged at byte {offset}; restore it from a backup."
        ) from None


def _next_line_start(fd: int, position: int, limit: int) -> int:
    """The first line start at or after ``position`` (``limit`` if there is none before it)."""
    if position <= 0:
        return 0
    offset = position - 1  # a newline at position - 1 makes ``position`` itself a start
    block = 4096  # most lines are short: read a page first, then larger blocks
    while offset < limit:
        chunk = os.pread(fd, min(block, limit - offset), offset)
        if not chunk:
            break
        newline = chunk.find(b"\n")
        if newline >= 0:
            return min(offset + newline + 1, limit)
        offset += len(chunk)
        block = _BLOCK
    return limit


def _find_after(fd: int, end: int, prefix: bytes, after: int) -> int:
    """Offset of the first line whose key is greater than ``after`` (binary search)."""
    low, high = 0, end  # lines before ``low`` have key <= after; ``high`` is a start or end
    while low < high:
        middle = _next_line_start(fd, (low + high) // 2, high)
        if middle >= high:  # no line starts in the upper half: step over the line at ``low``
            if _key_at(fd, low, prefix) > after:
                return low
            low = _next_line_start(fd, low + 1, high)
        elif _key_at(fd, middle, prefix) > after:
            high = middle
        else:
            low = _next_line_start(fd, middle + 1, high)
    return low


def _read_after(
    fd: int, tail: _Tail, prefix: bytes, after: int, limit: int | None
) -> list[dict[str, Any]]:
    """Records with key > ``after`` in order, at most ``limit``."""
    if after >= tail.last or limit == 0:
        return []
    start = 0 if after <= 0 else _find_after(fd, tail.end, prefix, after)
    records: list[dict[str, Any]] = []
    for line in _lines_forward(fd, start, tail.end):
        records.append(_parse_logged(line))
        if limit is not None and len(records) >= limit:
            break
    return records


def _read_last(fd: int, tail: _Tail, count: int) -> list[dict[str, Any]]:
    """The last ``count`` records before ``tail.end``, newest first."""
    records: list[dict[str, Any]] = []
    if count <= 0:
        return records
    for _start, line in _lines_backward(fd, tail.end):
        records.append(_parse_logged(line))
        if len(records) >= count:
            break
    return records


# ------------------------------------------------------------------- records


def _message_line(message: EncodedMessage, seq: int, end: int, at: str, ts: str) -> bytes:
    """One log line; ``at`` is when it was written, ``ts`` the message's own time."""
    return b"".join(
        (
            b'{"seq":%d,"end":%d,"at":"%s","ts":"%s","role":"%s","metadata":'
            % (seq, end, at.encode(), ts.encode(), message.role.value.encode()),
            message.metadata_json.encode("utf-8"),
            b',"content":',
            orjson.dumps(message.content),
            b"}\n",
        )
    )


def _message(session_id: str, record: dict[str, Any]) -> Message:
    # Positional: this runs once per loaded message, and keywords cost 40% more here.
    try:
        metadata = record["metadata"]
        if type(metadata) is not dict:
            raise TypeError("metadata is not a JSON object")
        return Message(
            session_id,
            record["seq"],
            ROLES[record["role"]],
            record["content"],
            metadata,
            parse_time(record["ts"]),
        )
    except (KeyError, TypeError, ValueError) as exc:  # a log line edited by hand
        raise damaged_record(
            f"message {record.get('seq')} of session {session_id!r}",
            {
                "role": record.get("role"),
                "metadata": record.get("metadata"),
                "timestamp": record.get("ts"),
            },
            exc,
            session_id=session_id,
        ) from exc


def _state(session_id: str, record: dict[str, Any]) -> AgentState:
    try:
        state = record["state"]
        if type(state) is not dict:
            raise TypeError("state is not a JSON object")
        return AgentState(session_id, record["version"], state, parse_time(record["at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise damaged_record(
            f"state version {record.get('version')} of session {session_id!r}",
            {"state": record.get("state"), "created_at": record.get("at")},
            exc,
            session_id=session_id,
        ) from exc


def _header_bytes(session: Session, metadata_json: str) -> bytes:
    return (
        b'{"format":%d,"session_id":' % _RECORD_FORMAT
        + orjson.dumps(session.session_id)
        + b',"agent_id":'
        + orjson.dumps(session.agent_id)
        + b',"user_id":'
        + orjson.dumps(session.user_id)
        + b',"tenant_id":'
        + orjson.dumps(session.tenant_id)
        + b',"status":'
        + orjson.dumps(session.status)
        + b',"created_at":'
        + orjson.dumps(format_time(session.created_at))
        + b',"updated_at":'
        + orjson.dumps(format_time(session.updated_at))
        + b',"expires_at":'
        + orjson.dumps(None if session.expires_at is None else format_time(session.expires_at))
        + b',"metadata":'
        + metadata_json.encode("utf-8")
        + b"}\n"
    )


def _listing_line(
    created_at: str,
    session_id: str,
    agent_id: str | None,
    user_id: str | None,
    tenant_id: str | None,
) -> bytes:
    """One line of the session list; keys in a fixed order, so a filter can be matched on
    the bytes (see :func:`_listing_needle`) before the line is parsed."""
    return orjson.dumps(
        {
            "created_at": created_at,
            "session_id": session_id,
            "agent_id": agent_id,
            "user_id": user_id,
            "tenant_id": tenant_id,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


def _listing_needle(key: str, value: str) -> bytes:
    """Bytes every list line for ``key == value`` holds. A quote inside a value is escaped,
    so other fields cannot hold them; a line that holds them is still checked once parsed."""
    return b'"%s":%s' % (key.encode(), orjson.dumps(value))


#: A listing that passes this many lines of sessions that are gone compacts the list.
COMPACT_AFTER: Final = 1000
#: What a list line holds; a line counts only while the session's header says the same.
_LISTED_KEYS: Final = ("created_at", "session_id", "agent_id", "user_id", "tenant_id")


def _listed(line: bytes) -> dict[str, Any]:
    """A line of the session list (complete lines only: a torn last write is never passed)."""
    entry = _parse(line)
    if entry is None or any(key not in entry for key in _LISTED_KEYS):
        raise QueryError(
            f"The file store's session list ({LISTING_FILE}) has a damaged line; delete the "
            "file: the next program that opens the store with open_store() rebuilds it from "
            "the sessions."
        )
    return entry


def _header_matches(header: dict[str, Any], entry: dict[str, Any]) -> bool:
    """Whether a session's header is that of the creation a list line was written for (not of
    a creation of the same id since)."""
    return all(header.get(key) == entry[key] for key in _LISTED_KEYS)


def _owned(header: dict[str, Any], owner: Owner) -> bool:
    """Whether the session of a header (or list line) is inside ``owner``'s scope: each id
    equal, a ``None`` one matching only a session without that id (as :meth:`Owner.owns`)."""
    return bool(
        header["tenant_id"] == owner.tenant_id
        and header["user_id"] == owner.user_id
        and header["agent_id"] == owner.agent_id
    )


def _by_session_id(entry: dict[str, Any]) -> str:
    return str(entry["session_id"])


def _lines_holding_backward(fd: int, end: int, needle: bytes) -> Iterator[bytes]:
    """The newline-terminated lines before ``end`` that hold ``needle``, last first.

    Like :func:`_lines_backward`, but the search runs over whole blocks in C (``rfind``), so
    lines without the needle cost no Python work: a filter that few sessions match is a fast
    scan of the file rather than a parse of each line.
    """
    position = end
    rest = b""  # the start of a line that began before the block just searched
    torn = True  # until the last newline is found: bytes after it are a torn write
    while position > 0:
        size = min(4 * _BLOCK, position)
        position -= size
        data = os.pread(fd, size, position) + rest
        if torn:
            last = data.rfind(b"\n")
            torn = last < 0
            data = data[: last + 1]
        first = data.find(b"\n") + 1 if position else 0
        if position and not first:  # no line ends in this block: keep gathering
            rest = data
            continue
        rest, region = data[:first], data[first:]
        high = len(region)
        while (found := region.rfind(needle, 0, high)) >= 0:
            start = region.rfind(b"\n", 0, found) + 1
            yield region[start : region.find(b"\n", found)]
            high = start


def _listed_newest_first(fd: int, size: int, needles: list[bytes]) -> Iterator[dict[str, Any]]:
    """The session list's lines holding every needle, newest first (for one creation time,
    greatest session id first, as the SQL stores order them).

    The list is in creation-time order, so lines of one time are next to each other. With
    needles, the first is searched for and the others are checked on the lines found.
    """
    if needles:
        lines: Iterator[bytes] = _lines_holding_backward(fd, size, needles[0])
    else:
        lines = (line for _start, line in _lines_backward(fd, size))
    group: list[dict[str, Any]] = []
    for line in lines:
        if not all(needle in line for needle in needles[1:]):
            continue
        entry = _listed(line)
        if group and entry["created_at"] != group[0]["created_at"]:
            group.sort(key=_by_session_id, reverse=True)
            yield from group
            group = []
        group.append(entry)
    group.sort(key=_by_session_id, reverse=True)
    yield from group


def _add_to_listing(fd: int, session: Session) -> Session:
    """Add ``session`` to the session list open on ``fd`` (its lock held) and fdatasync it.

    The list stays in creation-time order: a session created no later than the last one
    listed (a clock stepped back, or a creation that waited for the lock) takes that one's
    time, and the session returned carries the time stored.
    """
    size = os.fstat(fd).st_size
    good_end = 0
    created_at = format_time(session.created_at)
    for start, line in _lines_backward(fd, size):
        good_end = start + len(line) + 1
        last = _listed(line)["created_at"]
        if last > created_at:  # fixed-width UTC text: text order is time order
            moment = parse_time(last)
            created_at = format_time(moment)
            session = dataclasses.replace(session, created_at=moment, updated_at=moment)
        break
    _append_durably(
        fd,
        _listing_line(
            created_at, session.session_id, session.agent_id, session.user_id, session.tenant_id
        ),
        size,
        good_end,
    )
    return session


def _index_bytes(session_id: str, agent_id: str | None) -> bytes:
    """A session's index entry: which agent's directory holds its files."""
    return orjson.dumps(
        {"session_id": session_id, "agent_id": agent_id}, option=orjson.OPT_APPEND_NEWLINE
    )


def _agent_bytes(agent: Agent) -> bytes:
    return orjson.dumps(
        {
            "format": _RECORD_FORMAT,
            "id": agent.id,
            "name": agent.name,
            "state": agent.state,
            "started_at": format_time(agent.started_at),
            "provider": agent.provider,
            "model": agent.model,
            "description": agent.description,
            "created_at": format_time(agent.created_at),
            "updated_at": format_time(agent.updated_at),
            "tenant_id": agent.tenant_id,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


def _agent(record: dict[str, Any]) -> Agent:
    try:
        return Agent(
            id=record["id"],
            name=record["name"],
            state=record["state"],
            started_at=parse_time(record["started_at"]),
            provider=record["provider"],
            model=record["model"],
            description=record["description"],
            created_at=parse_time(record["created_at"]),
            updated_at=parse_time(record["updated_at"]),
            # Records written before tenants were recorded have no such key: no tenant.
            tenant_id=record.get("tenant_id"),
        )
    except (KeyError, TypeError, ValueError) as exc:  # a record edited by hand
        fields = {key: record.get(key) for key in ("started_at", "created_at", "updated_at")}
        raise damaged_record(f"agent {record.get('id')!r}", fields, exc) from exc


def _summary_bytes(count: int, size: int, at: str) -> bytes:
    body = b'{"count":%d,"size":%d,"at":"%s"}' % (count, size, at.encode())
    line = b"%s %08x" % (body, zlib.crc32(body))
    return line.ljust(_SUMMARY_SIZE - 1) + b"\n"


def _summary(data: bytes | None) -> tuple[int, int, str] | None:
    """``(count, log size, last append)`` if the summary is whole (its checksum holds)."""
    if not data:
        return None
    body, _, checksum = data.rstrip().rpartition(b" ")
    try:
        if int(checksum, 16) != zlib.crc32(body):
            return None
        record = orjson.loads(body)
        return int(record["count"]), int(record["size"]), str(record["at"])
    except (ValueError, KeyError, TypeError):
        return None


# ------------------------------------------------------------------- the store


@dataclass(slots=True)
class _PendingAppend:
    """One caller's batch waiting for the session's next group write."""

    messages: list[EncodedMessage]
    now: datetime
    owner: Owner | None
    future: asyncio.Future[list[Message]]


class FileStore(BaseStore):
    """Keeps everything in files under one directory; safe for several processes at once."""

    backend = "files"

    def __init__(self, url: DatabaseURL, directory: Path, *, max_workers: int = 4) -> None:
        super().__init__(url)
        self._root = directory
        # Every file operation below the root goes through the tree.
        self._tree = FileTree(directory, held=("sessions", "agents", "index", "locks"))
        self._sessions_root = directory / "sessions"
        self._agents_root = directory / "agents"
        self._index_root = directory / "index"
        self._locks_root = directory / "locks"
        self._listing_path = directory / LISTING_FILE
        self._listing_lock = self._locks_root / _LISTING_LOCK
        # True once the store is known to be in format 2: listings read the session list.
        self._listed = False
        self._compacting = threading.Lock()  # held while a compaction is queued or running
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="mofa-files"
        )
        self._session_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._pending: dict[str, list[_PendingAppend]] = {}
        self._flushing: set[str] = set()
        self._flush_tasks: set[asyncio.Task[None]] = set()

    @property
    def directory(self) -> Path:
        """The data directory (absolute)."""
        return self._root

    @classmethod
    async def connect(
        cls, url: str | DatabaseURL | os.PathLike[str] | None = None, **options: Any
    ) -> Self:
        """Open (creating if needed) the store in the URL's directory.

        Args:
            url: ``file:///abs/dir`` or ``file://./rel/dir``, a parsed URL, a directory
                path, or ``None`` for :func:`default_data_dir`.
            **options: ``max_workers`` (threads doing file work, default 4);
                ``create_schema`` (default True; False: create and change nothing, and
                refuse a directory that holds no mofa file store with :class:`SchemaError`).
        """
        if url is None:
            url = default_data_dir()
        if isinstance(url, os.PathLike):
            directory = Path(url)
            parsed = parse_url(directory_url(directory))
        else:
            parsed = parse_url(url) if isinstance(url, str) else url
            if parsed.backend != "files" or parsed.path is None:
                raise InvalidInputError(
                    f"FileStore needs a file:// URL, not {parsed.masked!r}; "
                    "use open_store() for other databases."
                )
            directory = Path(parsed.path)
        reject_unknown_options("FileStore", options, ("max_workers", "create_schema"))
        max_workers = options.get("max_workers", 4)
        create = options.get("create_schema", True)
        check_flag("create_schema", create)
        check_option("max_workers", max_workers, integer=True, minimum=1)
        directory = directory.expanduser().absolute()
        store = cls(parsed, directory, max_workers=max_workers)
        try:
            store.applied_migrations = await store._run(store._prepare, create)
        except BaseException:
            store._executor.shutdown(wait=False)
            store._tree.close()
            raise
        return store

    # ---------------------------------------------------------------- plumbing

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run blocking file work in a worker thread, translating OS errors."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self._translated, function, *args)
        )

    def _translated(self, function: Callable[..., _T], *args: Any) -> _T:
        began = self._tree.begin_call()
        try:
            return function(*args)
        except PersistenceError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise QueryError(
                f"The file store in {self._root} holds a damaged file ({exc!r}); "
                "restore it from a backup."
            ) from exc
        except PermissionError as exc:
            raise PermissionDeniedError(
                f"The file store cannot access {exc.filename or self._root}: permission denied; "
                f"check the owner and mode of {self._root}."
            ) from exc
        except OSError as exc:
            where = exc.filename or self._root
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise QueryError(
                    f"The file store could not write to {where}: the disk is full; "
                    "free some space and retry."
                ) from exc
            raise QueryError(f"The file store failed on {where}: {exc.strerror or exc}.") from exc
        finally:
            self._tree.end_call(began)

    def _lock_for(self, session_id: str) -> asyncio.Lock:
        lock = self._session_locks.get(session_id)
        if lock is None:
            lock = asyncio.Lock()
            self._session_locks[session_id] = lock
        return lock

    async def _run_locked(self, session_id: str, function: Callable[..., _T], *args: Any) -> _T:
        """Run a write with the session's asyncio lock held (flock is taken in the thread)."""
        lock = self._lock_for(session_id)
        async with lock:
            return await self._run(function, *args)

    async def _close(self) -> None:
        # Appends already accepted finish (and are acknowledged) before the threads stop.
        while self._flush_tasks:
            await asyncio.gather(*self._flush_tasks, return_exceptions=True)
        await asyncio.to_thread(self._executor.shutdown, True)
        self._tree.close()

    def _prepare(self, create: bool = True) -> tuple[int, ...]:
        """Create the directory tree, or check and upgrade the store in it; the formats this
        call applied (``(1, 2)`` for a new store, ``(2,)`` for an upgrade). With ``create``
        False, a directory without the store's marker is refused and nothing is made."""
        root, tree = self._root, self._tree
        marker = root / STORE_MARKER
        try:
            tree.open_root()
        except FileNotFoundError:
            if not create:
                raise SchemaError(
                    f"There is no mofa file store in {root} (it has no {STORE_MARKER}); "
                    "check the path."
                ) from None
            with contextlib.suppress(FileExistsError):  # made meanwhile: opened just below
                root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile: reported below
                tree.open_root()
        except NotADirectoryError:
            pass  # reported below
        if not root.is_dir():
            raise StoreConnectionError(
                f"The file store path {root} exists but is not a directory; "
                "point file:// at a directory."
            )
        # A marker is checked before anything is made: a directory marked with a newer
        # format, or holding something else under the marker's name, is left exactly as it
        # was (no subdirectory, no session list).
        marked = tree.exists(marker)
        version = self._format(marker) if marked else 0
        if not create and not marked:
            raise SchemaError(
                f"There is no mofa file store in {root} (it has no {STORE_MARKER}); check the path."
            )
        for directory in (
            self._sessions_root,
            self._agents_root,
            self._index_root,
            self._locks_root,
        ):
            tree.make_dir(directory)
        if not marked:
            # The list before the marker: a store that has a marker has its list. (No
            # O_TRUNC: another process may be creating the same store and already using it.)
            tree.touch(self._listing_path, truncate=False)
            tree.sync_dir(root)
            if tree.create_exclusively(marker, b'{"format":%d}\n' % FORMAT_VERSION):
                self._listed = True
                return tuple(range(1, FORMAT_VERSION + 1))
            version = self._format(marker)  # another process created the store meanwhile
        # An existing store is only read here (unless it needs an upgrade), so a read-only one
        # can still be opened.
        if version >= 2 and tree.exists(self._listing_path):
            self._listed = True
            return ()
        if not create:
            return ()  # listed by reading every header, as format 1 was
        try:
            upgraded = self._build_listing(marker)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            return ()  # a store this process may only read: listed as format 1 was
        self._listed = True
        return (FORMAT_VERSION,) if upgraded else ()

    def _format(self, marker: Path) -> int:
        record = self._read_record(marker)
        version = record.get("format") if record else None
        if not isinstance(version, int):
            raise SchemaError(
                f"{marker} is not a MoFA file store marker; point file:// at a MoFA data "
                "directory or an empty one."
            )
        if version > FORMAT_VERSION:
            raise SchemaError(
                f"The file store in {marker.parent} uses format {version}, newer than this "
                f"version of mofa-sdk understands ({FORMAT_VERSION}); upgrade mofa-sdk."
            )
        return version

    def _read_record(self, path: Path) -> dict[str, Any] | None:
        """The JSON object in ``path``; None if the file is missing or holds no JSON object."""
        return _parse(self._tree.read(path) or b"")

    def _build_listing(self, marker: Path) -> bool:
        """Write the session list from the headers and mark the store format 2; False when
        another process did it first. Lines already in a list (left by an upgrade cut short,
        or added since by writers) are kept: a line whose session is gone is skipped anyway."""
        tree = self._tree
        with tree.flocked(self._listing_lock):
            if self._format(marker) >= 2 and tree.exists(self._listing_path):
                return False
            lines: dict[tuple[str, str], bytes] = {}
            for line in (tree.read(self._listing_path) or b"").split(b"\n")[:-1]:
                entry = _parse(line)
                if entry is not None and all(
                    isinstance(entry.get(key), str) for key in ("created_at", "session_id")
                ):
                    lines[(entry["created_at"], entry["session_id"])] = line + b"\n"
            # While a store has no list, this module writes a session's header under the
            # list's lock (see _create_session_sync): none is half made while they are read.
            for created_at, session_id, header in self._scan_headers({}):
                # A live session's line comes from its header (the header wins over a stale
                # line of the same time and id).
                lines[(created_at, session_id)] = _listing_line(
                    created_at,
                    session_id,
                    header["agent_id"],
                    header["user_id"],
                    header["tenant_id"],
                )
            tree.replace(self._listing_path, b"".join(lines[key] for key in sorted(lines)))
            tree.replace(marker, b'{"format":%d}\n' % FORMAT_VERSION)
        return True

    def _lock_path(self, session_id: str) -> Path:
        return self._locks_root / f"{_stem(session_id)}.lock"

    def _index_path(self, session_id: str) -> Path:
        return self._index_root / f"{_stem(session_id)}.json"

    def _files(self, agent_id: str | None, session_id: str) -> _SessionFiles:
        return _SessionFiles.at(self._sessions_root, agent_id, session_id)

    def _indexed_files(self, session_id: str) -> _SessionFiles | None:
        """The files the index entry points at (they may be gone: check the header)."""
        record = self._read_record(self._index_path(session_id))
        if record is None or record.get("session_id") != session_id:
            return None
        agent_id = record.get("agent_id")
        return self._files(agent_id if isinstance(agent_id, str) else None, session_id)

    def _read_header(self, files: _SessionFiles, session_id: str) -> dict[str, Any] | None:
        header = self._read_record(files.header)
        if header is None:
            return None
        if header.get("session_id") != session_id:
            raise ConflictError(
                f"The session file {files.header} holds session {header.get('session_id')!r}, "
                f"not {session_id!r}; the store directory was edited by hand."
            )
        return header

    def _live_files(self, session_id: str) -> _SessionFiles | None:
        """The session's files if it exists (its header does), without reading the header."""
        files = self._indexed_files(session_id)
        return files if files is not None and self._tree.exists(files.header) else None

    def _unlink_logs(self, files: _SessionFiles) -> None:
        """Remove a session's logs and summary (the header and index entry stay)."""
        for path in (files.messages, files.states, files.summary):
            self._tree.unlink(path, missing_ok=True)

    def _not_found(self, session_id: str) -> SessionNotFoundError:
        """The error for a missing session, once the lock file that locking just created is
        removed again (called with the lock held), so probing unknown ids leaves nothing."""
        self._tree.unlink(self._lock_path(session_id), missing_ok=True)
        return SessionNotFoundError(session_id)

    def _locate(
        self, session_id: str, owner: Owner | None = None
    ) -> tuple[_SessionFiles, dict[str, Any]]:
        """The live session's files and header, or raise :class:`SessionNotFoundError` (also
        for a session outside ``owner``'s scope, checked on this same header read).

        Called with the session's lock held: the header cannot change until it is released.
        """
        files = self._indexed_files(session_id)
        header = None if files is None else self._read_header(files, session_id)
        if files is None or header is None:
            raise self._not_found(session_id)
        if owner is not None and not _owned(header, owner):
            # Another owner's session: it exists, so its lock file stays.
            raise SessionNotFoundError(session_id)
        return files, header

    def _require_live(self, session_id: str) -> _SessionFiles:
        """Like :meth:`_locate` without parsing the header (appends only need it to exist)."""
        files = self._live_files(session_id)
        if files is None:
            raise self._not_found(session_id)
        return files

    def _message_tail(
        self, fd: int, files: _SessionFiles, size: int | None = None, *, writer: bool = False
    ) -> _Tail:
        """The messages log's valid end (``size``: the log's, if the caller has it)."""
        if size is None:
            size = os.fstat(fd).st_size
        # An empty log needs no summary.
        summary = _summary(self._tree.read(files.summary)) if size else None
        return _tail_from_summary(fd, size, summary, writer=writer)

    def _count_and_time(self, files: _SessionFiles) -> tuple[int, str | None]:
        """Message count and last append time, from the summary; the log only if it is stale."""
        try:
            size = self._tree.stat(files.messages).st_size
        except FileNotFoundError:
            return 0, None
        if size == 0:
            return 0, None
        summary = _summary(self._tree.read(files.summary))
        if summary is not None and summary[1] == size:
            return summary[0], summary[2]
        # A crash (or a writer right now) between the log append and the summary update.
        try:
            fd = self._tree.open(files.messages, os.O_RDONLY)
        except FileNotFoundError:
            return 0, None
        try:
            tail = _tail_from_summary(fd, os.fstat(fd).st_size, summary)
        finally:
            os.close(fd)
        return tail.last, tail.at

    def _session(self, header: dict[str, Any], files: _SessionFiles) -> Session:
        count, last_append = self._count_and_time(files)
        updated_at: Any = header.get("updated_at")
        expires_at = header.get("expires_at")
        try:
            if last_append is not None and last_append > updated_at:
                updated_at = last_append  # fixed-width UTC text: text order is time order
            metadata = header["metadata"]
            if type(metadata) is not dict:
                raise TypeError("metadata is not a JSON object")
            return Session(
                session_id=header["session_id"],
                agent_id=header["agent_id"],
                user_id=header["user_id"],
                tenant_id=header["tenant_id"],
                status=header["status"],
                metadata=metadata,
                message_count=count,
                created_at=parse_time(header["created_at"]),
                updated_at=parse_time(updated_at),
                expires_at=None if expires_at is None else parse_time(expires_at),
            )
        except (KeyError, TypeError, ValueError) as exc:  # a header edited by hand
            session_id = header["session_id"]  # checked against the id read by every caller
            fields = {"metadata": header.get("metadata"), "created_at": header.get("created_at")}
            raise damaged_record(
                f"session {session_id!r}",
                {**fields, "updated_at": updated_at, "expires_at": expires_at},
                exc,
                session_id=session_id,
            ) from exc

    # ---------------------------------------------------------------- agents

    def _agent_path(self, agent_id: str) -> Path:
        return self._agents_root / f"{_stem(agent_id)}.json"

    def _read_agent(self, agent_id: str) -> Agent | None:
        record = self._read_record(self._agent_path(agent_id))
        if record is None or record.get("id") != agent_id:
            return None
        return _agent(record)

    def _upsert_agent_sync(self, agent: Agent, owner: Owner | None) -> Agent:
        path = self._agent_path(agent.id)
        with self._tree.flocked(self._locks_root / f"{_stem(agent.id)}.agent.lock"):
            # The tenant is checked on the record this lock-holding read returns, so no other
            # upsert can change it in between; a refused upsert writes nothing.
            existing = self._read_agent(agent.id)
            if existing is not None:
                if owner is not None and existing.tenant_id != owner.tenant_id:
                    raise AgentExistsError(agent.id)
                # An update keeps who registered the agent, and when.
                agent = dataclasses.replace(
                    agent, created_at=existing.created_at, tenant_id=existing.tenant_id
                )
            self._tree.replace(path, _agent_bytes(agent))
        return agent

    async def _upsert_agent(self, agent: Agent, owner: Owner | None) -> Agent:
        return await self._run(self._upsert_agent_sync, agent, owner)

    async def _get_agent(self, agent_id: str) -> Agent | None:
        return await self._run(self._read_agent, agent_id)

    def _list_agents_sync(self, limit: int | None) -> list[Agent]:
        agents = []
        for name, _is_dir in self._tree.entries(self._agents_root):
            if not name.startswith(".") and name.endswith(".json"):
                record = self._read_record(self._agents_root / name)
                if record is not None:
                    agents.append(_agent(record))
        agents.sort(key=lambda a: (a.updated_at, a.id), reverse=True)
        return agents[:limit]

    async def _list_agents(self, limit: int | None) -> list[Agent]:
        return await self._run(self._list_agents_sync, limit)

    # ---------------------------------------------------------------- sessions

    def _create_session_sync(self, session: Session, metadata_json: str) -> Session:
        session_id = session.session_id
        files = self._files(session.agent_id, session_id)
        tree = self._tree
        with tree.flocked(self._lock_path(session_id)):
            previous = self._indexed_files(session_id)
            if previous is not None:
                if self._read_header(previous, session_id) is not None:
                    raise SessionExistsError(session_id)
                # Left by a crash mid-create or mid-delete: nobody can see these; clear them.
                self._unlink_logs(previous)
            if tree.exists(files.header):
                raise ConflictError(
                    f"The session file {files.header} exists without an index entry; "
                    "the store directory was edited by hand."
                )
            if session.agent_id is not None and not tree.exists(self._agent_path(session.agent_id)):
                # The foreign key: a minimal agent record, unless an upsert got there first.
                tree.create_exclusively(
                    self._agent_path(session.agent_id),
                    _agent_bytes(placeholder_agent(session)),
                )
            tree.make_dir(files.directory)
            tree.replace(self._index_path(session_id), _index_bytes(session_id, session.agent_id))
            tree.unlink(files.summary, missing_ok=True)
            tree.touch(files.messages, truncate=True)
            tree.touch(files.states, truncate=True)
            with tree.flocked(self._listing_lock):
                try:
                    listing = tree.open(self._listing_path, os.O_RDWR | os.O_APPEND)
                except FileNotFoundError:
                    # A format-1 store: no list to add to. The header is written with the
                    # list's lock held, so an upgrade reading the headers sees it whole.
                    tree.replace(files.header, _header_bytes(session, metadata_json))
                    return session
                try:
                    session = _add_to_listing(listing, session)
                finally:
                    os.close(listing)
            # The header is written last: once it exists, the session does.
            tree.replace(files.header, _header_bytes(session, metadata_json))
        return session

    async def _create_session(self, session: Session, metadata_json: str) -> Session:
        return await self._run_locked(
            session.session_id, self._create_session_sync, session, metadata_json
        )

    def _get_session_sync(self, session_id: str, owner: Owner | None) -> Session | None:
        files = self._indexed_files(session_id)
        if files is None:
            return None
        header = self._read_header(files, session_id)
        if header is None or (owner is not None and not _owned(header, owner)):
            return None
        return self._session(header, files)

    async def _get_session(self, session_id: str, owner: Owner | None) -> Session | None:
        return await self._run(self._get_session_sync, session_id, owner)

    def _list_sessions_sync(
        self,
        agent_id: str | None,
        user_id: str | None,
        tenant_id: str | None,
        limit: int | None,
        offset: int,
        owner: Owner | None,
    ) -> list[Session]:
        if limit == 0:
            return []
        # What a session's ids must equal. The most selective first: it is the one the list
        # is searched for (see _listed_newest_first). A filter left None matches anything;
        # through an owner every id is the owner's (the caller dropped filters outside it),
        # None meaning "the session has no such id".
        wanted: dict[str, str | None]
        if owner is None:
            filters = {"user_id": user_id, "tenant_id": tenant_id, "agent_id": agent_id}
            wanted = {key: value for key, value in filters.items() if value is not None}
        else:
            wanted = {
                "user_id": owner.user_id,
                "tenant_id": owner.tenant_id,
                "agent_id": owner.agent_id,
            }
        if self._listed:
            try:
                fd = self._tree.open(self._listing_path, os.O_RDONLY)
            except FileNotFoundError:
                pass  # removed by hand: the headers still tell (a writable open rebuilds it)
            else:
                try:
                    return self._list_from_listing(fd, wanted, limit, offset)
                finally:
                    os.close(fd)
        found = self._scan_headers(wanted)
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        end = None if limit is None else offset + limit
        page = found[offset:end]
        # Counts are read for the page only, from each session's summary (a log is read only
        # when its summary is stale after a crash).
        return [
            self._session(header, self._files(header["agent_id"], session_id))
            for _created, session_id, header in page
        ]

    def _list_from_listing(
        self, fd: int, wanted: dict[str, str | None], limit: int | None, offset: int
    ) -> list[Session]:
        """A page of sessions read from the session list: only the headers and summaries
        of the sessions on the page (and of the ``offset`` ones before it) are opened.

        ``wanted``: the ids a session must have (see :meth:`_list_sessions_sync`). A value is
        searched for as bytes (the first) or checked as bytes on the lines holding it; a
        ``None`` one (an owner's "no such id") is checked on the parsed lines only, so it
        adds no read: the listing still reads only the lines it passes.
        """
        needles = [
            _listing_needle(key, value) for key, value in wanted.items() if value is not None
        ]
        page: list[Session] = []
        seen: set[str] = set()
        stale = 0
        for entry in _listed_newest_first(fd, os.fstat(fd).st_size, needles):
            session_id = entry["session_id"]
            if session_id in seen or any(entry[key] != value for key, value in wanted.items()):
                continue
            files = self._files(entry["agent_id"], session_id)
            header = self._read_record(files.header)
            if header is None or not _header_matches(header, entry):
                # Deleted, still being created, or created again since (perhaps for another
                # user at the same time: a late creation takes the last listed time).
                stale += 1
                continue
            seen.add(session_id)
            if offset:
                offset -= 1
                continue
            page.append(self._session(header, files))
            if len(page) == limit:
                break
        if stale >= COMPACT_AFTER and self._compacting.acquire(blocking=False):
            # Deleted sessions' lines would cost every later listing an open() each: drop
            # them, in the background (close() waits for it).
            try:
                self._executor.submit(self._compact_listing)
            except RuntimeError:  # the store is closing: the next store will do it
                self._compacting.release()
        return page

    def _compact_listing(self) -> None:
        """Rewrite the session list without the lines of sessions that are gone. Best effort:
        skipped when another process holds the list's lock or the directory is read-only."""
        try:
            tree = self._tree
            fd = tree.open(self._listing_lock, os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                data = tree.read(self._listing_path)
                if data is None:
                    return  # removed meanwhile: the next writable open rebuilds it
                kept: list[bytes] = []
                for line in data.split(b"\n")[:-1]:
                    entry = _listed(line)  # (a torn last write is not a line: dropped)
                    session_id = entry["session_id"]
                    header = self._read_record(self._files(entry["agent_id"], session_id).header)
                    # Without a header, kept while its index entry exists: the session may be
                    # being created (its header is written after its line, without the lock).
                    if (
                        tree.exists(self._index_path(session_id))
                        if header is None
                        else _header_matches(header, entry)
                    ):
                        kept.append(line + b"\n")
                tree.replace(self._listing_path, b"".join(kept))
            finally:
                os.close(fd)
        except (OSError, PersistenceError):
            pass  # busy, read-only, or damaged (the listing itself reports damage)
        finally:
            self._compacting.release()

    def _scan_headers(self, wanted: dict[str, str | None]) -> list[tuple[str, str, dict[str, Any]]]:
        """``(created_at, session_id, header)`` of every session whose ids equal ``wanted``
        (``None``: the session has no such id), read from every header (format 1's listing,
        and how the session list is first built, with nothing wanted)."""
        if "agent_id" in wanted:
            # One agent's directory (sessions without an agent: the @none one).
            directories = [self._sessions_root / _agent_dir_name(wanted["agent_id"])]
        else:
            directories = [
                self._sessions_root / name
                for name, is_dir in self._tree.entries(self._sessions_root)
                if is_dir and not name.startswith(".")
            ]
        found: list[tuple[str, str, dict[str, Any]]] = []
        for directory in directories:
            try:
                listing = self._tree.entries(directory)
            except FileNotFoundError:
                continue
            for name, _is_dir in listing:
                # Headers are "<stem>.json"; encoded stems hold no '.', temporary files start
                # with one, and the logs end differently.
                if name.startswith(".") or not name.endswith(".json") or name.count(".") != 1:
                    continue
                header = self._read_record(directory / name)
                if header is None or any(header.get(key) != value for key, value in wanted.items()):
                    continue
                found.append((header["created_at"], header["session_id"], header))
        return found

    async def _list_sessions(
        self,
        agent_id: str | None,
        user_id: str | None,
        tenant_id: str | None,
        limit: int | None,
        offset: int,
        owner: Owner | None,
    ) -> list[Session]:
        return await self._run(
            self._list_sessions_sync, agent_id, user_id, tenant_id, limit, offset, owner
        )

    def _update_session_sync(
        self,
        session_id: str,
        status: str | None,
        metadata_json: str | None,
        expires_at: datetime | Unset | None,
        now: datetime,
        owner: Owner | None,
    ) -> Session:
        with self._tree.flocked(self._lock_path(session_id)):
            files, header = self._locate(session_id, owner)
            if status is not None:
                header["status"] = status
            if not isinstance(expires_at, Unset):
                header["expires_at"] = None if expires_at is None else format_time(expires_at)
            header["updated_at"] = format_time(now)
            if metadata_json is not None:
                header["metadata"] = decode_json(metadata_json)
            data = orjson.dumps(header, option=orjson.OPT_APPEND_NEWLINE)
            self._tree.replace(files.header, data)
            return self._session(header, files)

    async def _update_session(
        self,
        session_id: str,
        status: str | None,
        metadata_json: str | None,
        expires_at: datetime | Unset | None,
        now: datetime,
        owner: Owner | None,
    ) -> Session:
        return await self._run_locked(
            session_id,
            self._update_session_sync,
            session_id,
            status,
            metadata_json,
            expires_at,
            now,
            owner,
        )

    def _delete_session_sync(self, session_id: str, owner: Owner | None) -> bool:
        tree, lock_path = self._tree, self._lock_path(session_id)
        with tree.flocked(lock_path):
            files = self._indexed_files(session_id)
            header = None if files is None else self._read_header(files, session_id)
            if header is not None and owner is not None and not _owned(header, owner):
                return False  # another owner's session: left exactly as it is, lock file too
            if files is not None:
                if header is not None:
                    # The header goes first and durably: from then on the session is gone for
                    # every reader, and a crash below leaves only files nobody sees.
                    tree.unlink(files.header)
                    tree.sync_dir(files.directory)
                # Also clears what a crashed create or delete left.
                self._unlink_logs(files)
                tree.unlink(self._index_path(session_id), missing_ok=True)
            # Waiters re-check the lock file's identity after locking, so unlinking is safe.
            # It is tidying only: the session is deleted by now, and a lock file left behind
            # (say, in a directory this process may not write) is harmless and reused.
            with contextlib.suppress(OSError):
                tree.unlink(lock_path)
        return header is not None

    async def _delete_session(self, session_id: str, owner: Owner | None) -> bool:
        return await self._run_locked(session_id, self._delete_session_sync, session_id, owner)

    # ---------------------------------------------------------------- messages

    def _append_groups_sync(
        self,
        session_id: str,
        groups: Sequence[tuple[Sequence[EncodedMessage], datetime, Owner | None]],
    ) -> list[list[Message] | SessionNotFoundError]:
        """Append several callers' batches with one write and one fdatasync.

        Each batch keeps its own ``end`` marker, so a crash mid-write can cut between
        batches but never inside one. A batch sent through an owner that the session's
        header (read here, under the lock) is not inside gets :class:`SessionNotFoundError`
        and writes nothing; the others are written.
        """
        scoped = any(owner is not None for _messages, _now, owner in groups)
        with self._log_for_append(session_id, states=False, scoped=scoped) as (
            files,
            header,
            fd,
        ):
            size = os.fstat(fd).st_size
            tail = self._message_tail(fd, files, size, writer=True)
            lines: list[bytes] = []
            results: list[list[Message] | SessionNotFoundError] = []
            last = tail.last
            at = ""
            for messages, now, owner in groups:
                if owner is not None and (header is None or not _owned(header, owner)):
                    results.append(SessionNotFoundError(session_id))
                    continue
                stamp = format_time(now)  # most messages carry the call's own time
                at = max(at, stamp)
                first, last = last + 1, last + len(messages)
                lines.extend(
                    _message_line(
                        message,
                        first + offset,
                        last,
                        stamp,
                        stamp if message.timestamp is now else format_time(message.timestamp),
                    )
                    for offset, message in enumerate(messages)
                )
                results.append(
                    [
                        message.stored(session_id, first + offset)
                        for offset, message in enumerate(messages)
                    ]
                )
            if not lines:
                return results  # every batch refused: nothing is written, not even a repair
            data = b"".join(lines)
            _append_durably(fd, data, size, tail.end)
            self._write_summary(files.summary, last, tail.end + len(data), at)
        return results

    @contextlib.contextmanager
    def _log_for_append(
        self, session_id: str, states: bool, *, scoped: bool = False
    ) -> Iterator[tuple[_SessionFiles, dict[str, Any] | None, int]]:
        """The session's message (or state) log, opened for appending under the session's
        lock, so no other process writes it meanwhile.

        ``scoped``: the header is read (instead of only checked to exist) and yielded, for
        the caller to check the owner on it while the lock is held: a session deleted and
        created again by another owner cannot slip in between the check and the write.
        """
        with self._tree.flocked(self._lock_path(session_id)):
            header: dict[str, Any] | None = None
            if scoped:
                files, header = self._locate(session_id)
            else:
                files = self._require_live(session_id)
            try:
                fd = self._tree.open(
                    files.states if states else files.messages, os.O_RDWR | os.O_APPEND
                )
            except FileNotFoundError:
                raise SessionNotFoundError(session_id) from None
            try:
                yield files, header, fd
            finally:
                os.close(fd)

    def _write_summary(self, path: Path, count: int, size: int, at: str) -> None:
        # Derived data: not fsynced. A stale or torn summary fails its checks and the count is
        # read from the log's last line instead.
        fd = self._tree.open(path, os.O_WRONLY | os.O_CREAT)
        try:
            os.pwrite(fd, _summary_bytes(count, size, at), 0)
        finally:
            os.close(fd)

    async def _append_messages(
        self,
        session_id: str,
        messages: list[EncodedMessage],
        now: datetime,
        owner: Owner | None,
    ) -> list[Message]:
        # Group commit: appends that arrive while a write for this session is in flight are
        # written together by the next one (one write, one fdatasync); each still returns
        # only after its own bytes are on disk. Each keeps its owner: the write checks it.
        loop = asyncio.get_running_loop()
        pending = _PendingAppend(messages, now, owner, loop.create_future())
        self._pending.setdefault(session_id, []).append(pending)
        if session_id not in self._flushing:
            self._flushing.add(session_id)
            task = loop.create_task(self._flush(session_id))
            self._flush_tasks.add(task)
            task.add_done_callback(self._flush_tasks.discard)
        return await pending.future

    async def _flush(self, session_id: str) -> None:
        queue: list[_PendingAppend] = []
        try:
            while True:
                queue = [
                    item
                    for item in self._pending.pop(session_id, [])
                    if not item.future.cancelled()
                ]
                if not queue:  # nothing new arrived during the last write
                    return
                try:
                    results = await self._run_locked(
                        session_id,
                        self._append_groups_sync,
                        session_id,
                        [(item.messages, item.now, item.owner) for item in queue],
                    )
                except Exception as exc:
                    for item in queue:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    continue
                for item, result in zip(queue, results, strict=True):
                    if item.future.done():
                        continue
                    if isinstance(result, SessionNotFoundError):  # refused by its owner scope
                        item.future.set_exception(result)
                    else:
                        item.future.set_result(result)
                queue = []
        finally:
            self._flushing.discard(session_id)
            # Only reached early if this task itself was cancelled: do not leave callers hanging.
            for item in [*queue, *self._pending.pop(session_id, [])]:
                item.future.cancel()

    def _open_log(
        self, session_id: str, states: bool, owner: Owner | None
    ) -> tuple[int, _SessionFiles, int] | None:
        """The session's message (or state) log opened for reading, with its files and
        size; ``None`` when the session is missing or, through ``owner``, not the owner's.

        Reads take no lock, so with an owner the order matters: the log is opened first,
        then the header is read (instead of only checked to exist) and the owner checked on
        it, then the open log is checked to still be linked (``st_nlink``, from the fstat
        that gives the size anyway). A deletion unlinks the header and then the logs, and a
        creation makes new logs before its header; so a log still linked after the header
        read belongs to the session that header describes: one deleted and created again
        by another owner meanwhile is never read as the first owner's, nor the other way.
        """
        # (Without an owner the header is only checked to exist, before the open.)
        files = self._live_files(session_id) if owner is None else self._indexed_files(session_id)
        if files is None:
            return None
        try:
            fd = self._tree.open(files.states if states else files.messages, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            if owner is not None:
                header = self._read_header(files, session_id)
                if header is None or not _owned(header, owner):
                    os.close(fd)
                    return None
            status = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if owner is not None and status.st_nlink == 0:
            os.close(fd)
            return None  # deleted since it was opened
        return fd, files, status.st_size

    def _read_messages(
        self,
        session_id: str,
        owner: Owner | None,
        read: Callable[[int, _Tail], list[dict[str, Any]]],
    ) -> list[Message]:
        """The messages ``read(fd, tail)`` picks from the session's log (none if it is gone,
        or not ``owner``'s)."""
        opened = self._open_log(session_id, False, owner)
        if opened is None:
            return []
        fd, files, size = opened
        try:
            records = read(fd, self._message_tail(fd, files, size))
        finally:
            os.close(fd)
        return [_message(session_id, record) for record in records]

    def _list_messages_sync(
        self, session_id: str, limit: int | None, after_seq: int, owner: Owner | None
    ) -> list[Message]:
        return self._read_messages(
            session_id,
            owner,
            lambda fd, tail: _read_after(fd, tail, _SEQ_PREFIX, after_seq, limit),
        )

    async def _list_messages(
        self, session_id: str, limit: int | None, after_seq: int, owner: Owner | None
    ) -> list[Message]:
        return await self._run(self._list_messages_sync, session_id, limit, after_seq, owner)

    def _list_recent_messages_sync(
        self, session_id: str, limit: int, owner: Owner | None
    ) -> list[Message]:
        messages = self._read_messages(
            session_id, owner, lambda fd, tail: _read_last(fd, tail, limit)
        )
        messages.reverse()  # read newest first, returned oldest first
        return messages

    async def _list_recent_messages(
        self, session_id: str, limit: int, owner: Owner | None
    ) -> list[Message]:
        return await self._run(self._list_recent_messages_sync, session_id, limit, owner)

    # ---------------------------------------------------------------- agent state

    def _save_state_sync(
        self, session_id: str, state_json: str, now: datetime, owner: Owner | None
    ) -> int:
        """Append one snapshot (one line, one write, fdatasync); return its version."""
        at = format_time(now)
        with self._log_for_append(session_id, states=True, scoped=owner is not None) as (
            _files,
            header,
            fd,
        ):
            # The owner is checked on the header read under the lock the write holds.
            if owner is not None and (header is None or not _owned(header, owner)):
                raise SessionNotFoundError(session_id)
            size = os.fstat(fd).st_size
            tail = _scan_tail(fd, size, "version")
            version = tail.last + 1
            data = b'{"version":%d,"end":%d,"at":"%s","state":%s}\n' % (
                version,
                version,
                at.encode(),
                state_json.encode("utf-8"),
            )
            _append_durably(fd, data, size, tail.end)
        return version

    async def _save_state(
        self,
        session_id: str,
        state: dict[str, Any],
        state_json: str,
        now: datetime,
        owner: Owner | None,
    ) -> AgentState:
        version = await self._run_locked(
            session_id, self._save_state_sync, session_id, state_json, now, owner
        )
        return AgentState(session_id, version, state, now)

    def _states_sync(
        self, session_id: str, version: int | None, limit: int | None, owner: Owner | None
    ) -> list[AgentState]:
        opened = self._open_log(session_id, True, owner)
        if opened is None:
            return []
        fd, _files, size = opened
        try:
            tail = _scan_tail(fd, size, "version")
            if version is not None:
                if not 1 <= version <= tail.last:
                    return []
                records = _read_after(fd, tail, _VERSION_PREFIX, version - 1, 1)
            else:
                records = _read_last(fd, tail, tail.last if limit is None else limit)
        finally:
            os.close(fd)
        return [_state(session_id, record) for record in records]

    async def _get_state(
        self, session_id: str, version: int | None, owner: Owner | None
    ) -> AgentState | None:
        states = await self._run(self._states_sync, session_id, version, 1, owner)
        return states[0] if states else None

    async def _list_states(
        self, session_id: str, limit: int | None, owner: Owner | None
    ) -> list[AgentState]:
        return await self._run(self._states_sync, session_id, None, limit, owner)
