"""The peer column: the OpenAI Agents SDK's sessions doing each workload's work through their
public API (``add_items``, ``get_items``): ``SQLiteSession`` beside the SQLite store,
``SQLAlchemySession`` (an async engine on asyncpg) beside PostgreSQL. MySQL has none: the
SDK's SQLAlchemy tables declare ``VARCHAR`` without a length, which MySQL refuses.

The SDK is the ``bench`` extra (``pip install -e '.[bench]'``); without it the column stays
empty and the run says why. The SDK keeps one JSON item per message and no per-session
counter or listing, so W4 has no peer value; its SQLite commits are as durable as the
store's (WAL, the default ``synchronous=FULL``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["Peer", "open_peer"]

#: Items go in this many at a time when a workload's data is filled in (not timed).
_FILL_CHUNK = 500


class Peer:
    """One SDK database; a session object per session id, made on first use."""

    def __init__(self, name: str, make: Any, url: str, module: ModuleType, engine: Any) -> None:
        self.name = name
        self._make = make
        self._url = url
        self._module = module
        self._engine = engine
        self._sessions: dict[str, Any] = {}

    def session(self, session_id: str) -> Any:
        found = self._sessions.get(session_id)
        if found is None:
            found = self._sessions[session_id] = self._make(session_id)
        return found

    async def create_session(self, session_id: str, user_id: str, agent_id: str) -> None:
        self.session(session_id)  # the SDK creates its session row with the first items

    async def append_one(self, session_id: str, role: str, content: str) -> None:
        await self.session(session_id).add_items([{"role": role, "content": content}])

    async def append_batch(self, session_id: str, rows: list[tuple[str, str]]) -> None:
        items = [{"role": role, "content": content} for role, content in rows]
        await self.session(session_id).add_items(items)

    async def load_all(self, session_id: str) -> list[Any]:
        items: list[Any] = await self.session(session_id).get_items()
        return items

    async def load_last(self, session_id: str, n: int) -> list[Any]:
        items: list[Any] = await self.session(session_id).get_items(limit=n)
        return items

    async def fill(self, session_id: str, count: int) -> None:
        """``count`` alternating user/assistant items, as the raw modules' bulk_load writes."""
        items = [
            {"role": "user" if seq % 2 else "assistant", "content": f"message {seq} of session 0"}
            for seq in range(1, count + 1)
        ]
        for start in range(0, count, _FILL_CHUNK):
            await self.session(session_id).add_items(items[start : start + _FILL_CHUNK])

    async def close(self) -> None:
        for session in self._sessions.values():
            if hasattr(session, "close"):
                session.close()
        if self._engine is not None:
            await self._engine.dispose()
        await self._module.drop_database(self._url)


def _alchemy_url(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


async def open_peer(name: str, module: ModuleType) -> Peer | None:
    """A fresh SDK database for ``name``'s backend, or None (no SDK, or no peer for it)."""
    try:
        from agents import SQLiteSession
    except ImportError:
        print("no peer column: install the bench extra (openai-agents)", file=sys.stderr)
        return None
    url = await module.create_database()
    if name == "sqlite":
        path = str(Path(url.removeprefix("sqlite://")).with_name("peer.db"))
        return Peer(
            "SQLiteSession", lambda session_id: SQLiteSession(session_id, path), url, module, None
        )
    # SQLAlchemySession's tables declare VARCHAR without a length, which MySQL refuses
    # (CompileError on create_tables), so MySQL/MariaDB has no peer column.
    if name != "postgres":
        await module.drop_database(url)
        return None
    try:
        from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
        from sqlalchemy.ext.asyncio import create_async_engine
    except ImportError:
        await module.drop_database(url)
        print("no SQLAlchemySession column: install openai-agents[sqlalchemy]", file=sys.stderr)
        return None
    engine = create_async_engine(_alchemy_url(url), pool_size=10)

    def make(session_id: str) -> Any:
        return SQLAlchemySession(session_id, engine=engine, create_tables=True)

    return Peer("SQLAlchemySession", make, url, module, engine)
