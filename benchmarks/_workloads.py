"""The workloads W1–W6: each times the store beside the raw comparator, the blocking
reference (SQLite) and the peer, interleaved, one value per side per repetition."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from types import ModuleType
from typing import Any

from benchmarks._measure import (
    Counts,
    Row,
    ScaleRow,
    expect,
    interleave_calls,
    interleave_runs,
    interleave_steps,
    median_ms,
    present,
)
from benchmarks._peer import Peer, open_peer
from mofa.persistence import BaseStore, NewMessage, Owner, open_store

__all__ = ["WORKLOADS", "w6"]

CONTENT = "The quick brown fox jumps over the lazy dog; benchmark message number {n:06d}."

#: The owner of the bulk-loaded sessions (the raw modules' bulk_load writes no tenant).
_BULK_OWNER = Owner(None, "user-0", "bulk-agent")


def content(n: int) -> str:
    return CONTENT.format(n=n)


def _append_target(backend: str) -> float:
    """W1/W5: within 1.3x of the comparator (issue 18)."""
    return 1.3


class Sides:
    """A fresh database for each side of one workload: the store's, the comparator's, the
    blocking reference's (SQLite) and the peer's."""

    def __init__(self, module: ModuleType, name: str, peer: bool = True) -> None:
        self.module = module
        self.name = name
        self.want_peer = peer
        self.url = ""
        self.store: BaseStore | None = None
        self.raw: Any = None
        self.blocking: Any = None
        self.peer: Peer | None = None

    async def __aenter__(self) -> Sides:
        self.url = await self.module.create_database()
        self.store = await open_store(self.url)
        self.raw = await self.module.Raw.open()
        blocking = getattr(self.module, "Blocking", None)
        if blocking is not None:
            self.blocking = await blocking.open()
        if self.want_peer:
            self.peer = await open_peer(self.name, self.module)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.store is not None:
            await self.store.close()
        for side in (self.raw, self.blocking, self.peer):
            if side is not None:
                await side.close()
        await self.module.drop_database(self.url)

    def raw_sides(self) -> dict[str, Any]:
        """The raw-driver sides and the peer (those this backend has), by column name."""
        return present({"raw": self.raw, "blocking": self.blocking, "peer": self.peer})

    async def bulk_load(self, sessions: int, per_session: int, users: int) -> None:
        """The same data in every database (the store's through the raw module)."""
        filler = await self.module.Raw.open(self.url)
        try:
            await filler.bulk_load(sessions, per_session, users)
        finally:
            await filler.close()
        await self.raw.bulk_load(sessions, per_session, users)
        if self.blocking is not None:
            await self.blocking.bulk_load(sessions, per_session, users)

    def row(self, workload: str, what: str, unit: str, target: float | None) -> Row:
        peer = None if self.peer is None else self.peer.name
        return Row(workload, what, self.name, unit, target, peer_name=peer)


async def w1(module: ModuleType, name: str, c: Counts) -> list[Row]:
    rows = await _w1(module, name, c, owner=None)
    # The same appends through an owner scope (a PersistencePlugin's path): the scope is part
    # of the append's one statement, so the row should match the one above.
    return rows + await _w1(module, name, c, owner=Owner(None, "u", "bench"))


async def _w1(module: ModuleType, name: str, c: Counts, owner: Owner | None) -> list[Row]:
    async with Sides(module, name, peer=owner is None) as sides:
        store = sides.store
        assert store is not None
        others = sides.raw_sides()
        # Inputs are built before the clock starts: the rows time the store, not the caller.
        texts = [content(n) for n in range(c.appends)]
        sessions = [f"w1-{run}" for run in range(c.repeat)]

        async def setup(run: int) -> None:
            await store.create_session(sessions[run], user_id="u", agent_id="bench")
            for side in others.values():
                await side.create_session(sessions[run], "u", "bench")

        def raw_step(side: Any) -> Callable[[int, int], Awaitable[None]]:
            async def step(run: int, n: int) -> None:
                await side.append_one(sessions[run], "user", texts[n])

            return step

        async def mofa_step(run: int, n: int) -> None:
            await store.append_message(sessions[run], "user", texts[n], owner=owner)

        what = f"{c.appends} sequential appends" + ("" if owner is None else ", owner-scoped")
        row = sides.row("W1", what, "ops/s", _append_target(name))
        steps = {label: raw_step(side) for label, side in others.items()}
        await interleave_steps(row, c.appends, 1, setup, {**steps, "mofa": mofa_step})
        for run in range(c.repeat):
            expect(await store.count_messages(sessions[run]), c.appends, "W1 mofa count")
            for label, side in others.items():
                expect(len(await side.load_all(sessions[run])), c.appends, f"W1 {label} count")
    return [row]


async def w2(module: ModuleType, name: str, c: Counts) -> list[Row]:
    batches = c.appends // c.batch
    async with Sides(module, name) as sides:
        store = sides.store
        assert store is not None
        others = sides.raw_sides()
        texts = [[content(b * c.batch + i) for i in range(c.batch)] for b in range(batches)]
        mofa_batches = [[NewMessage("user", text) for text in batch] for batch in texts]
        raw_batches = [[("user", text) for text in batch] for batch in texts]
        sessions = [f"w2-{run}" for run in range(c.repeat)]

        async def setup(run: int) -> None:
            await store.create_session(sessions[run], user_id="u", agent_id="bench")
            for side in others.values():
                await side.create_session(sessions[run], "u", "bench")

        def raw_step(side: Any) -> Callable[[int, int], Awaitable[None]]:
            async def step(run: int, b: int) -> None:
                await side.append_batch(sessions[run], raw_batches[b])

            return step

        async def mofa_step(run: int, b: int) -> None:
            await store.append_messages(sessions[run], mofa_batches[b])

        row = sides.row("W2", f"{c.appends} appends in batches of {c.batch}", "ops/s", 1.2)
        steps = {label: raw_step(side) for label, side in others.items()}
        await interleave_steps(row, batches, c.batch, setup, {**steps, "mofa": mofa_step})
        total = batches * c.batch
        for run in range(c.repeat):
            expect(await store.count_messages(sessions[run]), total, "W2 mofa count")
            for label, side in others.items():
                expect(len(await side.load_all(sessions[run])), total, f"W2 {label} count")
    return [row]


Read = Callable[[Any], Callable[[], Awaitable[object]]]


def _loads_all(session: str) -> Read:
    return lambda side: partial(side.load_all, session)


def _loads_last(session: str, n: int) -> Read:
    return lambda side: partial(side.load_last, session, n)


def _loads_last_owned(session: str, n: int) -> Read:
    owner = _BULK_OWNER
    return lambda side: partial(side.load_last_owned, session, n, owner.user_id, owner.agent_id)


def _lists_user(limit: int) -> Read:
    return lambda side: partial(side.list_user_sessions, "user-0", limit)


def _lists_recent(limit: int) -> Read:
    return lambda side: partial(side.list_recent_sessions, limit)


async def w3(module: ModuleType, name: str, c: Counts) -> list[Row]:
    session = "bulk-0000000"
    async with Sides(module, name) as sides:
        store = sides.store
        assert store is not None
        await sides.bulk_load(1, c.history, 1)
        if sides.peer is not None:
            await sides.peer.fill(session, c.history)
        others = sides.raw_sides()
        expect(len(await store.list_messages(session)), c.history, "W3 mofa history")
        expect(len(await store.list_recent_messages(session, limit=c.last)), c.last, "W3 last")
        scoped = await store.list_recent_messages(session, limit=c.last, owner=_BULK_OWNER)
        expect(len(scoped), c.last, "W3 owner-scoped last")
        for label, side in others.items():
            expect(len(await side.load_all(session)), c.history, f"W3 {label} history")
            expect(len(await side.load_last(session, c.last)), c.last, f"W3 {label} last")
            if label != "peer":
                found = await _loads_last_owned(session, c.last)(side)()
                expect(len(found), c.last, f"W3 {label} owner-scoped last")  # type: ignore[arg-type]
        rows = []
        for what, runs, mofa_call, read, scoped_row in (
            (
                f"load all {c.history} messages",
                c.load_all_runs,
                partial(store.list_messages, session),
                _loads_all(session),
                False,
            ),
            (
                f"load last {c.last} of {c.history}",
                c.short_read_runs,
                partial(store.list_recent_messages, session, limit=c.last),
                _loads_last(session, c.last),
                False,
            ),
            (
                f"load last {c.last} of {c.history}, owner-scoped",
                c.short_read_runs,
                partial(store.list_recent_messages, session, limit=c.last, owner=_BULK_OWNER),
                _loads_last_owned(session, c.last),
                True,
            ),
        ):
            row = sides.row("W3", what, "ms", 1.2)
            calls = {
                label: read(side)
                for label, side in others.items()
                if not (scoped_row and label == "peer")  # the SDK has no owner scope
            }
            await interleave_calls(row, runs, {**calls, "mofa": mofa_call})
            rows.append(row)
    return rows


async def w4(module: ModuleType, name: str, c: Counts) -> list[Row]:
    users = c.sessions // c.user_sessions
    # The SDK's sessions have no listing: no peer column here.
    async with Sides(module, name, peer=False) as sides:
        store = sides.store
        assert store is not None
        await sides.bulk_load(c.sessions, 5, users)
        others = sides.raw_sides()
        listed = await store.list_sessions(user_id="user-0", limit=c.user_sessions)
        expect(len(listed), c.user_sessions, "W4 mofa user sessions")
        expect(sum(s.message_count for s in listed), 5 * c.user_sessions, "W4 mofa counts")
        expect(len(await store.list_sessions(limit=c.recent)), c.recent, "W4 mofa recent")
        for label, side in others.items():
            found = await side.list_user_sessions("user-0", c.user_sessions)
            expect(len(found), c.user_sessions, f"W4 {label} user sessions")
            expect(len(await side.list_recent_sessions(c.recent)), c.recent, f"W4 {label}")
        rows = []
        for what, mofa_call, read in (
            (
                f"list a user's {c.user_sessions} sessions with counts",
                partial(store.list_sessions, user_id="user-0", limit=c.user_sessions),
                _lists_user(c.user_sessions),
            ),
            (
                f"{c.recent} most recent of {c.sessions} sessions",
                partial(store.list_sessions, limit=c.recent),
                _lists_recent(c.recent),
            ),
        ):
            row = sides.row("W4", what, "ms", 1.2)
            calls = {label: read(side) for label, side in others.items()}
            await interleave_calls(row, c.short_read_runs, {**calls, "mofa": mofa_call})
            rows.append(row)
    return rows


async def w5(module: ModuleType, name: str, c: Counts) -> list[Row]:
    total = c.tasks * c.per_task
    rows = []
    async with Sides(module, name) as sides:
        store = sides.store
        assert store is not None
        for shared in (False, True):

            def session_of(run: int, task: int, shared: bool = shared) -> str:
                return f"w5-{shared}-{run}" + ("" if shared else f"-{task}")

            def side_run(side: Any, shared: bool = shared) -> Callable[[int], Awaitable[None]]:
                async def run(repetition: int) -> None:
                    sessions = {session_of(repetition, t, shared) for t in range(c.tasks)}
                    for session in sessions:
                        await side.create_session(session, "u", "bench")

                    async def task(t: int) -> None:
                        session = session_of(repetition, t, shared)
                        for n in range(c.per_task):
                            await side.append_one(session, "user", content(n))

                    await asyncio.gather(*(task(t) for t in range(c.tasks)))
                    stored = sum([len(await side.load_all(s)) for s in sessions])
                    expect(stored, total, "W5 raw count")

                return run

            async def mofa_run(repetition: int, shared: bool = shared) -> None:
                sessions = {session_of(repetition, t, shared) for t in range(c.tasks)}
                for session in sessions:
                    await store.create_session(session, user_id="u", agent_id="bench")

                async def task(t: int) -> None:
                    session = session_of(repetition, t, shared)
                    for n in range(c.per_task):
                        await store.append_message(session, "user", content(n))

                await asyncio.gather(*(task(t) for t in range(c.tasks)))
                stored = sum([await store.count_messages(s) for s in sessions])
                expect(stored, total, "W5 mofa count")

            what = f"{c.tasks} tasks x {c.per_task} appends, " + (
                "one shared session" if shared else "own sessions"
            )
            row = sides.row("W5", what, "ops/s", _append_target(name))
            runs = {label: side_run(side) for label, side in sides.raw_sides().items()}
            await interleave_runs(row, total, {**runs, "mofa": mofa_run})
            rows.append(row)
    return rows


WORKLOADS: dict[str, Callable[[ModuleType, str, Counts], Awaitable[list[Row]]]] = {
    "W1": w1,
    "W2": w2,
    "W3": w3,
    "W4": w4,
    "W5": w5,
}


async def w6(module: ModuleType, name: str, quick: bool) -> list[ScaleRow]:
    """List 10 sessions and load the last 20 messages: ~1,000 vs ~1,000,000 messages."""
    sizes = {"small": (50, 20, 5), "large": (10_000, 100, 1_000)}
    if quick:
        sizes["large"] = (1_000, 100, 100)
    urls: dict[str, str] = {}
    stores: dict[str, BaseStore] = {}
    try:
        for label, (sessions, per_session, users) in sizes.items():
            urls[label] = await module.create_database()
            stores[label] = await open_store(urls[label])
            print(f"  W6 {name}: filling {sessions * per_session:,} messages…", file=sys.stderr)
            filler = await module.Raw.open(urls[label])
            try:
                await filler.bulk_load(sessions, per_session, users)
            finally:
                await filler.close()
        calls: dict[str, dict[str, Callable[[], Awaitable[object]]]] = {}
        for label, store in stores.items():
            listed = await store.list_sessions(user_id="user-1", limit=10)
            expect(len(listed), 10, "W6 listing")
            newest = listed[0].session_id
            expect(len(await store.list_recent_messages(newest, limit=20)), 20, "W6 last 20")
            calls[label] = {
                "list a user's 10 sessions": partial(
                    store.list_sessions, user_id="user-1", limit=10
                ),
                "list the 10 most recent sessions": partial(store.list_sessions, limit=10),
                "load the last 20 messages": partial(store.list_recent_messages, newest, limit=20),
            }
        # Alternating rounds (small, large, small, …), best median of each: noise hits both.
        best: dict[tuple[str, str], float] = {}
        for _ in range(3):
            for what in calls["small"]:
                for label in ("small", "large"):
                    timing = await median_ms(200, calls[label][what])
                    best[label, what] = min(best.get((label, what), timing), timing)
    finally:
        for store in stores.values():
            await store.close()
        for url in urls.values():
            await module.drop_database(url)
    small = sizes["small"][0] * sizes["small"][1]
    large = sizes["large"][0] * sizes["large"][1]
    return [
        ScaleRow(what, name, best["small", what], best["large", what], small, large)
        for what in calls["small"]
    ]
