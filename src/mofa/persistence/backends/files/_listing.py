"""The session list (``session-list.jsonl``, format 2): one line per created session, in
creation order, that a listing reads backwards from its end, opening only the headers of the
sessions it returns; lines whose session is gone are skipped, and dropped in the background
once a listing passes many. Stores without a list (format 1, opened read-only) are listed
from every header, which is also how a list is first built."""

from __future__ import annotations

import dataclasses
import fcntl
import itertools
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Any, Final

import orjson

from mofa.persistence._checked import SessionQuery
from mofa.persistence._codec import format_time, parse_time
from mofa.persistence._entities import Owner, Session
from mofa.persistence.backends.files._durable import FILE_MODE, append_durably
from mofa.persistence.backends.files._layout import LISTING_FILE, Layout, agent_dir_name
from mofa.persistence.backends.files._log import BLOCK, lines_backward, parse
from mofa.persistence.backends.files._records import read_record, session_from
from mofa.persistence.backends.files._tree import FileTree
from mofa.persistence.errors import PersistenceError, QueryError


def listing_line(
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
    entry = parse(line)
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


def _by_session_id(entry: dict[str, Any]) -> str:
    return str(entry["session_id"])


def _lines_holding_backward(fd: int, end: int, needle: bytes) -> Iterator[bytes]:
    """The newline-terminated lines before ``end`` that hold ``needle``, last first.

    Like :func:`lines_backward`, but the search runs over whole blocks in C (``rfind``), so
    lines without the needle cost no Python work: a filter that few sessions match is a fast
    scan of the file rather than a parse of each line.
    """
    position = end
    rest = b""  # the start of a line that began before the block just searched
    torn = True  # until the last newline is found: bytes after it are a torn write
    while position > 0:
        size = min(4 * BLOCK, position)
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
        lines = (line for _start, line in lines_backward(fd, size))
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


def _line_at(fd: int, start: int, size: int) -> bytes | None:
    """The line starting at ``start`` (without its newline); None when it has none (a torn
    last write)."""
    parts: list[bytes] = []
    position = start
    while position < size:
        chunk = os.pread(fd, min(BLOCK, size - position), position)
        if not chunk:
            break
        newline = chunk.find(b"\n")
        if newline >= 0:
            parts.append(chunk[:newline])
            return b"".join(parts)
        parts.append(chunk)
        position += len(chunk)
    return None


def _line_start(fd: int, low: int, position: int) -> int:
    """The start of the line holding byte ``position`` (``low`` is a line start at or
    before it)."""
    while position > low:
        size = min(BLOCK, position - low)
        chunk = os.pread(fd, size, position - size)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return position - size + newline + 1
        position -= size
    return low


def _end_before(fd: int, size: int, until: str) -> int:
    """Where the lines created at or after ``until`` (fixed-width UTC text) begin: the list
    is in creation order, so a bisection over its bytes finds it in a few reads, and a
    listing bounded by ``until`` reads backwards from there instead of from the end."""
    low, high = 0, size  # lines starting before low: older; from high on: not older
    while low < high:
        start = _line_start(fd, low, (low + high) // 2)
        line = _line_at(fd, start, size)
        if line is None or _listed(line)["created_at"] >= until:
            high = start
        else:
            low = start + len(line) + 1
    return low


def add_to_listing(fd: int, session: Session) -> Session:
    """Add ``session`` to the session list open on ``fd`` (its lock held) and fdatasync it.

    The list stays in creation-time order: a session created no later than the last one
    listed (a clock stepped back, or a creation that waited for the lock) takes that one's
    time, and the session returned carries the time stored.
    """
    size = os.fstat(fd).st_size
    good_end = 0
    created_at = format_time(session.created_at)
    for start, line in lines_backward(fd, size):
        good_end = start + len(line) + 1
        last = _listed(line)["created_at"]
        if last > created_at:  # fixed-width UTC text: text order is time order
            moment = parse_time(last)
            created_at = format_time(moment)
            session = dataclasses.replace(session, created_at=moment, updated_at=moment)
        break
    append_durably(
        fd,
        listing_line(
            created_at, session.session_id, session.agent_id, session.user_id, session.tenant_id
        ),
        size,
        good_end,
    )
    return session


def place_in_listing(tree: FileTree, layout: Layout, session: Session) -> None:
    """Add a restored session to the session list at its place in creation-time order.

    Unlike a creation's, a restored session keeps its ``created_at``: its line is appended
    when it is the newest (a restore of a whole store, oldest first, only appends), else the
    list is rewritten with it in place (atomically, under the list's lock). A format-1 store
    has no list: nothing to do.
    """
    created_at = format_time(session.created_at)
    line = listing_line(
        created_at, session.session_id, session.agent_id, session.user_id, session.tenant_id
    )
    with tree.flocked(layout.listing_lock):
        try:
            fd = tree.open(layout.listing, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            return
        try:
            size = os.fstat(fd).st_size
            good_end, newest = 0, ""
            for start, last in lines_backward(fd, size):
                good_end, newest = start + len(last) + 1, _listed(last)["created_at"]
                break
            if newest <= created_at:
                if good_end < len(line) or os.pread(fd, len(line), good_end - len(line)) != line:
                    append_durably(fd, line, size, good_end)
                return
            lines = [
                kept + b"\n"
                for kept in os.pread(fd, good_end, 0).split(b"\n")[:-1]
                if kept + b"\n" != line  # the same session restored again: listed once
            ]
        finally:
            os.close(fd)
        place = len(lines)
        while place and _listed(lines[place - 1])["created_at"] > created_at:
            place -= 1
        lines.insert(place, line)
        tree.replace(layout.listing, b"".join(lines))


class SessionList:
    """Lists one store's sessions: from the session list once the store is known to have one
    (:attr:`listed`), else from every header; compacts the list in the background."""

    def __init__(self, tree: FileTree, layout: Layout, executor: Executor) -> None:
        self._tree = tree
        self._layout = layout
        self._executor = executor  # runs a compaction (the store's worker threads)
        # True once the store is known to be in format 2: listings read the session list.
        self.listed = False
        self._compacting = threading.Lock()  # held while a compaction is queued or running

    def list_sessions(self, query: SessionQuery, owner: Owner | None) -> list[Session]:
        agent_id, user_id, tenant_id, limit, offset = query[:5]
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
        if self.listed:
            try:
                fd = self._tree.open(self._layout.listing, os.O_RDONLY)
            except FileNotFoundError:
                pass  # removed by hand: the headers still tell (a writable open rebuilds it)
            else:
                try:
                    return self._list_from_listing(fd, wanted, limit, offset, query)
                finally:
                    os.close(fd)
        found = scan_headers(self._tree, self._layout, wanted)
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        end = None if limit is None else offset + limit
        if query.conditional:
            # Checked on each session, newest first, as the SQL stores check them on rows.
            sessions = (
                session_from(self._tree, header, self._layout.files(header["agent_id"], key))
                for _created, key, header in found
            )
            return list(itertools.islice(filter(query.matches, sessions), offset, end))
        page = found[offset:end]
        # Counts are read for the page only, from each session's summary (a log is read only
        # when its summary is stale after a crash).
        return [
            session_from(self._tree, header, self._layout.files(header["agent_id"], session_id))
            for _created, session_id, header in page
        ]

    def _list_from_listing(
        self,
        fd: int,
        wanted: dict[str, str | None],
        limit: int | None,
        offset: int,
        query: SessionQuery,
    ) -> list[Session]:
        """A page of sessions read from the session list: only the headers and summaries
        of the sessions on the page (and of the ``offset`` ones before it) are opened.

        ``wanted``: the ids a session must have (see :meth:`list_sessions`). A value is
        searched for as bytes (the first) or checked as bytes on the lines holding it; a
        ``None`` one (an owner's "no such id") is checked on the parsed lines only, so it
        adds no read: the listing still reads only the lines it passes.
        """
        needles = [
            _listing_needle(key, value) for key, value in wanted.items() if value is not None
        ]
        checked = query if query.conditional else None
        page: list[Session] = []
        seen: set[str] = set()
        stale = 0
        # Lines are in creation order (fixed-width UTC text, so text order is time order):
        # the time bounds are checked on the line, before its session's files are opened.
        since = None if checked is None or checked.since is None else format_time(checked.since)
        until = None if checked is None or checked.until is None else format_time(checked.until)
        end = os.fstat(fd).st_size
        if until is not None:
            end = _end_before(fd, end, until)
        for entry in _listed_newest_first(fd, end, needles):
            if until is not None and entry["created_at"] >= until:
                continue
            if since is not None and entry["created_at"] < since:
                break
            session_id = entry["session_id"]
            if session_id in seen or any(entry[key] != value for key, value in wanted.items()):
                continue
            files = self._layout.files(entry["agent_id"], session_id)
            header = read_record(self._tree, files.header)
            if header is None or not _header_matches(header, entry):
                # Deleted, still being created, or created again since (perhaps for another
                # user at the same time: a late creation takes the last listed time).
                stale += 1
                continue
            seen.add(session_id)
            found = None
            if checked is not None:
                found = session_from(self._tree, header, files)
                if not checked.matches(found):
                    continue
            if offset:
                offset -= 1
                continue
            page.append(found or session_from(self._tree, header, files))
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
            fd = tree.open(self._layout.listing_lock, os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                data = tree.read(self._layout.listing)
                if data is None:
                    return  # removed meanwhile: the next writable open rebuilds it
                kept: list[bytes] = []
                for line in data.split(b"\n")[:-1]:
                    entry = _listed(line)  # (a torn last write is not a line: dropped)
                    session_id = entry["session_id"]
                    header = read_record(
                        tree, self._layout.files(entry["agent_id"], session_id).header
                    )
                    # Without a header, kept while its index entry exists: the session may be
                    # being created (its header is written after its line, without the lock).
                    if (
                        tree.exists(self._layout.index_path(session_id))
                        if header is None
                        else _header_matches(header, entry)
                    ):
                        kept.append(line + b"\n")
                tree.replace(self._layout.listing, b"".join(kept))
            finally:
                os.close(fd)
        except (OSError, PersistenceError):
            pass  # busy, read-only, or damaged (the listing itself reports damage)
        finally:
            self._compacting.release()


def scan_headers(
    tree: FileTree, layout: Layout, wanted: dict[str, str | None]
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(created_at, session_id, header)`` of every session whose ids equal ``wanted``
    (``None``: the session has no such id), read from every header (format 1's listing,
    and how the session list is first built, with nothing wanted)."""
    if "agent_id" in wanted:
        # One agent's directory (sessions without an agent: the @none one).
        directories = [layout.sessions / agent_dir_name(wanted["agent_id"])]
    else:
        directories = [
            layout.sessions / name
            for name, is_dir in tree.entries(layout.sessions)
            if is_dir and not name.startswith(".")
        ]
    found: list[tuple[str, str, dict[str, Any]]] = []
    for directory in directories:
        try:
            listing = tree.entries(directory)
        except FileNotFoundError:
            continue
        for name, _is_dir in listing:
            # Headers are "<stem>.json"; encoded stems hold no '.', temporary files start
            # with one, and the logs end differently.
            if name.startswith(".") or not name.endswith(".json") or name.count(".") != 1:
                continue
            header = read_record(tree, directory / name)
            if header is None or any(header.get(key) != value for key, value in wanted.items()):
                continue
            found.append((header["created_at"], header["session_id"], header))
    return found
