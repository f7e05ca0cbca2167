"""Export and import sessions in ``mofa-session/1``: the lossless, versioned file format.

Usage::

    from mofa.persistence import open_store
    from mofa.persistence.transfer import export_sessions, import_sessions

    async with await open_store("sqlite://./mofa.db") as source:
        with open("acme.jsonl", "wb") as out:
            await export_sessions(source, out, tenant_id="acme")        # a tenant backup
    async with await open_store("postgresql://…/mofa") as target:
        with open("acme.jsonl", "rb") as backup:
            results = await import_sessions(target, backup, on_conflict="skip")

An export holds everything the store holds of a session: its fields (times to the
microsecond, status, expiry, metadata, owner ids, message count), its agent's record, every
message with its ``seq``, timestamp and metadata, every agent-state version, and an integrity
line (the message count and a SHA-256 over the messages). Written canonically, equal data
gives equal bytes, so export → import → export reproduces the file byte for byte on every
backend. The format is specified in ``docs/export-format.md``; its JSON Schema ships beside
this module (:data:`SCHEMA_PATH`).

Both directions stream: messages are read and written one at a time (a ``jsonl`` import of
any size runs in flat memory; ``json`` and ``yaml`` files are parsed whole, up to a limit).
Each session is imported atomically through :meth:`Store.restore_session`: a damaged record,
a failed integrity check or a refused value leaves nothing of that session written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Literal

from mofa.persistence._contract import Store
from mofa.persistence._entities import Owner
from mofa.persistence.errors import (
    ConflictError,
    DamagedRecordError,
    InvalidInputError,
    PersistenceError,
    QueryError,
    SessionExistsError,
    SessionNotFoundError,
)
from mofa.persistence.transfer._canonical import FORMAT, MINOR, ExportFormatError
from mofa.persistence.transfer._read import MAX_DOCUMENT, MAX_LINE, MAX_YAML, open_reader
from mofa.persistence.transfer._write import write_session

__all__ = [
    "FORMAT",
    "MAX_DOCUMENT",
    "MAX_LINE",
    "MAX_YAML",
    "MINOR",
    "SCHEMA_PATH",
    "ExportFormatError",
    "ExportTotals",
    "ImportResult",
    "export_session",
    "export_sessions",
    "import_session",
    "import_sessions",
]

#: The JSON Schema of one ``json`` export (and, with ``"type"``, of each ``jsonl`` line).
SCHEMA_PATH: Final = Path(__file__).with_name("mofa-session-1.schema.json")
ExportFormat = Literal["json", "yaml", "jsonl"]
_PAGE: Final = 1000


def _check_format(kind: object, allowed: tuple[str, ...]) -> ExportFormat:
    if kind not in allowed:
        raise InvalidInputError(
            f"The export format must be one of {', '.join(allowed)}, not {kind!r}."
        )
    return kind  # type: ignore[return-value]


async def export_session(
    store: Store,
    session_id: str,
    output: IO[bytes],
    *,
    format: ExportFormat = "json",
    owner: Owner | None = None,
) -> int:
    """Write one session to ``output`` (a binary file); the number of its messages.

    Raises :class:`SessionNotFoundError` when there is no such session (through ``owner``:
    none of the owner's).
    """
    kind = _check_format(format, ("json", "yaml", "jsonl"))
    session = await store.get_session(session_id, owner=owner)
    if session is None:
        raise SessionNotFoundError(session_id)
    return await write_session(store, session, output, kind, owner)


@dataclass(frozen=True, slots=True)
class ExportTotals:
    sessions: int
    messages: int


async def export_sessions(
    store: Store,
    output: IO[bytes],
    *,
    agent_id: str | None = None,
    user_id: str | None = None,
    tenant_id: str | None = None,
    owner: Owner | None = None,
) -> ExportTotals:
    """Write every session matching the filters (all: none given) to ``output`` as one
    ``jsonl`` stream, oldest first (so a restore into an empty store appends in order).

    Each session is exported as it is when its turn comes; sessions created meanwhile may
    be left out, and one deleted meanwhile is.
    """
    session_ids: list[str] = []
    seen: set[str] = set()
    offset = 0
    while True:
        page = await store.list_sessions(
            agent_id=agent_id,
            user_id=user_id,
            tenant_id=tenant_id,
            limit=_PAGE,
            offset=offset,
            owner=owner,
        )
        for found in page:
            if found.session_id not in seen:  # one created meanwhile shifts the pages
                seen.add(found.session_id)
                session_ids.append(found.session_id)
        if len(page) < _PAGE:
            break
        offset += _PAGE
    sessions = messages = 0
    for session_id in reversed(session_ids):
        session = await store.get_session(session_id, owner=owner)
        if session is None:
            continue  # deleted since it was listed
        messages += await write_session(store, session, output, "jsonl", owner)
        sessions += 1
    return ExportTotals(sessions, messages)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What became of one session of a file.

    ``outcome`` is ``imported``, ``replaced``, ``skipped`` (the id was taken and
    ``on_conflict="skip"``) or ``failed`` (then ``error`` says why, and nothing of the
    session was written). ``session_id`` is ``None`` when the header was unreadable.
    """

    source: str
    session_id: str | None
    outcome: Literal["imported", "replaced", "skipped", "failed"]
    messages: int = 0
    error: str | None = None


async def import_sessions(
    store: Store,
    source: IO[bytes],
    *,
    name: str = "<stream>",
    format: ExportFormat | None = None,
    on_conflict: Literal["fail", "skip", "replace"] = "fail",
    session_id: str | None = None,
    owner: Owner | None = None,
) -> list[ImportResult]:
    """Import every session of ``source`` (a binary file), each atomically, on its own.

    ``name`` is how errors name the file; ``format`` is detected when ``None``.
    ``session_id`` imports the file's one session under that id (a second one fails).
    Returns one :class:`ImportResult` per session, in file order; a session that fails
    does not stop the others. Errors of the store itself (it is closed, unreachable)
    are raised.

    Without ``owner`` an import sees and replaces any session (an operator's restore, as
    the CLI runs it). Through ``owner`` (a tenant restoring its own backup) each session
    must be the owner's, and an id another owner holds fails whatever ``on_conflict``
    says: it is never replaced (see :meth:`Store.restore_session`).
    """
    if format is not None:
        _check_format(format, ("json", "yaml", "jsonl"))
    reader = open_reader(source, name, format)
    results: list[ImportResult] = []
    for item in reader.sessions(session_id):
        if isinstance(item, ExportFormatError):
            results.append(ImportResult(name, None, "failed", error=str(item)))
            continue
        session = item.header.session
        if session_id is not None and any(r.session_id == session_id for r in results):
            item.drain()
            results.append(
                ImportResult(
                    name,
                    session.session_id,
                    "failed",
                    error=(
                        f"{item.position}: --session-id names one session, but the file holds more"
                    ),
                )
            )
            continue
        try:
            existed = on_conflict == "replace" and (
                await store.get_session(session.session_id, owner=owner) is not None
            )
            restored = await store.restore_session(
                session,
                item.records(),
                agent=item.header.agent,
                on_conflict=on_conflict,
                owner=owner,
            )
        except ExportFormatError as exc:
            results.append(ImportResult(name, session.session_id, "failed", error=str(exc)))
            continue
        except InvalidInputError as exc:
            error = f"{item.position}: {exc}"
            results.append(ImportResult(name, session.session_id, "failed", error=error))
            continue
        except PersistenceError as exc:
            if not _session_level(exc):
                raise
            error = f"{item.position}: {exc}"
            if isinstance(exc, SessionExistsError):
                hint = (
                    "--on-conflict skip or replace"
                    if on_conflict == "fail"
                    else "another owner's: an import through an owner never replaces it"
                )
                error = error.rstrip(".") + f" ({hint})."
            results.append(ImportResult(name, session.session_id, "failed", error=error))
            continue
        if restored is None:
            results.append(ImportResult(name, session.session_id, "skipped"))
        else:
            outcome: Literal["imported", "replaced"] = "replaced" if existed else "imported"
            results.append(
                ImportResult(name, session.session_id, outcome, messages=session.message_count)
            )
    return results


def _session_level(exc: PersistenceError) -> bool:
    """Whether ``exc`` is about one session (the next may import), not about the store."""
    return isinstance(exc, ConflictError | DamagedRecordError | QueryError)


async def import_session(
    store: Store,
    source: IO[bytes],
    *,
    name: str = "<stream>",
    format: ExportFormat | None = None,
    on_conflict: Literal["fail", "skip", "replace"] = "fail",
    session_id: str | None = None,
    owner: Owner | None = None,
) -> ImportResult:
    """Import a file that holds exactly one session; its :class:`ImportResult`.

    Raises :class:`ExportFormatError` (or the store's error) when it fails.
    """
    results = await import_sessions(
        store,
        source,
        name=name,
        format=format,
        on_conflict=on_conflict,
        session_id=session_id,
        owner=owner,
    )
    if len(results) != 1:
        raise ExportFormatError(f"{name}: holds {len(results)} sessions, not one")
    result = results[0]
    if result.outcome == "failed":
        raise ExportFormatError(result.error or f"{name}: the import failed")
    return result
