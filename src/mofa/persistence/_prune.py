"""Pruning sessions: finding the ones a rule selects, and deleting them in short batches.

:meth:`BaseStore.prune_sessions <mofa.persistence.BaseStore.prune_sessions>` is built here
on two backend calls: the session listing (read newest first, a page at a time, each page
bounded by the oldest creation time of the one before, so a deep page costs what the first
one does) and ``_delete_sessions``, which removes one batch in one short transaction. A
page's selected sessions are deleted before the next page is read: a prune holds a page and
a batch at most, never the whole selection. A batch re-checks the rule in its own
statement, so a session that came back to life between the scan and its batch (a new
message moved its last activity) is kept.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from mofa.persistence._checked import SessionQuery
from mofa.persistence._entities import Session
from mofa.persistence.errors import InvalidInputError

if TYPE_CHECKING:
    from mofa.persistence._maintenance import Maintenance

__all__ = ["PruneResult", "PruneRule", "prune"]

#: Sessions read per page of the scan.
_PAGE = 1000
_MICROSECOND = timedelta(microseconds=1)
#: The longest pause between two batches, in seconds.
_MAX_PAUSE = 0.1


class PruneRule(NamedTuple):
    """Which sessions a prune removes: those that match every condition given.

    ``older_than``: last activity (``updated_at``) before this time. ``expired``: an
    ``expires_at`` at or before ``now``. ``keep_last``: not among its agent's ``keep_last``
    newest sessions (by creation; sessions without an agent count as one agent).
    """

    now: datetime
    older_than: datetime | None = None
    expired: bool = False
    keep_last: int | None = None

    def selects(self, session: Session) -> bool:
        """Whether ``session`` meets the time conditions (``keep_last`` is the scan's)."""
        return (self.older_than is None or session.updated_at < self.older_than) and (
            not self.expired or (session.expires_at is not None and session.expires_at <= self.now)
        )


class PruneResult(NamedTuple):
    """What a prune deleted (or, in a dry run, would delete)."""

    sessions: int
    messages: int


async def _scan(
    store: Maintenance, filters: tuple[str | None, str | None, str | None], rule: PruneRule
) -> AsyncIterator[list[Session]]:
    """The sessions ``rule`` selects among those matching ``filters``, newest first, a page
    at a time: the caller may delete what a page selected before the next is read (each
    page ends where the one before did, so deleting the sessions already read moves
    nothing still to come)."""
    per_agent: Counter[str | None] = Counter()
    until: datetime | None = None
    at_boundary: set[str] = set()  # ids already read whose created_at is ``until``'s
    page_size = _PAGE
    while True:
        # Each page ends at the oldest time of the previous one (inclusive: ties are skipped
        # by id), so no page re-reads what came before it.
        bound = None if until is None else until + _MICROSECOND
        page = await store._list_sessions(SessionQuery(*filters, page_size, 0, until=bound), None)
        fresh = [session for session in page if session.session_id not in at_boundary]
        selected = []
        for session in fresh:
            per_agent[session.agent_id] += 1
            if rule.keep_last is not None and per_agent[session.agent_id] <= rule.keep_last:
                continue
            if rule.selects(session):
                selected.append(session)
        if selected:
            yield selected
        if len(page) < page_size:
            return
        if not fresh:
            page_size *= 2  # a page of one instant, all read: read further past it
            continue
        oldest = page[-1].created_at
        if oldest != until:
            at_boundary = set()
        until = oldest
        at_boundary.update(s.session_id for s in page if s.created_at == oldest)


async def prune(
    store: Maintenance,
    rule: PruneRule,
    filters: tuple[str | None, str | None, str | None],
    *,
    dry_run: bool,
    batch_size: int,
    on_batch: Callable[[Sequence[Session], bool], object] | None,
) -> PruneResult:
    """Delete what ``rule`` selects, ``batch_size`` sessions per transaction."""
    if rule.older_than is None and not rule.expired and rule.keep_last is None:
        raise InvalidInputError(
            "A prune needs a rule: older_than, expired or keep_last (the agent, user and "
            "tenant filters only narrow it); to delete every session of a filter, use "
            "delete_session."
        )
    sessions = messages = 0
    pending: list[Session] = []  # selected, not yet in a batch: less than a page and a batch
    async for selected in _scan(store, filters, rule):
        pending.extend(selected)
        while len(pending) >= batch_size:
            batch, pending = pending[:batch_size], pending[batch_size:]
            counted = await _batch(store, rule, batch, dry_run, on_batch)
            sessions, messages = sessions + counted[0], messages + counted[1]
    if pending:
        counted = await _batch(store, rule, pending, dry_run, on_batch)
        sessions, messages = sessions + counted[0], messages + counted[1]
    return PruneResult(sessions, messages)


async def _batch(
    store: Maintenance,
    rule: PruneRule,
    batch: list[Session],
    dry_run: bool,
    on_batch: Callable[[Sequence[Session], bool], object] | None,
) -> tuple[int, int]:
    """Delete one batch (or, in a dry run, count it); return its sessions and messages."""
    if dry_run:
        gone = batch
    else:
        store._check_open()
        started = time.monotonic()
        deleted = set(await store._delete_sessions([s.session_id for s in batch], rule))
        gone = [session for session in batch if session.session_id in deleted]
        # Other writers get the database between two batches for as long as a batch held
        # it: a writer waiting on SQLite's lock (which retries after sleeps of up to 100 ms)
        # would otherwise find the next batch already holding it.
        await asyncio.sleep(min(time.monotonic() - started, _MAX_PAUSE))
    if on_batch is not None:
        on_batch(gone, dry_run)
    return len(gone), sum(session.message_count for session in gone)
