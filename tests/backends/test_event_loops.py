"""A store used from an event loop other than the one that opened it.

The server stores' pooled connections belong to the loop that opened them; using one from
another loop (a second ``asyncio.run``) must be one clear error, not the driver's
``RuntimeError: Event loop is closed``, and closing must still work. The embedded stores
have no such tie and keep working.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from mofa.persistence import BaseStore, StoreClosedError, open_store
from tests.conftest import _params


def test_a_store_used_from_another_event_loop(backend: str, empty_url: str) -> None:
    async def opened() -> BaseStore:
        store = await open_store(empty_url)
        await store.create_session("s")
        return store

    store = asyncio.run(opened())

    async def read() -> object:
        return await store.get_session("s")

    if backend in ("postgres", "mysql"):
        with pytest.raises(StoreClosedError, match="opened in another event loop"):
            asyncio.run(read())
        asyncio.run(store.close())  # drops the connections; no error
        assert store.closed

        async def reopened() -> object:
            async with await open_store(empty_url) as again:
                return await again.get_session("s")

        assert asyncio.run(reopened()) is not None
    else:
        assert asyncio.run(read()) is not None
        asyncio.run(store.close())


@pytest.mark.parametrize("backend", _params(["postgres", "mysql"]))
def test_close_from_another_loop_closes_on_the_owning_one(backend: str, empty_url: str) -> None:
    owner = asyncio.new_event_loop()
    thread = threading.Thread(target=owner.run_forever, daemon=True)
    thread.start()
    try:
        store = asyncio.run_coroutine_threadsafe(open_store(empty_url), owner).result(30)

        async def elsewhere() -> None:
            with pytest.raises(StoreClosedError, match="opened in another event loop"):
                await store.list_sessions()
            await store.close()  # runs the pool's own close on the loop that owns it

        asyncio.run(elsewhere())
        assert store.closed
        assert store._pool._closed  # type: ignore[attr-defined]  # the pool really closed
    finally:
        owner.call_soon_threadsafe(owner.stop)
        thread.join(10)
        owner.close()
