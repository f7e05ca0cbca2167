"""The owner scope costs no round trip: an agent's calls to the database are counted.

Each SQL backend has one place every call to the database goes through, and each call
there is one round trip (PostgreSQL: one statement; MySQL: one statement or one
multi-statement transaction; SQLite: one hop to the worker thread). The counts below are
the ones the agent made before calls carried an owner scope; the scope is inside the
statements, so they must not grow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mofa.agent import LLMAgentBuilder, OfflineProvider
from mofa.persistence import BaseStore, PersistencePlugin
from tests.conftest import _params

#: Where each backend's calls to the database go through, as (attribute path, method names).
_CHOKE_POINTS = {
    "postgres": ("", ("_fetch",)),
    "mysql": ("", ("_fetch", "_write")),
    "sqlite": ("_worker", ("_submit",)),
}


def _count_calls(store: BaseStore, backend: str) -> list[int]:
    """Wrap the backend's choke points; the returned one-item list counts the calls."""
    path, names = _CHOKE_POINTS[backend]
    target: Any = getattr(store, path) if path else store
    counter = [0]
    for name in names:
        original = getattr(target, name)

        def counted(*args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            counter[0] += 1
            return _original(*args, **kwargs)

        setattr(target, name, counted)
    return counter


@pytest.mark.parametrize("backend", _params(list(_CHOKE_POINTS)))
async def test_an_agent_turn_makes_as_many_round_trips_as_before(
    store: BaseStore, backend: str
) -> None:
    calls = _count_calls(store, backend)
    plugin = PersistencePlugin("persistence", store, "user-1", "tenant-1", "agent-1")
    before = calls[0]
    agent = await (
        LLMAgentBuilder()
        .with_provider(OfflineProvider())
        .with_persistence_plugin(plugin)
        .with_session_id("resumed")
        .build_async()
    )
    # Register the agent, read the session, create it, read its history and state.
    assert calls[0] - before == 5
    await agent.chat("warm up")
    before = calls[0]
    await agent.chat("hello")
    # Store the question, read the history up to it, store the reply.
    assert calls[0] - before == 3
    before = calls[0]
    await agent.close()
    assert calls[0] - before == 1  # the agent's record says it stopped
    assert await store.count_messages("resumed") == 4
