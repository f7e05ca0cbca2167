"""How long ``mofa`` takes to start, beside a one-command click program.

    .venv/bin/python -m benchmarks.startup [--runs 20]

Each command runs as a whole process, in turn with the baseline (A B A B …, so a noisy
neighbour slows both alike), after one warm-up each; the table gives min / median / max wall
times and the median of the pairwise ratios. The baseline is ``benchmarks/click_hello.py
--version``: Python's start plus importing click, the floor any click program pays. Targets
(issue #24): ``--version`` and ``--help`` within 1.3x, ``session list --limit 10`` on SQLite
within 2.5x.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MOFA = Path(sys.executable).with_name("mofa")
BASELINE = [sys.executable, str(HERE / "click_hello.py"), "--version"]
TARGETS = {"--version": 1.3, "--help": 1.3, "session list --limit 10 (SQLite)": 2.5}


def _wall(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True
    )
    return time.perf_counter() - start


async def _fill(url: str) -> None:
    from mofa.persistence import open_store

    async with await open_store(url) as store:
        for index in range(100):
            await store.create_session(f"s{index:03d}", agent_id="bench")
            await store.append_message(f"s{index:03d}", "user", "hello")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="counted runs of each command")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite://{Path(directory) / 'bench.db'}"
        asyncio.run(_fill(url))
        env = {key: value for key, value in os.environ.items() if not key.startswith("MOFA_")}
        commands = {
            "--version": [str(MOFA), "--version"],
            "--help": [str(MOFA), "--help"],
            "session list --limit 10 (SQLite)": [
                str(MOFA), "--database-url", url, "session", "list", "--limit", "10",
            ],
        }  # fmt: skip
        print(
            "| command | mofa min / median / max | click baseline median "
            "| ratio (median of pairs) | target |"
        )
        print("|---|---:|---:|---:|---:|")
        for name, command in commands.items():
            _wall(command, env)
            _wall(BASELINE, env)
            mine, base = [], []
            for _ in range(runs):
                mine.append(_wall(command, env))
                base.append(_wall(BASELINE, env))
            ratio = statistics.median(a / b for a, b in zip(mine, base, strict=True))
            low, middle, high = (1000 * f(mine) for f in (min, statistics.median, max))
            print(
                f"| `mofa {name}` | {low:.0f} / {middle:.0f} / {high:.0f} ms "
                f"| {statistics.median(base) * 1000:.0f} ms | {ratio:.2f}x "
                f"| ≤ {TARGETS[name]}x |"
            )


if __name__ == "__main__":
    main()
