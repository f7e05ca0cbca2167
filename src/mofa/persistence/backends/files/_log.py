"""The append-only logs (a session's messages and its state snapshots): reading lines from
either end, finding where the valid log ends after a crash, finding a key by binary search,
and the summary that keeps a messages log's count and size.

A log is one JSON object per line; every line names the key that ends its batch (``end``),
so a batch cut short by a crash is recognised and ignored as a whole.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mofa.persistence.backends.files._layout import SessionFiles
from mofa.persistence.backends.files._tree import FileTree
from mofa.persistence.errors import QueryError

BLOCK = 64 * 1024
SEQ_PREFIX = b'{"seq":'
VERSION_PREFIX = b'{"version":'
_SUMMARY_SIZE = 160


def lines_backward(fd: int, end: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(start, line)`` for each newline-terminated line before ``end``, last first.

    Bytes after the last newline are a torn write and are skipped. Reads 64 KiB blocks from
    the end, so the last lines of a long log cost a read or two.
    """
    position = end
    parts: list[bytes] = []  # pieces of the line being assembled, right to left
    complete = False  # False while still inside the torn tail
    while position > 0:
        size = min(BLOCK, position)
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
        chunk = os.pread(fd, min(4 * BLOCK, end - position), position)
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


def parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def _parse_logged(line: bytes) -> dict[str, Any]:
    """A line of a log's valid part, which must parse (else the log was damaged later)."""
    record = parse(line)
    if record is None:
        raise QueryError("The file store log has a damaged line; restore it from a backup.")
    return record


@dataclass(frozen=True, slots=True)
class Tail:
    """The valid part of a log: its end offset, last key and the time of the last append."""

    end: int
    last: int
    at: str | None


_EMPTY_TAIL = Tail(0, 0, None)


def _is_batch_end(record: dict[str, Any] | None, key: str) -> bool:
    return (
        record is not None and isinstance(record.get(key), int) and record.get("end") == record[key]
    )


def scan_tail(fd: int, size: int, key: str) -> Tail:
    """Find where the valid log ends: after the last line that completes a batch.

    Everything before the last acknowledged write was fsynced, so only the final write can be
    damaged; walking back over it until a batch's last record turns up is enough.
    """
    for start, line in lines_backward(fd, size):
        record = parse(line)
        if _is_batch_end(record, key):
            assert record is not None
            return Tail(start + len(line) + 1, int(record[key]), record.get("at"))
    return _EMPTY_TAIL


def _verify_forward(fd: int, start: Tail, size: int, key: str) -> Tail:
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
        record = parse(line)
        if record is None or record.get(key) != expected:
            break
        end = record.get("end")
        if not isinstance(end, int) or end < expected or batch_end not in (None, end):
            break
        batch_end = end
        if expected == end:
            good = Tail(position, end, record.get("at"))
            batch_end = None
        expected += 1
    return good


def _tail_from_summary(
    fd: int, size: int, summary: tuple[int, int, str] | None, *, writer: bool = False
) -> Tail:
    """The valid end of a messages log of ``size`` bytes, given its summary as read.

    The summary answers when it describes the log's current size. When the log has grown
    past it (a writer died between its fdatasync and the summary update, or is between
    them right now), the records after it are checked one by one. With no usable
    summary, a writer checks the whole log; a reader only looks at its last lines.
    """
    if size == 0:
        return _EMPTY_TAIL
    if summary is not None and summary[1] == size:
        return Tail(size, summary[0], summary[2])
    if summary is not None and summary[1] < size:
        return _verify_forward(fd, Tail(summary[1], summary[0], summary[2]), size, "seq")
    if writer:
        return _verify_forward(fd, _EMPTY_TAIL, size, "seq")
    return scan_tail(fd, size, "seq")


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
        block = BLOCK
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


def read_after(
    fd: int, tail: Tail, prefix: bytes, after: int, limit: int | None
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


def read_last(fd: int, tail: Tail, count: int) -> list[dict[str, Any]]:
    """The last ``count`` records before ``tail.end``, newest first."""
    records: list[dict[str, Any]] = []
    if count <= 0:
        return records
    for _start, line in lines_backward(fd, tail.end):
        records.append(_parse_logged(line))
        if len(records) >= count:
            break
    return records


def summary_bytes(count: int, size: int, at: str) -> bytes:
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


def message_tail(
    tree: FileTree, fd: int, files: SessionFiles, size: int | None = None, *, writer: bool = False
) -> Tail:
    """The messages log's valid end (``size``: the log's, if the caller has it)."""
    if size is None:
        size = os.fstat(fd).st_size
    # An empty log needs no summary.
    summary = _summary(tree.read(files.summary)) if size else None
    return _tail_from_summary(fd, size, summary, writer=writer)


def count_and_time(tree: FileTree, files: SessionFiles) -> tuple[int, str | None]:
    """Message count and last append time, from the summary; the log only if it is stale."""
    try:
        size = tree.stat(files.messages).st_size
    except FileNotFoundError:
        return 0, None
    if size == 0:
        return 0, None
    summary = _summary(tree.read(files.summary))
    if summary is not None and summary[1] == size:
        return summary[0], summary[2]
    # A crash (or a writer right now) between the log append and the summary update.
    try:
        fd = tree.open(files.messages, os.O_RDONLY)
    except FileNotFoundError:
        return 0, None
    try:
        tail = _tail_from_summary(fd, os.fstat(fd).st_size, summary)
    finally:
        os.close(fd)
    return tail.last, tail.at


def write_summary(tree: FileTree, path: Path, count: int, size: int, at: str) -> None:
    # Derived data: not fsynced. A stale or torn summary fails its checks and the count is
    # read from the log's last line instead.
    fd = tree.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.pwrite(fd, summary_bytes(count, size, at), 0)
    finally:
        os.close(fd)
