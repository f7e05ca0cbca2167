"""Arguments checked once, then passed to a backend as one value.

:meth:`BaseStore.list_sessions <mofa.persistence.BaseStore.list_sessions>` takes five filters
and paging arguments; every backend's ``_list_sessions`` receives them as one
:class:`SessionQuery`, so adding a filter changes this module and the backends that filter,
not every signature on the way.
"""

from __future__ import annotations

from typing import NamedTuple

from mofa.persistence._codec import check_limit, check_optional_id
from mofa.persistence._entities import Owner

__all__ = ["SessionQuery", "check_session_query"]


class SessionQuery(NamedTuple):
    """A checked session listing: filters (``None`` matches any value) and one page."""

    agent_id: str | None
    user_id: str | None
    tenant_id: str | None
    limit: int | None
    offset: int

    def outside(self, owner: Owner) -> bool:
        """Whether a filter names another value than ``owner`` has: then nothing of the
        owner's can match, and no backend needs to be asked."""
        filters = (self.agent_id, self.user_id, self.tenant_id)
        own = (owner.agent_id, owner.user_id, owner.tenant_id)
        return any(
            given is not None and given != mine for given, mine in zip(filters, own, strict=True)
        )


def check_session_query(
    agent_id: object, user_id: object, tenant_id: object, limit: object, offset: object
) -> SessionQuery:
    """The listing's arguments, checked in the order the public method documents them.

    Raises:
        InvalidInputError: an id that is not a usable string, a negative limit or offset.
    """
    return SessionQuery(
        check_optional_id(agent_id, "agent id"),
        check_optional_id(user_id, "user id"),
        check_optional_id(tenant_id, "tenant id"),
        check_limit(limit),
        check_limit(offset, "offset") or 0,
    )
