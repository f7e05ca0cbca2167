"""Arguments checked once, then passed to a backend as one value.

:meth:`BaseStore.list_sessions <mofa.persistence.BaseStore.list_sessions>` takes its filters
and paging arguments; every backend's ``_list_sessions`` receives them as one
:class:`SessionQuery`, so adding a filter changes this module and the backends that filter,
not every signature on the way.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from mofa.persistence._codec import (
    check_datetime,
    check_limit,
    check_optional_id,
    check_short_text,
)
from mofa.persistence._entities import Owner, Session

#: The longest stored status (the column's width).
_MAX_STATUS = 50

__all__ = ["SessionQuery", "check_session_query"]


class SessionQuery(NamedTuple):
    """A checked session listing: filters (``None`` matches any value) and one page.

    The id filters choose the index a SQL store reads in order; ``status`` (the stored one)
    and ``since <= created_at < until`` are checked on the rows it reads in that order.
    """

    agent_id: str | None
    user_id: str | None
    tenant_id: str | None
    limit: int | None
    offset: int
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def conditional(self) -> bool:
        """Whether a status or time condition is given (besides the id filters)."""
        return self.status is not None or self.since is not None or self.until is not None

    def matches(self, session: Session) -> bool:
        """Whether ``session`` meets the status and time conditions (the in-memory and
        file stores check each session with it; the SQL stores put them in the statement)."""
        return (
            (self.status is None or session.status == self.status)
            and (self.since is None or session.created_at >= self.since)
            and (self.until is None or session.created_at < self.until)
        )

    def outside(self, owner: Owner) -> bool:
        """Whether a filter names another value than ``owner`` has: then nothing of the
        owner's can match, and no backend needs to be asked."""
        filters = (self.agent_id, self.user_id, self.tenant_id)
        own = (owner.agent_id, owner.user_id, owner.tenant_id)
        return any(
            given is not None and given != mine for given, mine in zip(filters, own, strict=True)
        )


def check_session_query(
    agent_id: object,
    user_id: object,
    tenant_id: object,
    limit: object,
    offset: object,
    status: object = None,
    since: object = None,
    until: object = None,
) -> SessionQuery:
    """The listing's arguments, checked in the order the public method documents them.

    Raises:
        InvalidInputError: an id that is not a usable string, a negative limit or offset,
            an empty or overlong status, a time without a timezone.
    """
    return SessionQuery(
        check_optional_id(agent_id, "agent id"),
        check_optional_id(user_id, "user id"),
        check_optional_id(tenant_id, "tenant id"),
        check_limit(limit),
        check_limit(offset, "offset") or 0,
        None if status is None else check_short_text(status, "session status", _MAX_STATUS),
        None if since is None else check_datetime(since, "since"),
        None if until is None else check_datetime(until, "until"),
    )
