"""Export and import of one large session (``mofa.persistence.transfer``), beside the raw
driver doing the same durable work in the same run.

::

    .venv/bin/python -m benchmarks.transfer              # sqlite, files, servers that answer
    .venv/bin/python -m benchmarks.transfer --messages 20000 --backends sqlite
    .venv/bin/python -m benchmarks.transfer --gigabyte   # + peak memory, 1 GB jsonl import

The session: N messages (default 50,000) of about 300 characters with small metadata, two
state versions, as a ``jsonl`` export (written once, by mofa). Rows, per backend:

* ``import``: ``import_session(store, file)`` into an empty store — parse every line, check it
  (keys, types, role, seq order, storable text, canonical JSON), hash it, write the session in
  one transaction in batches. **raw**: the same file read line by line with orjson, times
  parsed, the same rows inserted in one transaction in batches of 1,000 (SQLite
  ``executemany`` on one worker thread, PostgreSQL one ``unnest()`` statement per batch,
  MariaDB ``executemany``, which the driver sends as multi-row INSERTs; the file store: the
  lines written to one file, one fsync) — what any script restoring the rows has to do.
* ``export``: ``export_session(store, session, file, format="jsonl")`` to a file. **raw**: the
  rows read in pages of 1,000 (asyncpg / asyncmy / sqlite3 on a thread; the file store's log
  read and parsed), each turned into a JSON line with orjson, written to a file.

Both are messages per second, best of ``--repeat``; the ratio is mofa's time over raw's.
``--gigabyte`` writes a ~1 GB jsonl file and imports it into SQLite in a child process,
reporting the child's peak RSS beside the file size (flat memory: it must not grow with it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from benchmarks._runner import probe
from mofa.persistence import AgentState, Message, Role, Session, open_store
from mofa.persistence.transfer import export_session, import_session
from mofa.persistence.transfer._canonical import MessageHash, header_object, message_object

T0 = datetime(2024, 2, 28, 10, 30, tzinfo=UTC)
TEXT = "Some conversation text, with a little ünïcödé and 🎉, to give the rows a usual size. " * 3


def _session(count: int) -> tuple[Session, list[Message | AgentState]]:
    session = Session("bench", "agent", "user", "tenant", "active", {"k": "v"}, count, T0, T0)
    records: list[Message | AgentState] = [
        AgentState("bench", version, {"step": version}, T0) for version in (1, 2)
    ]
    records += [
        Message(
            "bench",
            seq,
            Role.USER if seq % 2 else Role.ASSISTANT,
            f"{seq} {TEXT}",
            {"model": "m", "usage": {"tokens": seq}},
            T0 + timedelta(microseconds=seq),
        )
        for seq in range(1, count + 1)
    ]
    return session, records


async def make_file(path: Path, count: int) -> None:
    async with await open_store("memory://") as store:
        session, records = _session(count)
        await store.restore_session(session, records)
        with path.open("wb") as out:
            await export_session(store, "bench", out, format="jsonl")


def _parsed_lines(path: Path) -> Any:
    """The raw reader: each line parsed, its times parsed (what restoring the rows needs)."""
    with path.open("rb") as source:
        for line in source:
            record = orjson.loads(line)
            if record["type"] == "message":
                yield (
                    record["seq"],
                    record["role"],
                    record["content"],
                    orjson.dumps(record["metadata"]).decode(),
                    datetime.fromisoformat(record["timestamp"]),
                )


def _batches(path: Path, size: int = 1000) -> Any:
    batch = []
    for row in _parsed_lines(path):
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ------------------------------------------------------------------ raw importers


def _raw_import_sqlite(db: str, path: Path) -> None:
    import sqlite3

    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(
        "INSERT INTO sessions (session_id, status, metadata, message_count, created_at, "
        "updated_at) VALUES ('bench', 'active', '{}', 0, ?, ?)",
        (T0.isoformat(), T0.isoformat()),
    )
    for batch in _batches(path):
        connection.executemany(
            "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
            "VALUES ('bench', ?, ?, ?, ?, ?)",
            [(s, r, c, m, t.isoformat(" ", "microseconds")[:26]) for s, r, c, m, t in batch],
        )
    connection.execute("COMMIT")
    connection.close()


async def _raw_import_postgres(url: str, path: Path) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO sessions (session_id, status, metadata, message_count, created_at, "
                "updated_at) VALUES ('bench', 'active', '{}', 0, $1, $1)",
                T0,
            )
            for batch in _batches(path):
                columns = list(zip(*batch, strict=True))
                await connection.execute(
                    "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
                    "SELECT 'bench', m.s, m.r, m.c, m.m::jsonb, m.t FROM unnest($1::integer[], "
                    "$2::varchar[], $3::text[], $4::text[], $5::timestamptz[]) AS m(s, r, c, m, t)",
                    *columns,
                )
    finally:
        await connection.close()


async def _raw_import_mysql(url: str, path: Path) -> None:
    import asyncmy

    from benchmarks.raw_mysql import _connect_kwargs

    connection = await asyncmy.connect(**_connect_kwargs(url))
    try:
        await connection.begin()
        cursor = connection.cursor()
        await cursor.execute(
            "INSERT INTO sessions (session_id, status, metadata, message_count, created_at, "
            "updated_at) VALUES ('bench', 'active', '{}', 0, %s, %s)",
            (T0.replace(tzinfo=None), T0.replace(tzinfo=None)),
        )
        for batch in _batches(path):
            await cursor.executemany(
                "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
                "VALUES ('bench', %s, %s, %s, %s, %s)",
                [(s, r, c, m, t.replace(tzinfo=None)) for s, r, c, m, t in batch],
            )
        await connection.commit()
    finally:
        connection.close()


def _raw_import_files(directory: str, path: Path) -> None:
    target = Path(directory) / "raw-messages.jsonl"
    with target.open("wb") as out:
        for batch in _batches(path):
            out.write(
                b"".join(
                    orjson.dumps({"seq": s, "role": r, "content": c, "metadata": m, "ts": str(t)})
                    + b"\n"
                    for s, r, c, m, t in batch
                )
            )
        out.flush()
        os.fsync(out.fileno())


# ------------------------------------------------------------------ raw exporters


def _line(seq: int, role: str, content: str, metadata: Any, at: Any) -> bytes:
    return (
        orjson.dumps(
            {
                "content": content,
                "metadata": metadata if isinstance(metadata, dict) else orjson.loads(metadata),
                "role": role,
                "seq": seq,
                "timestamp": str(at),
            },
            option=orjson.OPT_SORT_KEYS,
        )
        + b"\n"
    )


def _raw_export_sqlite(db: str, out: Path) -> None:
    import sqlite3

    connection = sqlite3.connect(db)
    with out.open("wb") as target:
        after = 0
        while True:
            rows = connection.execute(
                "SELECT seq, role, content, metadata, timestamp FROM messages "
                "WHERE session_id = 'bench' AND seq > ? ORDER BY seq LIMIT 1000",
                (after,),
            ).fetchall()
            target.write(b"".join(_line(*row) for row in rows))
            if len(rows) < 1000:
                break
            after = rows[-1][0]
    connection.close()


async def _raw_export_postgres(url: str, out: Path) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        with out.open("wb") as target:
            after = 0
            while True:
                rows = await connection.fetch(
                    "SELECT seq, role, content, metadata::text, timestamp FROM messages "
                    "WHERE session_id = 'bench' AND seq > $1 ORDER BY seq LIMIT 1000",
                    after,
                )
                target.write(b"".join(_line(*row) for row in rows))
                if len(rows) < 1000:
                    break
                after = rows[-1][0]
    finally:
        await connection.close()


async def _raw_export_mysql(url: str, out: Path) -> None:
    import asyncmy

    from benchmarks.raw_mysql import _connect_kwargs

    connection = await asyncmy.connect(**_connect_kwargs(url))
    try:
        cursor = connection.cursor()
        with out.open("wb") as target:
            after = 0
            while True:
                await cursor.execute(
                    "SELECT seq, role, content, metadata, timestamp FROM messages "
                    "WHERE session_id = 'bench' AND seq > %s ORDER BY seq LIMIT 1000",
                    (after,),
                )
                rows = await cursor.fetchall()
                target.write(b"".join(_line(*row) for row in rows))
                if len(rows) < 1000:
                    break
                after = rows[-1][0]
    finally:
        connection.close()


def _raw_export_files(directory: str, out: Path) -> None:
    [log] = Path(directory).glob("sessions/*/bench.messages.jsonl")
    with log.open("rb") as source, out.open("wb") as target:
        for line in source:
            record = orjson.loads(line)
            target.write(
                _line(
                    record["seq"],
                    record["role"],
                    record["content"],
                    record["metadata"],
                    record["ts"],
                )
            )


# ------------------------------------------------------------------------ runs


async def _best(repeat: int, run: Callable[[], Awaitable[None]]) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        await run()
        timings.append(time.perf_counter() - start)
    return min(timings)


async def _fresh(backend: str, module: Any, work: Path) -> tuple[str, str]:
    """An empty store with the schema: (mofa URL, what the raw side connects to)."""
    if backend == "files":
        directory = tempfile.mkdtemp(dir=work)
        url = f"file://{directory}"
        target = directory
    elif backend == "sqlite":
        path = Path(tempfile.mkdtemp(dir=work)) / "bench.db"
        url = target = f"sqlite://{path}"
        target = str(path)
    else:
        url = target = await module.create_database()
    async with await open_store(url):
        pass
    return url, target


async def _drop(backend: str, module: Any, url: str) -> None:
    if backend in ("postgres", "mysql"):
        await module.drop_database(url)


RAW_IMPORT: dict[str, Callable[[str, Path], Any]] = {
    "sqlite": lambda db, path: asyncio.to_thread(_raw_import_sqlite, db, path),
    "files": lambda directory, path: asyncio.to_thread(_raw_import_files, directory, path),
    "postgres": _raw_import_postgres,
    "mysql": _raw_import_mysql,
}
RAW_EXPORT: dict[str, Callable[[str, Path], Any]] = {
    "sqlite": lambda db, out: asyncio.to_thread(_raw_export_sqlite, db, out),
    "files": lambda directory, out: asyncio.to_thread(_raw_export_files, directory, out),
    "postgres": _raw_export_postgres,
    "mysql": _raw_export_mysql,
}


async def bench_backend(
    backend: str, module: Any, file: Path, count: int, repeat: int, work: Path
) -> dict[str, float]:
    result: dict[str, float] = {}

    async def mofa_import() -> None:
        url, _ = await _fresh(backend, module, work)
        try:
            async with await open_store(url) as store:
                with file.open("rb") as source:
                    start = time.perf_counter()
                    await import_session(store, source)
                    timings.append(time.perf_counter() - start)
        finally:
            await _drop(backend, module, url)

    async def raw_import() -> None:
        url, target = await _fresh(backend, module, work)
        try:
            start = time.perf_counter()
            await RAW_IMPORT[backend](target, file)
            timings.append(time.perf_counter() - start)
        finally:
            await _drop(backend, module, url)

    for name, run in (("import mofa", mofa_import), ("import raw", raw_import)):
        timings: list[float] = []
        for _ in range(repeat):
            await run()
        result[name] = min(timings)

    url, target = await _fresh(backend, module, work)
    try:
        async with await open_store(url) as store:
            with file.open("rb") as source:
                await import_session(store, source)
            out = work / f"export-{backend}.jsonl"

            async def mofa_export() -> None:
                with out.open("wb") as target_file:
                    await export_session(store, "bench", target_file, format="jsonl")

            async def raw_export() -> None:
                await RAW_EXPORT[backend](target, out)

            result["export mofa"] = await _best(repeat, mofa_export)
            result["export raw"] = await _best(repeat, raw_export)
    finally:
        await _drop(backend, module, url)
    return result


def _peak_rss_of_import(file: Path, database: Path) -> tuple[int, float]:
    """Import ``file`` into a new SQLite store in a child process: its peak RSS in bytes
    (``ru_maxrss``, which Linux gives in KiB) and the seconds the import took."""
    code = (
        "import asyncio, resource, sys, time\n"
        "from mofa.persistence import open_store\n"
        "from mofa.persistence.transfer import import_session\n"
        "async def main():\n"
        "    async with await open_store(sys.argv[1]) as store:\n"
        "        with open(sys.argv[2], 'rb') as source:\n"
        "            start = time.perf_counter()\n"
        "            result = await import_session(store, source)\n"
        "            seconds = time.perf_counter() - start\n"
        "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    print(result.messages, peak * 1024, seconds)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, f"sqlite://{database}", str(file)],
        capture_output=True,
        text=True,
        check=True,
    )
    messages, peak, seconds = done.stdout.split()
    print(f"  imported {int(messages):,} messages in {float(seconds):.1f} s", file=sys.stderr)
    return int(peak), float(seconds)


def make_big_file(path: Path, count: int) -> None:
    """A jsonl export of ``count`` messages, written line by line (no store holds them)."""
    session = Session("bench", "agent", "user", "tenant", "active", {"k": "v"}, count, T0, T0)
    digest = MessageHash()
    with tempfile.TemporaryFile(dir=path.parent) as spool:
        for seq in range(1, count + 1):
            item = message_object(
                Message(
                    "bench",
                    seq,
                    Role.USER if seq % 2 else Role.ASSISTANT,
                    f"{seq} {TEXT}",
                    {"model": "m", "usage": {"tokens": seq}},
                    T0 + timedelta(microseconds=seq),
                )
            )
            digest.add(item)
            spool.write(
                orjson.dumps({**item, "type": "message"}, option=orjson.OPT_SORT_KEYS) + b"\n"
            )
        spool.seek(0)
        with path.open("wb") as out:
            header = {**header_object(session, None, digest.hexdigest()), "type": "session"}
            out.write(orjson.dumps(header, option=orjson.OPT_SORT_KEYS) + b"\n")
            shutil.copyfileobj(spool, out)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,files,postgres,mysql")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gigabyte", action="store_true")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mofa-bench-transfer-"))
    file = work / "session.jsonl"
    await make_file(file, options.messages)
    print(
        f"session file: {options.messages:,} messages, {file.stat().st_size:,} bytes",
        file=sys.stderr,
    )
    rows = []
    for backend in options.backends.split(","):
        module = None
        if backend in ("postgres", "mysql"):
            module, reason = await probe(backend)
            if module is None:
                print(f"{backend}: skipped ({reason})", file=sys.stderr)
                continue
        print(f"{backend}…", file=sys.stderr)
        timings = await bench_backend(backend, module, file, options.messages, options.repeat, work)
        for what in ("import", "export"):
            mofa, raw = timings[f"{what} mofa"], timings[f"{what} raw"]
            rows.append(
                f"| {what} | {backend} | {options.messages / mofa:,.0f}/s | "
                f"{options.messages / raw:,.0f}/s | {mofa / raw:.2f}x |"
            )
    print("| workload | backend | mofa | raw | ratio |\n|---|---|---:|---:|---:|")
    print("\n".join(rows))
    if options.gigabyte:
        big = work / "gigabyte.jsonl"
        count = 3_000_000
        make_big_file(big, count)
        size = big.stat().st_size
        print(f"gigabyte file: {count:,} messages, {size:,} bytes", file=sys.stderr)
        small_peak, _ = _peak_rss_of_import(file, work / "small.db")
        peak, seconds = _peak_rss_of_import(big, work / "gigabyte.db")
        print(
            f"\njsonl import into SQLite: a {size / 1e9:.2f} GB file ({count:,} messages, "
            f"{count / seconds:,.0f}/s) peaks at {peak / 1e6:.0f} MB RSS; a "
            f"{file.stat().st_size / 1e6:.0f} MB file ({options.messages:,}) at "
            f"{small_peak / 1e6:.0f} MB"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
