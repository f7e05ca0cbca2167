"""How long a prune of 100,000 sessions makes another writer wait.

::

    .venv/bin/python -m benchmarks.prune_stall         # sqlite and every server that answers
    .venv/bin/python -m benchmarks.prune_stall --backends sqlite --sessions 20000

For each backend: a fresh database is filled with N old sessions of one message each (the
benchmarks' raw bulk load), then ``store.prune_sessions(older_than=…)`` deletes them all
while a second store — another writer, as a second process would be — appends to an
unrelated session in a loop. Reported: the prune's time and rate, and the append latency
during the prune (median, 99th percentile, the longest wait) beside the same loop with no
prune running. The prune deletes in batches of ``--batch-size`` sessions (the library's
default, 200), each its own short transaction, so the longest wait is about one batch.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks._runner import probe
from mofa.persistence import BaseStore, open_store


async def _append_loop(store: BaseStore, stop: asyncio.Event, pause: float) -> list[float]:
    waits = []
    while not stop.is_set():
        start = time.perf_counter()
        await store.append_message("live", "user", "still here")
        waits.append(time.perf_counter() - start)
        await asyncio.sleep(pause)
    return waits


def _latencies(waits: list[float]) -> dict[str, float]:
    ordered = sorted(waits)
    return {
        "count": len(ordered),
        "median_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000 if ordered else 0.0,
        "max_ms": ordered[-1] * 1000 if ordered else 0.0,
    }


async def run_backend(name: str, sessions: int, batch_size: int) -> dict[str, Any]:
    module, reason = await probe(name)
    if module is None:
        raise RuntimeError(f"{name}: {reason}")
    raw = await module.Raw.open()
    try:
        fill_start = time.perf_counter()
        await raw.bulk_load(sessions, 1, max(1, sessions // 100))
        fill_seconds = time.perf_counter() - fill_start
        async with await open_store(raw.url) as pruner, await open_store(raw.url) as writer:
            await writer.create_session("live", agent_id="live-agent")
            # The same loop with nothing else running: the floor to compare with.
            stop = asyncio.Event()
            quiet = asyncio.create_task(_append_loop(writer, stop, 0.002))
            await asyncio.sleep(2.0)
            stop.set()
            idle = await quiet

            stop = asyncio.Event()
            busy = asyncio.create_task(_append_loop(writer, stop, 0.002))
            start = time.perf_counter()
            result = await pruner.prune_sessions(
                older_than=datetime.now(UTC) - timedelta(hours=1), batch_size=batch_size
            )
            prune_seconds = time.perf_counter() - start
            stop.set()
            during = await busy
            left = await pruner.get_counts()
    finally:
        await raw.close()
    if result.sessions != sessions or left.sessions != 1:
        raise RuntimeError(f"{name}: pruned {result.sessions} of {sessions}, {left} left")
    return {
        "backend": name,
        "sessions": sessions,
        "fill_s": fill_seconds,
        "prune_s": prune_seconds,
        "idle": _latencies(idle),
        "during": _latencies(during),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.prune_stall", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--backends", default=None, help="comma-separated (default: all)")
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=200)
    options = parser.parse_args(argv)
    names = options.backends.split(",") if options.backends else ["sqlite", "postgres", "mysql"]
    rows = []
    for name in names:
        if options.backends is None and name != "sqlite":
            available, reason = asyncio.run(probe(name))
            if available is None:
                print(f"# {name}: skipped ({reason})", file=sys.stderr)
                continue
        rows.append(asyncio.run(run_backend(name, options.sessions, options.batch_size)))
        print(f"# {name}: filled in {rows[-1]['fill_s']:.1f} s", file=sys.stderr)
    print(
        f"prune_sessions of {options.sessions:,} sessions (batches of {options.batch_size}) "
        "while another store appends to an unrelated session\n"
    )
    print(
        "| backend | prune | sessions/s | appends during it | append median / p99 / longest "
        "wait | same loop, no prune: median / p99 / longest |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        during, idle = row["during"], row["idle"]
        print(
            f"| {row['backend']} | {row['prune_s']:.1f} s | {row['sessions'] / row['prune_s']:,.0f}"
            f" | {during['count']:,} | {during['median_ms']:.1f} / {during['p99_ms']:.1f} / "
            f"{during['max_ms']:.1f} ms | {idle['median_ms']:.1f} / {idle['p99_ms']:.1f} / "
            f"{idle['max_ms']:.1f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
