"""What every workload shares: the counts, one result row, how sides are timed in turn, and
the objects the raw comparators build (one per row, values decoded).

A row times up to four sides of the same work, always in the same run and interleaved, so a
noisy neighbour slows them alike: ``mofa`` (the store), ``raw`` (the comparator: the raw
driver in the store's thread model, rows decoded into one object each), ``blocking`` (SQLite
only: the same raw work and decoding on the event loop's own thread, a reference) and
``peer`` (the OpenAI Agents SDK's session doing the same work through its public API).
Each side gets one value per repetition; the table shows the medians and every
repetition's ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "SIDES",
    "Counts",
    "RawMessage",
    "RawSession",
    "Row",
    "ScaleRow",
    "expect",
    "interleave_calls",
    "interleave_runs",
    "interleave_steps",
    "median_ms",
    "present",
    "repetitions",
    "set_repeat",
    "with_database",
]

#: The sides a row can time, in the order they take turns.
SIDES = ("raw", "blocking", "peer", "mofa")


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
    """One workload on one backend: each side's value in each repetition."""

    workload: str
    what: str
    backend: str
    unit: str  # "ops/s" (higher is better) or "ms" (lower is better)
    target: float | None
    #: side -> one value per repetition (a side that did not run is absent).
    values: dict[str, list[float]] = field(default_factory=dict)
    #: The peer's class name ("SQLiteSession", "SQLAlchemySession"), if it ran.
    peer_name: str | None = None

    def median(self, side: str) -> float | None:
        values = self.values.get(side)
        return statistics.median(values) if values else None

    def _cost(self, value: float) -> float:
        return value if self.unit == "ms" else 1.0 / value

    def ratios(self, side: str) -> list[float]:
        """mofa's cost / ``side``'s cost, per repetition (1.0: as fast)."""
        mofa, other = self.values.get("mofa", []), self.values.get(side, [])
        return [self._cost(m) / self._cost(o) for m, o in zip(mofa, other, strict=False)]

    def ratio(self, side: str) -> float | None:
        ratios = self.ratios(side)
        return statistics.median(ratios) if ratios else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "what": self.what,
            "backend": self.backend,
            "unit": self.unit,
            "target": self.target,
            "values": self.values,
            "peer": self.peer_name,
            "medians": {side: self.median(side) for side in self.values},
            "ratios": {side: self.ratios(side) for side in self.values if side != "mofa"},
        }


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


class RawMessage:
    """What a hand-written caller of a raw driver builds from a message row."""

    __slots__ = ("content", "id", "metadata", "role", "seq", "timestamp")

    def __init__(
        self,
        id: int,
        seq: int,
        role: str,
        content: str,
        metadata: dict[str, Any],
        timestamp: datetime,
    ) -> None:
        self.id = id
        self.seq = seq
        self.role = role
        self.content = content
        self.metadata = metadata
        self.timestamp = timestamp


class RawSession:
    """What a hand-written caller of a raw driver builds from a sessions row."""

    __slots__ = (
        "agent_id",
        "created_at",
        "expires_at",
        "message_count",
        "metadata",
        "session_id",
        "status",
        "tenant_id",
        "updated_at",
        "user_id",
    )

    def __init__(
        self,
        session_id: str,
        agent_id: str | None,
        user_id: str | None,
        tenant_id: str | None,
        status: str,
        metadata: dict[str, Any],
        message_count: int,
        created_at: datetime,
        updated_at: datetime,
        expires_at: datetime | None,
    ) -> None:
        self.session_id = session_id
        self.agent_id = agent_id
        self.user_id = user_id
        self.tenant_id = tenant_id
        self.status = status
        self.metadata = metadata
        self.message_count = message_count
        self.created_at = created_at
        self.updated_at = updated_at
        self.expires_at = expires_at


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database (same credentials, host and query)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def expect(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise SystemExit(f"benchmark check failed: {what}: got {actual}, expected {expected}")


async def median_ms(runs: int, work: Callable[[], Awaitable[object]]) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


Step = Callable[[int, int], Awaitable[None]]


async def interleave_steps(
    row: Row,
    steps: int,
    per_step: int,
    setup: Callable[[int], Awaitable[None]],
    sides: dict[str, Step],
) -> None:
    """Operations/second of each side, one value per repetition, into ``row``.

    A repetition does ``steps`` steps on each side in ten chunks; the sides take turns
    chunk by chunk (the first side rotating), so a noisy neighbour slows each alike.
    """
    chunk = max(1, steps // 10)
    names = list(sides)
    for repetition in range(_REPEAT[0]):
        await setup(repetition)
        seconds = dict.fromkeys(names, 0.0)
        for turn, first in enumerate(range(0, steps, chunk)):
            numbers = range(first, min(first + chunk, steps))
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                step = sides[name]
                started = time.perf_counter()
                for n in numbers:
                    await step(repetition, n)
                seconds[name] += time.perf_counter() - started
        for name in names:
            row.values.setdefault(name, []).append(steps * per_step / seconds[name])


async def interleave_calls(
    row: Row, runs: int, sides: dict[str, Callable[[], Awaitable[object]]]
) -> None:
    """Median ms per call of each side, one value per repetition, into ``row``: in each
    repetition the sides take turns in three rounds of ``runs / 3`` calls each."""
    per_round = max(1, runs // 3)
    for _ in range(_REPEAT[0]):
        timings: dict[str, list[float]] = {name: [] for name in sides}
        for _round in range(3):
            for name, call in sides.items():
                for _ in range(per_round):
                    started = time.perf_counter()
                    await call()
                    timings[name].append(time.perf_counter() - started)
        for name, values in timings.items():
            row.values.setdefault(name, []).append(statistics.median(values) * 1000)


async def interleave_runs(
    row: Row, operations: int, sides: dict[str, Callable[[int], Awaitable[None]]]
) -> None:
    """Whole runs of each side in turn (concurrent workloads): operations/second, one value
    per repetition, into ``row``."""
    for repetition in range(_REPEAT[0]):
        for name, run in sides.items():
            started = time.perf_counter()
            await run(repetition)
            rate = operations / (time.perf_counter() - started)
            row.values.setdefault(name, []).append(rate)


#: Repetitions per row (set once by the runner from --repeat).
_REPEAT = [3]


def set_repeat(repeat: int) -> None:
    _REPEAT[0] = repeat


def repetitions() -> int:
    return _REPEAT[0]


def present(sides: dict[str, Any]) -> dict[str, Any]:
    """``sides`` without the ones a backend does not have (``None``)."""
    return {name: side for name, side in sides.items() if side is not None}
