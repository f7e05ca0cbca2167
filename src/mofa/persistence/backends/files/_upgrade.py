"""Opening a store's directory: creating it (format 2 from the start), checking its marker,
and upgrading a format 1 store in place (building its session list from the headers).

A store opened read-only is only read: a format 1 one is then listed from every header.
"""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path

from mofa.persistence.backends.files._durable import DIR_MODE
from mofa.persistence.backends.files._layout import FORMAT_VERSION, Layout
from mofa.persistence.backends.files._listing import listing_line, scan_headers
from mofa.persistence.backends.files._log import parse
from mofa.persistence.backends.files._records import read_record
from mofa.persistence.backends.files._tree import FileTree
from mofa.persistence.errors import SchemaError, StoreConnectionError
from mofa.persistence.locations import STORE_MARKER


def prepare(tree: FileTree, layout: Layout, create: bool = True) -> tuple[tuple[int, ...], bool]:
    """Create the directory tree, or check and upgrade the store in it; the formats this
    call applied (``(1, 2)`` for a new store, ``(2,)`` for an upgrade), and whether the store
    has its session list (False: list it from every header). With ``create`` False, a
    directory without the store's marker is refused and nothing is made."""
    root = layout.root
    marker = root / STORE_MARKER
    try:
        tree.open_root()
    except FileNotFoundError:
        if not create:
            raise SchemaError(
                f"There is no mofa file store in {root} (it has no {STORE_MARKER}); check the path."
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
    version = format_of(tree, marker) if marked else 0
    if not create and not marked:
        raise SchemaError(
            f"There is no mofa file store in {root} (it has no {STORE_MARKER}); check the path."
        )
    for directory in (layout.sessions, layout.agents, layout.index, layout.locks):
        tree.make_dir(directory)
    if not marked:
        # The list before the marker: a store that has a marker has its list. (No
        # O_TRUNC: another process may be creating the same store and already using it.)
        tree.touch(layout.listing, truncate=False)
        tree.sync_dir(root)
        if tree.create_exclusively(marker, b'{"format":%d}\n' % FORMAT_VERSION):
            return tuple(range(1, FORMAT_VERSION + 1)), True
        version = format_of(tree, marker)  # another process created the store meanwhile
    # An existing store is only read here (unless it needs an upgrade), so a read-only one
    # can still be opened.
    if version >= 2 and tree.exists(layout.listing):
        return (), True
    if not create:
        return (), False  # listed by reading every header, as format 1 was
    try:
        upgraded = _build_listing(tree, layout, marker)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        return (), False  # a store this process may only read: listed as format 1 was
    return ((FORMAT_VERSION,) if upgraded else ()), True


def format_of(tree: FileTree, marker: Path) -> int:
    record = read_record(tree, marker)
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


def _build_listing(tree: FileTree, layout: Layout, marker: Path) -> bool:
    """Write the session list from the headers and mark the store format 2; False when
    another process did it first. Lines already in a list (left by an upgrade cut short,
    or added since by writers) are kept: a line whose session is gone is skipped anyway."""
    with tree.flocked(layout.listing_lock):
        if format_of(tree, marker) >= 2 and tree.exists(layout.listing):
            return False
        lines: dict[tuple[str, str], bytes] = {}
        for line in (tree.read(layout.listing) or b"").split(b"\n")[:-1]:
            entry = parse(line)
            if entry is not None and all(
                isinstance(entry.get(key), str) for key in ("created_at", "session_id")
            ):
                lines[(entry["created_at"], entry["session_id"])] = line + b"\n"
        # While a store has no list, this module writes a session's header under the
        # list's lock (see _sessions.create_session): none is half made while they are read.
        for created_at, session_id, header in scan_headers(tree, layout, {}):
            # A live session's line comes from its header (the header wins over a stale
            # line of the same time and id).
            lines[(created_at, session_id)] = listing_line(
                created_at,
                session_id,
                header["agent_id"],
                header["user_id"],
                header["tenant_id"],
            )
        tree.replace(layout.listing, b"".join(lines[key] for key in sorted(lines)))
        tree.replace(marker, b'{"format":%d}\n' % FORMAT_VERSION)
    return True
