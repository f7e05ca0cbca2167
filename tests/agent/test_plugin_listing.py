"""The plugin lists its own sessions, newest first, at a cost set by ``limit``."""

from __future__ import annotations

from typing import Any

from mofa.persistence import BaseStore, PersistencePlugin, Session


class CountingStore:
    """The store, counting the session rows ``list_sessions`` hands back."""

    def __init__(self, store: BaseStore) -> None:
        self.store = store
        self.rows_read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def list_sessions(self, **filters: Any) -> list[Session]:
        sessions = await self.store.list_sessions(**filters)
        self.rows_read += len(sessions)
        return sessions


async def test_a_plugin_without_tenant_lists_its_newest_sessions_reading_about_limit_rows(
    store: BaseStore,
) -> None:
    # 300 sessions of user u1 without a tenant, newest last, with another tenant's sessions of
    # the same user in between (the store's filters cannot tell those apart).
    ours: list[str] = []
    for n in range(300):
        session = await store.create_session(f"own-{n:03}", agent_id="a", user_id="u1")
        ours.append(session.session_id)
        if n % 3 == 0:
            await store.create_session(
                f"foreign-{n:03}", agent_id="a", user_id="u1", tenant_id="t2"
            )
    counting = CountingStore(store)
    plugin = PersistencePlugin("persistence", counting, "u1", None, "a")

    newest = [session.session_id for session in await plugin.list_sessions(limit=5)]
    assert newest == ours[::-1][:5]
    assert counting.rows_read <= 20  # one page, not the user's 400 sessions

    counting.rows_read = 0
    many = [session.session_id for session in await plugin.list_sessions(limit=150)]
    assert many == ours[::-1][:150]
    assert counting.rows_read < 400

    everything = [session.session_id for session in await plugin.list_sessions()]
    assert everything == ours[::-1]
    assert [s.session_id for s in await plugin.list_sessions(limit=1000)] == ours[::-1]
