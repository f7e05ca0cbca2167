"""The benchmark runner: workloads W1–W6, mofa store vs raw driver, markdown + JSON out.

See benchmarks/README.md for the workloads and for how to plug in a backend.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from mofa.persistence import BaseStore, NewMessage, Owner, open_store

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CONTENT = "The quick brown fox jumps over the lazy dog; benchmark message number {n:06d}."


@dataclass
class Counts:
    appends: int = 2000
    batch: int = 50
    history: int = 5000
    last: int = 20
    sessions: int = 2000
    user_sessions: int = 100
    recent: int = 10
    tasks: int = 8
    per_task: int = 250
    load_all_runs: int = 30
    short_read_runs: int = 300
    repeat: int = 3

    @classmethod
    def quick(cls) -> Counts:
        return cls(
            appends=200,
            history=500,
            sessions=200,
            user_sessions=20,
            per_task=25,
            load_all_runs=5,
            short_read_runs=30,
            repeat=1,
        )


@dataclass
class Row:
    workload: str
    what: str
    backend: str
    unit: str  # "ops/s" (higher is better) or "ms" (lower is better)
    mofa: float
    raw: float
    target: float | None
    #: Reads only: the raw driver plus turning its rows into usable values (JSON objects
    #: decoded, time text parsed) — what a caller of the raw driver would have to add.
    raw_decoded: float | None = None

    @property
    def ratio(self) -> float:
        """mofa cost / raw cost: 1.0 = as fast as the raw driver."""
        if self.unit == "ms":
            return self.mofa / self.raw
        return self.raw / self.mofa

    @property
    def ratio_decoded(self) -> float | None:
        return None if self.raw_decoded is None else self.mofa / self.raw_decoded

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "ratio_decoded": self.ratio_decoded}


@dataclass
class ScaleRow:
    what: str
    backend: str
    small_ms: float
    large_ms: float
    small_messages: int
    large_messages: int

    @property
    def ratio(self) -> float:
        return self.large_ms / self.small_ms


@dataclass
class Backend:
    name: str
    module: ModuleType


# ------------------------------------------------------------------ helpers


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database (same credentials, host and query)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


class Pair:
    """A fresh mofa database and a fresh raw database for one workload."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.url = ""
        self.store: BaseStore | None = None
        self.raw: Any = None

    async def __aenter__(self) -> Pair:
        self.url = await self.module.create_database()
        self.store = await open_store(self.url)
        self.raw = await self.module.Raw.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.store is not None:
            await self.store.close()
        if self.raw is not None:
            await self.raw.close()
        await self.module.drop_database(self.url)

    async def bulk_load(self, sessions: int, per_session: int, users: int) -> None:
        """The same data in both databases (the mofa one through the raw module)."""
        filler = await self.module.Raw.open(self.url)
        try:
            await filler.bulk_load(sessions, per_session, users)
        finally:
            await filler.close()
        await self.raw.bulk_load(sessions, per_session, users)


def _append_target(backend: str) -> float:
    """W1/W5 targets: 1.5x of raw for SQLite (issue 2), 1.3x for the servers (issue 3)."""
    return 1.5 if backend == "sqlite" else 1.3


def expect(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise SystemExit(f"benchmark check failed: {what}: got {actual}, expected {expected}")


async def best_rate(runs: int, operations: int, work: Callable[[int], Awaitable[None]]) -> float:
    """Best operations/second over ``runs`` runs (``work(run)`` does ``operations``)."""
    best = 0.0
    for run in range(runs):
        started = time.perf_counter()
        await work(run)
        best = max(best, operations / (time.perf_counter() - started))
    return best


async def median_ms(runs: int, work: Callable[[], Awaitable[object]]) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def _decoder(value: object) -> Callable[[Any], Any] | None:
    if isinstance(value, str | bytes) and value[:1] in ("{", b"{"):
        return orjson.loads
    if isinstance(value, str) and len(value) == 26 and value[4] == "-" and value[10] == " ":
        return lambda text: datetime.fromisoformat(text + "+00:00")
    return None


def decode_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Raw rows made usable the way a hand-written caller would: JSON columns decoded, time
    text parsed (columns found once, from the first row). Driver-decoded values pass."""
    if not rows:
        return rows
    decoders = [(i, d) for i, d in enumerate(map(_decoder, rows[0])) if d is not None]
    if not decoders:
        return rows
    decoded = []
    for row in rows:
        values = list(row)
        for index, decode in decoders:
            if values[index] is not None:
                values[index] = decode(values[index])
        decoded.append(tuple(values))
    return decoded


async def compare_reads(
    runs: int,
    mofa_call: Callable[[], Awaitable[object]],
    raw_call: Callable[[], Awaitable[list[tuple[Any, ...]]]],
) -> tuple[float, float, float]:
    """Median ms of mofa, raw, and raw + decoding; two alternating rounds, best of each."""

    async def raw_decoded() -> object:
        return decode_rows(await raw_call())

    best = [float("inf")] * 3
    for _ in range(2):  # alternating rounds, best of each, even out a noisy neighbour
        for position, call in enumerate((raw_call, raw_decoded, mofa_call)):
            best[position] = min(best[position], await median_ms(runs, call))
    raw_ms, decoded_ms, mofa_ms = best
    return mofa_ms, raw_ms, decoded_ms


def content(n: int) -> str:
    return CONTENT.format(n=n)


# ------------------------------------------------------------------ workloads


async def alternate(
    runs: int,
    steps: int,
    per_step: int,
    setup: Callable[[int], Awaitable[None]],
    mofa_step: Callable[[int, int], Awaitable[None]],
    raw_step: Callable[[int, int], Awaitable[None]],
) -> tuple[float, float]:
    """Messages/second of each side, best of ``runs``.

    A run does ``steps`` steps on each side, in ten alternating chunks (raw, mofa, raw, …),
    so a noisy neighbour on a shared machine slows both sides alike.
    """
    chunk = max(1, steps // 10)
    mofa_best = raw_best = 0.0
    for run in range(runs):
        await setup(run)
        mofa_seconds = raw_seconds = 0.0
        for first in range(0, steps, chunk):
            numbers = range(first, min(first + chunk, steps))
            started = time.perf_counter()
            for n in numbers:
                await raw_step(run, n)
            raw_seconds += time.perf_counter() - started
            started = time.perf_counter()
            for n in numbers:
                await mofa_step(run, n)
            mofa_seconds += time.perf_counter() - started
        mofa_best = max(mofa_best, steps * per_step / mofa_seconds)
        raw_best = max(raw_best, steps * per_step / raw_seconds)
    return mofa_best, raw_best


async def w1(module: ModuleType, name: str, c: Counts) -> list[Row]:
    rows = await _w1(module, name, c, owner=None)
    # The same appends through an owner scope (a PersistencePlugin's path): the scope is part
    # of the append's one statement, so the row should match the one above.
    return rows + await _w1(module, name, c, owner=Owner(None, "u", "bench"))


async def _w1(module: ModuleType, name: str, c: Counts, owner: Owner | None) -> list[Row]:
    async with Pair(module) as pair:
        store, raw = pair.store, pair.raw
        assert store is not None

        async def setup(run: int) -> None:
            await store.create_session(f"w1-{run}", user_id="u", agent_id="bench")
            await raw.create_session(f"w1-{run}", "u", "bench")

        # Inputs are built before the clock starts: the rows time the store, not the caller.
        texts = [content(n) for n in range(c.appends)]
        sessions = [f"w1-{run}" for run in range(c.repeat)]

        async def mofa_step(run: int, n: int) -> None:
            await store.append_message(sessions[run], "user", texts[n], owner=owner)

        async def raw_step(run: int, n: int) -> None:
            await raw.append_one(sessions[run], "user", texts[n])

        mofa, raw_rate = await alternate(c.repeat, c.appends, 1, setup, mofa_step, raw_step)
        for run in range(c.repeat):
            expect(await store.count_messages(f"w1-{run}"), c.appends, "W1 mofa count")
            expect(len(await raw.load_all(f"w1-{run}")), c.appends, "W1 raw count")
    return [
        Row(
            "W1",
            f"{c.appends} sequential appends" + ("" if owner is None else ", owner-scoped"),
            name,
            "ops/s",
            mofa,
            raw_rate,
            _append_target(name),
        )
    ]


async def w2(module: ModuleType, name: str, c: Counts) -> list[Row]:
    batches = c.appends // c.batch
    async with Pair(module) as pair:
        store, raw = pair.store, pair.raw
        assert store is not None

        async def setup(run: int) -> None:
            await store.create_session(f"w2-{run}", user_id="u", agent_id="bench")
            await raw.create_session(f"w2-{run}", "u", "bench")

        # Inputs are built before the clock starts: the rows time the store, not the caller.
        texts = [[content(b * c.batch + i) for i in range(c.batch)] for b in range(batches)]
        mofa_batches = [[NewMessage("user", text) for text in batch] for batch in texts]
        raw_batches = [[("user", text) for text in batch] for batch in texts]
        sessions = [f"w2-{run}" for run in range(c.repeat)]

        async def mofa_step(run: int, b: int) -> None:
            await store.append_messages(sessions[run], mofa_batches[b])

        async def raw_step(run: int, b: int) -> None:
            await raw.append_batch(sessions[run], raw_batches[b])

        mofa, raw_rate = await alternate(c.repeat, batches, c.batch, setup, mofa_step, raw_step)
        for run in range(c.repeat):
            expect(await store.count_messages(f"w2-{run}"), batches * c.batch, "W2 mofa count")
            expect(len(await raw.load_all(f"w2-{run}")), batches * c.batch, "W2 raw count")
    what = f"{c.appends} appends in batches of {c.batch}"
    return [Row("W2", what, name, "ops/s", mofa, raw_rate, 1.2)]


#: The owner of the bulk-loaded sessions (the raw modules' bulk_load writes no tenant).
_BULK_OWNER = Owner(None, "user-0", "bulk-agent")


async def w3(module: ModuleType, name: str, c: Counts) -> list[Row]:
    session = "bulk-0000000"
    async with Pair(module) as pair:
        store, raw = pair.store, pair.raw
        assert store is not None
        await pair.bulk_load(1, c.history, 1)
        expect(len(await store.list_messages(session)), c.history, "W3 mofa history")
        expect(len(await raw.load_all(session)), c.history, "W3 raw history")
        expect(len(await store.list_recent_messages(session, limit=c.last)), c.last, "W3 last")
        expect(len(await raw.load_last(session, c.last)), c.last, "W3 raw last")
        scoped = await store.list_recent_messages(session, limit=c.last, owner=_BULK_OWNER)
        expect(len(scoped), c.last, "W3 owner-scoped last")
        rows = []
        for what, runs, mofa_call, raw_call, target in (
            (
                f"load all {c.history} messages",
                c.load_all_runs,
                lambda: store.list_messages(session),
                lambda: raw.load_all(session),
                1.2,
            ),
            (
                f"load last {c.last} of {c.history}",
                c.short_read_runs,
                lambda: store.list_recent_messages(session, limit=c.last),
                lambda: raw.load_last(session, c.last),
                1.2,
            ),
            (
                f"load last {c.last} of {c.history}, owner-scoped",
                c.short_read_runs,
                lambda: store.list_recent_messages(session, limit=c.last, owner=_BULK_OWNER),
                lambda: raw.load_last(session, c.last),
                1.2,
            ),
        ):
            mofa_ms, raw_ms, decoded_ms = await compare_reads(runs, mofa_call, raw_call)
            rows.append(Row("W3", what, name, "ms", mofa_ms, raw_ms, target, decoded_ms))
    return rows


async def w4(module: ModuleType, name: str, c: Counts) -> list[Row]:
    users = c.sessions // c.user_sessions
    async with Pair(module) as pair:
        store, raw = pair.store, pair.raw
        assert store is not None
        await pair.bulk_load(c.sessions, 5, users)
        listed = await store.list_sessions(user_id="user-0", limit=c.user_sessions)
        expect(len(listed), c.user_sessions, "W4 mofa user sessions")
        expect(sum(s.message_count for s in listed), 5 * c.user_sessions, "W4 mofa counts")
        expect(
            len(await raw.list_user_sessions("user-0", c.user_sessions)),
            c.user_sessions,
            "W4 raw user sessions",
        )
        expect(len(await store.list_sessions(limit=c.recent)), c.recent, "W4 mofa recent")
        expect(len(await raw.list_recent_sessions(c.recent)), c.recent, "W4 raw recent")
        rows = []
        for what, mofa_call, raw_call in (
            (
                f"list a user's {c.user_sessions} sessions with counts",
                lambda: store.list_sessions(user_id="user-0", limit=c.user_sessions),
                lambda: raw.list_user_sessions("user-0", c.user_sessions),
            ),
            (
                f"{c.recent} most recent of {c.sessions} sessions",
                lambda: store.list_sessions(limit=c.recent),
                lambda: raw.list_recent_sessions(c.recent),
            ),
        ):
            mofa_ms, raw_ms, decoded_ms = await compare_reads(
                c.short_read_runs, mofa_call, raw_call
            )
            rows.append(Row("W4", what, name, "ms", mofa_ms, raw_ms, 1.2, decoded_ms))
    return rows


async def w5(module: ModuleType, name: str, c: Counts) -> list[Row]:
    total = c.tasks * c.per_task
    rows = []
    async with Pair(module) as pair:
        store, raw = pair.store, pair.raw
        assert store is not None
        for shared in (False, True):

            def session_of(run: int, task: int, shared: bool = shared) -> str:
                return f"w5-{shared}-{run}" + ("" if shared else f"-{task}")

            async def mofa_run(run: int, shared: bool = shared) -> None:
                sessions = {session_of(run, t, shared) for t in range(c.tasks)}
                for session in sessions:
                    await store.create_session(session, user_id="u", agent_id="bench")

                async def task(t: int) -> None:
                    for n in range(c.per_task):
                        await store.append_message(session_of(run, t, shared), "user", content(n))

                await asyncio.gather(*(task(t) for t in range(c.tasks)))
                stored = sum([await store.count_messages(s) for s in sessions])
                expect(stored, total, "W5 mofa count")

            async def raw_run(run: int, shared: bool = shared) -> None:
                sessions = {session_of(run, t, shared) for t in range(c.tasks)}
                for session in sessions:
                    await raw.create_session(session, "u", "bench")

                async def task(t: int) -> None:
                    for n in range(c.per_task):
                        await raw.append_one(session_of(run, t, shared), "user", content(n))

                await asyncio.gather(*(task(t) for t in range(c.tasks)))
                stored = sum([len(await raw.load_all(s)) for s in sessions])
                expect(stored, total, "W5 raw count")

            mofa, raw_rate = await interleave(c.repeat, total, mofa_run, raw_run)
            what = f"{c.tasks} tasks x {c.per_task} appends, " + (
                "one shared session" if shared else "own sessions"
            )
            rows.append(Row("W5", what, name, "ops/s", mofa, raw_rate, _append_target(name)))
    return rows


def _as_run(work: Callable[[int], Awaitable[None]], run: int) -> Callable[[int], Awaitable[None]]:
    """``work(run)``, whatever run number ``best_rate`` passes."""
    return lambda _: work(run)


async def interleave(
    runs: int,
    operations: int,
    mofa_run: Callable[[int], Awaitable[None]],
    raw_run: Callable[[int], Awaitable[None]],
) -> tuple[float, float]:
    """Alternate whole raw and mofa runs (concurrent workloads), best rate of each."""
    mofa_best = raw_best = 0.0
    for run in range(runs):
        raw_best = max(raw_best, await best_rate(1, operations, _as_run(raw_run, run)))
        mofa_best = max(mofa_best, await best_rate(1, operations, _as_run(mofa_run, run)))
    return mofa_best, raw_best


WORKLOADS: dict[str, Callable[[ModuleType, str, Counts], Awaitable[list[Row]]]] = {
    "W1": w1,
    "W2": w2,
    "W3": w3,
    "W4": w4,
    "W5": w5,
}
ALL_WORKLOADS = tuple(WORKLOADS)


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


# ------------------------------------------------------------------ discovery and output


def discover() -> list[str]:
    return sorted(path.stem.removeprefix("raw_") for path in HERE.glob("raw_*.py"))


async def probe(name: str) -> tuple[ModuleType | None, str]:
    """Import ``raw_<name>`` and check that it can create (and drop) a database."""
    try:
        module = importlib.import_module(f"benchmarks.raw_{name}")
        url = await asyncio.wait_for(module.create_database(), timeout=10)
        await module.drop_database(url)
    except Exception as exc:  # any reason at all means "not available here"
        return None, f"{type(exc).__name__}: {exc}"
    return module, ""


def fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.3f} ms"
    return f"{value:,.0f}/s"


def markdown(rows: Sequence[Row], scale: Sequence[ScaleRow]) -> str:
    lines = (
        [
            "| workload | backend | mofa | raw | ratio | target | raw + decode | ratio to it |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        if rows
        else []
    )
    for row in rows:
        target = f"≤ {row.target:.1f}x" if row.target else ""
        mark = " ✗" if row.target and row.ratio > row.target else ""
        decoded = "" if row.raw_decoded is None else fmt(row.raw_decoded, row.unit)
        decoded_ratio = "" if row.ratio_decoded is None else f"{row.ratio_decoded:.2f}x"
        lines.append(
            f"| {row.workload} {row.what} | {row.backend} | {fmt(row.mofa, row.unit)} | "
            f"{fmt(row.raw, row.unit)} | {row.ratio:.2f}x{mark} | {target} | {decoded} | "
            f"{decoded_ratio} |"
        )
    if scale:
        lines += [
            "",
            "| W6 scale (mofa store) | backend | ~1k messages | ~1M messages | large / small |",
            "|---|---|---:|---:|---:|",
        ]
        for s in scale:
            lines.append(
                f"| {s.what} | {s.backend} | {s.small_ms:.3f} ms | {s.large_ms:.3f} ms "
                f"({s.large_messages:,} messages) | {s.ratio:.2f}x |"
            )
    lines += [
        "",
        "ops/s: appends per second (best run), higher is better; ms: median time per call,",
        "lower is better. ratio = mofa cost / raw cost (1.00x = as fast as the raw driver).",
        "raw + decode: the raw rows turned into usable values (JSON decoded, times parsed).",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="mofa store vs the raw driver doing the same durable work.",
    )
    parser.add_argument(
        "--backends",
        help="comma-separated, e.g. sqlite,postgres,mysql "
        "(default: sqlite plus every server that answers)",
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--scale", action="store_true", help="also run W6 (~1M messages)")
    parser.add_argument("--repeat", type=int, help="runs per write timing (best is kept)")
    parser.add_argument("--workloads", help=f"comma-separated subset of {','.join(ALL_WORKLOADS)}")
    return parser.parse_args(argv)


async def run(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    counts = Counts.quick() if args.quick else Counts()
    if args.repeat:
        counts.repeat = args.repeat
    available = discover()
    explicit = args.backends is not None
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()] if explicit else available
    unknown = [b for b in wanted if b not in available]
    if unknown:
        print(
            f"Unknown backend(s): {', '.join(unknown)}; available: {', '.join(available)}.",
            file=sys.stderr,
        )
        return 2
    workloads = (
        [w.strip().upper() for w in args.workloads.split(",")]
        if args.workloads
        else list(ALL_WORKLOADS)
    )
    bad = [w for w in workloads if w not in WORKLOADS and w != "W6"]
    if bad:
        print(
            f"Unknown workload(s): {', '.join(bad)}; use {', '.join(ALL_WORKLOADS)}, W6.",
            file=sys.stderr,
        )
        return 2
    if "W6" in workloads:
        args.scale = True

    backends: list[Backend] = []
    skipped: dict[str, str] = {}
    for name in wanted:
        module, reason = await probe(name)
        if module is None:
            if explicit:
                print(f"Backend {name} is not available: {reason}", file=sys.stderr)
                return 1
            skipped[name] = reason
            print(f"skipping {name}: {reason}", file=sys.stderr)
            continue
        backends.append(Backend(name, module))

    rows: list[Row] = []
    scale: list[ScaleRow] = []
    for backend in backends:
        for workload in workloads:
            if workload == "W6":
                continue
            print(f"{workload} on {backend.name}…", file=sys.stderr)
            rows.extend(await WORKLOADS[workload](backend.module, backend.name, counts))
        if args.scale:
            scale.extend(await w6(backend.module, backend.name, args.quick))

    table = markdown(rows, scale)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = RESULTS / f"{stamp}.json"
    output.write_text(
        json.dumps(
            {
                "finished_at": datetime.now(UTC).isoformat(),
                "options": {
                    "quick": args.quick,
                    "scale": args.scale,
                    "repeat": counts.repeat,
                    "workloads": workloads,
                },
                "counts": asdict(counts),
                "machine": {
                    "platform": platform.platform(),
                    "python": sys.version.split()[0],
                    "cpus": os.cpu_count(),
                    "sqlite": sqlite3.sqlite_version,
                },
                "skipped": skipped,
                "rows": [row.as_dict() for row in rows],
                "scale": [{**asdict(s), "ratio": s.ratio} for s in scale],
                "markdown": table,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nresults written to {output.relative_to(HERE.parent)}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    raise SystemExit(asyncio.run(run(argv)))
