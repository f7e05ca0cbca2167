"""The store's maintenance calls, shared by every backend through :class:`BaseStore`:
pruning sessions, counting what a store holds, and the facts a health check reads.

Each has a default built on the contract's own calls (what the in-memory and file stores
use); the SQL stores override the private ``_`` methods with one statement each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mofa.persistence._checked import SessionQuery
from mofa.persistence._codec import check_datetime, check_limit, check_optional_id
from mofa.persistence._entities import Session, utc_now
from mofa.persistence._health import HealthFacts, StoreCounts
from mofa.persistence._prune import PruneResult, PruneRule, prune
from mofa.persistence.errors import InvalidInputError

if TYPE_CHECKING:
    from mofa.persistence._entities import Agent, Owner

__all__ = ["Maintenance"]

#: Sessions read per page when the default counts walk a store.
_COUNT_PAGE = 1000
_MICROSECOND = timedelta(microseconds=1)


class Maintenance:
    """Mixed into :class:`BaseStore`, whose methods it builds on."""

    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

        async def _list_agents(self, limit: int | None) -> list[Agent]: ...

        async def _get_session(self, session_id: str, owner: Owner | None) -> Session | None: ...

        async def _delete_session(self, session_id: str, owner: Owner | None) -> bool: ...

        async def _list_sessions(
            self, query: SessionQuery, owner: Owner | None
        ) -> list[Session]: ...

    async def prune_sessions(
        self,
        *,
        older_than: datetime | None = None,
        expired: bool = False,
        keep_last: int | None = None,
        agent_id: str | None = None,
        user_id: str | None = None,
        tenant_id: str | None = None,
        dry_run: bool = False,
        batch_size: int = 200,
        on_batch: Callable[[Sequence[Session], bool], object] | None = None,
    ) -> PruneResult:
        """Delete the sessions that match every condition given (with their messages and
        state), ``batch_size`` per short transaction, so other writers never wait long.

        ``older_than``: last activity (``updated_at``) before this time; ``expired``: past
        their ``expires_at``; ``keep_last``: all but each agent's ``keep_last`` newest.
        ``agent_id``, ``user_id`` and ``tenant_id`` narrow the rule (at least one of the
        three rule conditions is required). ``dry_run`` deletes nothing and counts what
        would go. ``on_batch(sessions, dry_run)`` is called after each batch with the
        sessions it deleted (or would delete). A session whose activity moved past
        ``older_than`` (or whose expiry moved) after the scan is kept.
        """
        self._check_open()
        filters = (
            check_optional_id(agent_id, "agent id"),
            check_optional_id(user_id, "user id"),
            check_optional_id(tenant_id, "tenant id"),
        )
        if not check_limit(batch_size, "batch_size"):
            raise InvalidInputError("batch_size must be a positive integer.")
        rule = PruneRule(
            now=utc_now(),
            older_than=None if older_than is None else check_datetime(older_than, "older_than"),
            expired=bool(expired),
            keep_last=check_limit(keep_last, "keep_last"),
        )
        return await prune(
            self, rule, filters, dry_run=dry_run, batch_size=batch_size, on_batch=on_batch
        )

    async def get_counts(self) -> StoreCounts:
        """How many agents, sessions and messages the store holds (``mofa info``).

        Messages are counted from each session's ``message_count``, kept on write: no
        message is read.
        """
        self._check_open()
        return await self._get_counts()

    async def get_health(self) -> HealthFacts:
        """What the database says about itself, for a health check (``mofa db doctor``):
        indexes present, connection settings, orphaned rows. It reads whole tables on the
        SQL stores: not for a hot path."""
        self._check_open()
        return await self._get_health()

    # ------------------------------------------------------------ defaults

    async def _delete_sessions(self, session_ids: list[str], rule: PruneRule) -> list[str]:
        """Delete those of ``session_ids`` that ``rule`` still selects; return their ids.

        One session at a time here; the SQL stores override it with one statement per batch.
        """
        deleted = []
        for session_id in session_ids:
            found = await self._get_session(session_id, None)
            if (
                found is not None
                and rule.selects(found)
                and await self._delete_session(session_id, None)
            ):
                deleted.append(session_id)
        return deleted

    async def _get_counts(self) -> StoreCounts:
        """Walks the session listing a page at a time; the SQL stores count in one query."""
        agents = len(await self._list_agents(None))
        sessions = messages = 0
        until: datetime | None = None
        while True:
            page = await self._list_sessions(
                SessionQuery(None, None, None, _COUNT_PAGE, 0, until=until), None
            )
            for found in page:
                sessions += 1
                messages += found.message_count
            if len(page) < _COUNT_PAGE:
                return StoreCounts(agents, sessions, messages)
            # Sessions created in the same microsecond as the page's last may straddle it:
            # count them by offset within that instant.
            until = page[-1].created_at
            same = [found for found in page if found.created_at == until]
            tied = await self._list_sessions(
                SessionQuery(None, None, None, None, 0, since=until, until=until + _MICROSECOND),
                None,
            )
            for found in tied[len(same) :]:
                sessions += 1
                messages += found.message_count

    async def _get_health(self) -> HealthFacts:
        """No database to ask: nothing to report (the file store checks itself on open)."""
        return HealthFacts()
