"""What the backends share besides the contract: pool bookkeeping, retries, option checks.

Only modules under ``persistence/backends/`` use these; nothing above the registry does.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping, Sequence
from typing import Final

from mofa.persistence._entities import Agent, Session
from mofa.persistence.errors import InvalidInputError

__all__ = [
    "RETRY_SECONDS",
    "InFlight",
    "backoff",
    "check_flag",
    "check_option",
    "placeholder_agent",
    "reject_unknown_options",
]


class InFlight:
    """Counts a pooled store's calls under way, so ``close()`` can let them finish first
    (as the embedded stores do, whose worker drains its queue) instead of pulling the pool
    out from under them: ``with self._in_flight: …`` around each call."""

    __slots__ = ("_count", "_idle")

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __enter__(self) -> None:
        self._count += 1
        self._idle.clear()

    def __exit__(self, *exc_info: object) -> None:
        self._count -= 1
        if not self._count:
            self._idle.set()

    async def drained(self, seconds: float) -> None:
        """Wait until no call is under way, or ``seconds`` at most."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), seconds)


#: How long a pooled store's call keeps retrying a conflict (a deadlock, a lock-wait timeout,
#: two saves that picked the same state version): every retry means another call got
#: through, so this bounds a pathological pile-up, not ordinary contention.
RETRY_SECONDS: Final = 30.0


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, …) of a conflicting write:
    doubling from 2 ms up to 50 ms, jittered so that contenders do not retry in step."""
    return min(0.001 * (1 << min(attempt, 6)), 0.05) * random.uniform(0.5, 1.5)


def reject_unknown_options(
    owner: str, options: Mapping[str, object], accepted: Sequence[str] = ()
) -> None:
    """Refuse a connect option ``owner`` (a store class) does not know, naming those it does."""
    unknown = sorted(set(options) - set(accepted))
    if not unknown:
        return
    if not accepted:
        use = "it takes none"
    elif len(accepted) == 1:
        use = f"use {accepted[0]}"
    else:
        use = f"use {', '.join(accepted[:-1])} or {accepted[-1]}"
    raise InvalidInputError(f"Unknown {owner} option {unknown[0]!r}; {use}.")


def check_flag(name: str, value: object) -> None:
    """A connect option that must be True or False."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be True or False, not {value!r}.")


def check_option(name: str, value: object, *, integer: bool = False, minimum: float = 0) -> None:
    """A connect option that must be a number (``integer``: a whole one) of at least ``minimum``.

    Checked before any driver sees it, so a wrong type is one sentence naming the option,
    not the driver's arithmetic error.
    """
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        what = "an integer" if integer else "a number"
        unit = "" if integer else " (seconds)"
        raise InvalidInputError(f"{name} must be {what} >= {minimum:g}{unit}, not {value!r}.")


def placeholder_agent(session: Session) -> Agent:
    """The agent record a store creates when a session names an agent nobody registered
    (the foreign key needs one), belonging to the session's tenant; the SQL backends'
    ``INSERT … agents`` writes the same."""
    agent_id, at = session.agent_id or "", session.created_at
    return Agent(
        id=agent_id,
        name=agent_id,
        state="unknown",
        started_at=at,
        created_at=at,
        updated_at=at,
        tenant_id=session.tenant_id,
    )
