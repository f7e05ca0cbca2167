"""``mofa session list --limit 10`` in a database of 100,000 sessions.

::

    .venv/bin/python -m benchmarks.session_list     # files, sqlite, every server that answers
    .venv/bin/python -m benchmarks.session_list --backends sqlite --sessions 20000

For each backend it fills a fresh database with N sessions of M messages each (default 100,000
× 5 = 500,000 messages) through the benchmarks' raw drivers (``raw_<name>.Raw.bulk_load``: the
store's own schema, bulk-inserted with the raw driver — executemany on SQLite, COPY on
PostgreSQL, multi-row INSERT on MariaDB; the file store's files written directly by
``benchmarks/fill_files.py``), then times:

* ``cli``: the installed ``mofa --database-url URL session list --limit 10`` end to end
  (a new process: interpreter start, imports, connect, query, render);
* ``startup``: ``mofa --version`` — the process start and imports alone, for comparison;
* ``list_sessions``: the in-process ``await store.list_sessions(limit=10)`` on an open store,
  and with ``agent_id=`` (the index the ``--agent`` filter uses).

The listing reads no messages (``message_count`` is kept on write), so its time must not grow
with the number of messages: ``--messages 0`` against the default shows it.
Timing is wall clock on a shared machine: the best and the median of the repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks._runner import probe
from mofa.persistence import open_store

MOFA = Path(sys.executable).with_name("mofa")
TARGET_SECONDS = 1.0


def _load(name: str) -> ModuleType:
    # The file store has no driver to compare with: its files are written directly.
    return importlib.import_module(
        "benchmarks.fill_files" if name == "files" else f"benchmarks.raw_{name}"
    )


def _time_process(args: list[str], repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
        timings.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {done.stderr.strip()}")
    return timings


async def _time_calls(url: str, repeat: int) -> dict[str, list[float]]:
    async with await open_store(url) as store:
        await store.list_sessions(limit=10)  # warm: pool, prepared statements
        results: dict[str, list[float]] = {"all": [], "agent": []}
        for _ in range(repeat):
            start = time.perf_counter()
            newest = await store.list_sessions(limit=10)
            results["all"].append(time.perf_counter() - start)
            start = time.perf_counter()
            await store.list_sessions(agent_id="bulk-agent", limit=10)
            results["agent"].append(time.perf_counter() - start)
        assert len(newest) == 10
        return results


def _summary(timings: list[float]) -> dict[str, float]:
    return {"best_ms": min(timings) * 1000, "median_ms": statistics.median(timings) * 1000}


async def run_backend(name: str, sessions: int, messages: int, repeat: int) -> dict[str, Any]:
    module = _load(name)
    fill_start = time.perf_counter()
    raw = await module.Raw.open()  # a fresh database with the store's schema; close() drops it
    try:
        await raw.bulk_load(sessions, messages, max(1, sessions // 100))
        fill_seconds = time.perf_counter() - fill_start
        url: str = raw.url
        cli = _time_process(
            [str(MOFA), "--database-url", url, "session", "list", "--limit", "10"], repeat
        )
        listing = subprocess.run(
            [
                str(MOFA),
                "--database-url",
                url,
                "session",
                "list",
                "--limit",
                "10",
                "--output-format",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        newest = [row["session_id"] for row in json.loads(listing.stdout)]
        expected = [f"bulk-{index:07d}" for index in range(sessions - 1, sessions - 11, -1)]
        if newest != expected:
            raise RuntimeError(f"{name}: the CLI listed {newest[:3]}…, not the newest sessions")
        startup = _time_process([str(MOFA), "--version"], repeat)
        calls = await _time_calls(url, repeat * 10)
    finally:
        await raw.close()
    return {
        "backend": name,
        "sessions": sessions,
        "messages": sessions * messages,
        "fill_s": fill_seconds,
        "cli": _summary(cli),
        "startup": _summary(startup),
        "list_sessions": _summary(calls["all"]),
        "list_sessions_agent": _summary(calls["agent"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.session_list",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--backends",
        default=None,
        help="comma-separated: files,sqlite,postgres,mysql (default: files, sqlite and "
        "every server that answers)",
    )
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=5, help="messages per session")
    parser.add_argument("--repeat", type=int, default=5, help="CLI runs per backend")
    options = parser.parse_args(argv)
    explicit = options.backends is not None
    names = options.backends.split(",") if explicit else ["files", "sqlite", "postgres", "mysql"]

    rows = []
    for name in names:
        if not explicit and name != "files":
            available, reason = asyncio.run(probe(name))
            if available is None:
                print(f"# {name}: skipped ({reason})", file=sys.stderr)
                continue
        result = asyncio.run(run_backend(name, options.sessions, options.messages, options.repeat))
        rows.append(result)
        print(f"# {name}: filled in {result['fill_s']:.1f} s", file=sys.stderr)

    print(
        f"mofa session list --limit 10, {options.sessions:,} sessions "
        f"× {options.messages} messages (target: under {TARGET_SECONDS:.0f} s end to end)\n"
    )
    print(
        "| backend | messages | CLI end to end | `mofa --version` (start-up alone) | "
        "list_sessions(limit=10) | list_sessions(agent_id, limit=10) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:

        def cell(key: str, row: dict[str, Any] = row) -> str:
            return f"{row[key]['median_ms']:.1f} ms (best {row[key]['best_ms']:.1f})"

        print(
            f"| {row['backend']} | {row['messages']:,} | {cell('cli')} | {cell('startup')} | "
            f"{cell('list_sessions')} | {cell('list_sessions_agent')} |"
        )
    slow = [row["backend"] for row in rows if row["cli"]["median_ms"] > TARGET_SECONDS * 1000]
    if slow:
        print(f"\nOver the target: {', '.join(slow)}")
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
