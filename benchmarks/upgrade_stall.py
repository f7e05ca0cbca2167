"""How long a writer stalls while a 1,000,000-message PostgreSQL database is upgraded.

    .venv/bin/python -m benchmarks.upgrade_stall                 # 10,000 sessions x 100 messages
    .venv/bin/python -m benchmarks.upgrade_stall --sessions 1000 # a quick run (100,000 messages)

One database at schema version 3, filled (COPY, not timed). Throughout each scenario a writer
appends to one session — one committed transaction per message, the store's append statement
(``raw_postgres``) — and the longest gap between two of its appends from the start of the
upgrade to one second after its end is the stall. Scenarios, in this order, on the same data:

* ``index, in the upgrade transaction``: ``CREATE INDEX`` on messages inside the upgrade's
  transaction, as every migration ran before the online runner (version 2's indexes did);
* ``index, online``: the same index as an online step, ``CREATE INDEX CONCURRENTLY`` through
  the runner;
* ``key change, in the upgrade transaction``: messages' primary key to (session_id, seq)
  written the usual way, ``ALTER TABLE … ADD PRIMARY KEY``, inside the transaction: the key's
  index is built while the table is locked;
* ``key change, online (version 4)``: opening a store, whose runner applies migration 4.

Between scenarios the database is put back at version 3 (not timed). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from tests.servers import statements_through

from benchmarks import raw_postgres
from mofa.persistence import open_store, schema
from mofa.persistence.backends._sql._online import run_steps
from mofa.persistence.backends.postgres._schema import _SCHEMA_LOCK_KEY, _Session
from mofa.persistence.schema import Step

_INDEX = "CREATE INDEX {concurrently}idx_bench_time ON messages (timestamp, session_id)"
_RECORD_4 = schema.record_statement("postgres", schema.migrations("postgres")[3])


class Writer:
    """Appends to one session until stopped; keeps the time each append returned."""

    def __init__(self, raw: raw_postgres.Raw, session_id: str) -> None:
        self.raw = raw
        self.session_id = session_id
        self.done: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.raw.append_one(self.session_id, "user", "during the upgrade")
            self.done.append(time.monotonic())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    def longest_gap(self, start: float, end: float) -> float:
        """Longest wait between appends in [start, end] (counting from ``start``)."""
        times = [start, *(t for t in self.done if start < t <= end)]
        return max(b - a for a, b in itertools.pairwise(times)) if len(times) > 1 else end - start

    def typical_gap(self, before: float) -> float:
        times = [t for t in self.done if t < before][-200:]
        return statistics.median(b - a for a, b in itertools.pairwise(times))


async def _measure(
    raw: raw_postgres.Raw, label: str, upgrade: Callable[[], Awaitable[None]]
) -> dict[str, Any]:
    writer = Writer(raw, "bulk-0000000")
    writer.start()
    await asyncio.sleep(1.0)
    started = time.monotonic()
    await upgrade()
    finished = time.monotonic()
    await asyncio.sleep(1.0)
    await writer.stop()
    row = {
        "scenario": label,
        "upgrade_s": finished - started,
        "stall_ms": writer.longest_gap(started, finished + 1.0) * 1000,
        "typical_ms": writer.typical_gap(started) * 1000,
    }
    print(f"  {label}: {row}", file=sys.stderr)
    return row


async def _in_transaction(url: str, statements: list[str]) -> None:
    """As the runner before #17 ran every migration: one transaction, xact advisory lock."""
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK_KEY)
            for statement in statements:
                await connection.execute(statement)
    finally:
        await connection.close()


async def _online(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await run_steps(_Session(connection, "benchmark"), [Step(True, (statement,))])
    finally:
        await connection.close()


async def _admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def _open_store(url: str) -> None:
    async with await open_store(url) as store:
        assert store.applied_migrations == (4,), store.applied_migrations


async def run(sessions: int, per_session: int) -> list[dict[str, Any]]:
    url = await raw_postgres.create_database()
    try:
        await _admin(url, *statements_through("postgres", 3))
        raw = await raw_postgres.Raw.open(url)
        print(f"filling {sessions * per_session:,} messages…", file=sys.stderr)
        await raw.bulk_load(sessions, per_session, max(1, sessions // 100))
        rows = [
            await _measure(
                raw,
                "index on messages, in the upgrade transaction",
                lambda: _in_transaction(url, [_INDEX.format(concurrently="")]),
            )
        ]
        await _admin(url, "DROP INDEX idx_bench_time")
        rows.append(
            await _measure(
                raw,
                "index on messages, online (CONCURRENTLY)",
                lambda: _online(url, _INDEX.format(concurrently="CONCURRENTLY ")),
            )
        )
        await _admin(url, "DROP INDEX idx_bench_time")
        rows.append(
            await _measure(
                raw,
                "key change, in the upgrade transaction",
                lambda: _in_transaction(
                    url,
                    [
                        "ALTER TABLE messages DROP CONSTRAINT messages_pkey, "
                        "ADD PRIMARY KEY (session_id, seq)",
                        _RECORD_4,
                    ],
                ),
            )
        )
        await _admin(
            url,
            "ALTER TABLE messages DROP CONSTRAINT messages_pkey, ADD PRIMARY KEY (id)",
            "DELETE FROM mofa_schema_migrations WHERE version = 4",
        )
        rows.append(
            await _measure(raw, "key change, online (migration 4)", lambda: _open_store(url))
        )
        await raw.close()
    finally:
        await raw_postgres.drop_database(url)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.upgrade_stall")
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--per-session", type=int, default=100)
    args = parser.parse_args()
    rows = asyncio.run(run(args.sessions, args.per_session))
    messages = args.sessions * args.per_session
    print(
        f"| upgrade of a {messages:,}-message database | upgrade | longest writer stall | "
        "typical gap between appends |"
    )
    print("|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['scenario']} | {row['upgrade_s']:.2f} s | {row['stall_ms']:.0f} ms | "
            f"{row['typical_ms']:.2f} ms |"
        )


if __name__ == "__main__":
    main()
