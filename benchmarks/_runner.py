"""The benchmark runner: discovery, the table and the JSON record.

The workloads live in ``_workloads``, the timing and the result rows in ``_measure``, the peer
column in ``_peer``; see benchmarks/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from benchmarks._measure import Counts, Row, ScaleRow, set_repeat, with_database
from benchmarks._workloads import WORKLOADS, w6

__all__ = ["main", "run", "with_database"]

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ALL_WORKLOADS = tuple(WORKLOADS)


class Backend:
    def __init__(self, name: str, module: ModuleType) -> None:
        self.name = name
        self.module = module


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


def _ratios(row: Row, side: str) -> str:
    """The median ratio and, when there are several, each repetition's."""
    ratios = row.ratios(side)
    if not ratios:
        return ""
    median = row.ratio(side)
    text = f"{median:.2f}x"
    if len(ratios) > 1:
        text += " (" + " / ".join(f"{r:.2f}" for r in ratios) + ")"
    return text


def _median(row: Row, side: str) -> str:
    value = row.median(side)
    return "" if value is None else fmt(value, row.unit)


def markdown(rows: Sequence[Row], scale: Sequence[ScaleRow]) -> str:
    lines = (
        [
            "| workload | backend | mofa | raw + decode | mofa / raw (runs) | target "
            "| blocking raw | peer | mofa / peer (runs) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        if rows
        else []
    )
    for row in rows:
        target = f"≤ {row.target:.1f}x" if row.target else ""
        ratio = row.ratio("raw")
        mark = " ✗" if row.target and ratio is not None and ratio > row.target else ""
        peer_ratio = row.ratio("peer")
        # On SQLite the store must be no slower than the SDK's SQLiteSession (issue 18).
        peer_mark = " ✗" if row.backend == "sqlite" and peer_ratio and peer_ratio > 1.0 else ""
        peer = _median(row, "peer")
        if peer and row.peer_name:
            peer = f"{peer} ({row.peer_name})"
        lines.append(
            f"| {row.workload} {row.what} | {row.backend} | {_median(row, 'mofa')} | "
            f"{_median(row, 'raw')} | {_ratios(row, 'raw')}{mark} | {target} | "
            f"{_median(row, 'blocking')} | {peer} | {_ratios(row, 'peer')}{peer_mark} |"
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
        "ops/s: appends per second, higher is better; ms: median time per call, lower is",
        "better. Each cell is the median of the repetitions; ratios are mofa's cost over the",
        "other side's, the median and (in brackets) each repetition's. raw + decode: the raw",
        "driver in the store's thread model, each row made one object (JSON decoded, times",
        "parsed). blocking raw: the same on the event loop's thread (SQLite; a reference).",
        "peer: the OpenAI Agents SDK's session through its public API (none for W4).",
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
    parser.add_argument(
        "--repeat", type=int, help="repetitions per row (default 3; the median is shown)"
    )
    parser.add_argument("--workloads", help=f"comma-separated subset of {','.join(ALL_WORKLOADS)}")
    return parser.parse_args(argv)


async def run(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    counts = Counts.quick() if args.quick else Counts()
    if args.repeat:
        counts.repeat = args.repeat
    set_repeat(counts.repeat)
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
