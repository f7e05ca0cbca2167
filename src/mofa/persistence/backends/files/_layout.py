"""Where the file store keeps what: the file-name form of an id, a session's files, and the
paths of everything under the store's directory (the layout is drawn in the package's
docstring). Paths only: nothing here touches the disk."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: The on-disk format the file store writes; a directory marked with a newer one is refused.
#: 2 added the session list (``session-list.jsonl``); the record files did not change.
FORMAT_VERSION: Final = 2
#: The format named inside headers and agent records (unchanged since format 1).
RECORD_FORMAT: Final = 1
#: The session list, and its lock ('@' is always escaped in names: no session's lock).
LISTING_FILE: Final = "session-list.jsonl"
_LISTING_LOCK: Final = "@session-list.lock"
#: The directory of sessions without an agent: '@' is always escaped, so no id encodes to it.
NO_AGENT_DIR: Final = "@none"

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_MAX_NAME = 100
_DIGEST_CHARS = 40
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{n}" for n in range(10)] + [f"lpt{n}" for n in range(10)]
)


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


def agent_dir_name(agent_id: str | None) -> str:
    return NO_AGENT_DIR if agent_id is None else _stem(agent_id)


@dataclass(frozen=True, slots=True)
class SessionFiles:
    """Where one session's files live."""

    directory: Path
    header: Path
    messages: Path
    states: Path
    summary: Path

    @classmethod
    def at(cls, sessions_root: Path, agent_id: str | None, session_id: str) -> SessionFiles:
        directory = sessions_root / agent_dir_name(agent_id)
        stem = _stem(session_id)
        return cls(
            directory=directory,
            header=directory / f"{stem}.json",
            messages=directory / f"{stem}.messages.jsonl",
            states=directory / f"{stem}.states.jsonl",
            summary=directory / f"{stem}.summary",
        )


@dataclass(frozen=True, slots=True)
class Layout:
    """Where everything lives under one store's directory (``root``, absolute)."""

    root: Path
    sessions: Path
    agents: Path
    index: Path
    locks: Path
    listing: Path
    listing_lock: Path
    #: One marker per restore in progress, naming its hidden logs (see ``_restore``).
    restoring: Path

    @classmethod
    def at(cls, root: Path) -> Layout:
        return cls(
            root=root,
            sessions=root / "sessions",
            agents=root / "agents",
            index=root / "index",
            locks=root / "locks",
            listing=root / LISTING_FILE,
            listing_lock=root / "locks" / _LISTING_LOCK,
            restoring=root / "restoring",
        )

    def lock_path(self, session_id: str) -> Path:
        return self.locks / f"{_stem(session_id)}.lock"

    def index_path(self, session_id: str) -> Path:
        return self.index / f"{_stem(session_id)}.json"

    def files(self, agent_id: str | None, session_id: str) -> SessionFiles:
        return SessionFiles.at(self.sessions, agent_id, session_id)

    def agent_path(self, agent_id: str) -> Path:
        return self.agents / f"{_stem(agent_id)}.json"

    def agent_lock_path(self, agent_id: str) -> Path:
        return self.locks / f"{_stem(agent_id)}.agent.lock"
