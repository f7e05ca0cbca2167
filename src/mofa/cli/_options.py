"""Option values the session commands share: times (``7d``, ``2024-02-28``), counts, and ids
given as arguments or read from stdin.

Each parser is a click callback: a bad value is one sentence naming the option (exit 2).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Final

import click

__all__ = ["count_callback", "read_ids", "time_callback"]

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGO = re.compile(r"(\d+)\s*([smhdw])")


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """A time: ``7d`` / ``24h`` / ``30m`` / ``90s`` / ``2w`` ago, or an ISO 8601 date or time
    (``2024-02-28``, ``2024-02-28T10:30:00Z``; without a zone it is UTC).

    Raises ValueError for anything else.
    """
    text = text.strip()
    match = _AGO.fullmatch(text)
    if match:
        seconds = int(match[1]) * _UNITS[match[2]]
        try:
            return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
        except OverflowError:
            return datetime(1, 1, 1, tzinfo=UTC)
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def time_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """``--since`` / ``--until`` / ``--older-than``: a time, refused in one sentence."""
    if value is None:
        return None
    try:
        return parse_when(value)
    except (ValueError, OverflowError):
        name = param.opts[0] if param.opts else param.name
        raise click.BadParameter(
            f"{value!r} is neither a duration (7d, 24h, 30m, 90s, 2w) nor an ISO date or time "
            "(2024-02-28, 2024-02-28T10:30:00Z).",
            ctx,
            param,
            param_hint=repr(name),
        ) from None


def count_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A whole number: ``--limit`` (1 or more), ``--offset``/``--head``/``--tail``/``--keep-last``
    (0 or more)."""
    if value is None:
        return None
    least = 1 if param.name == "limit" else 0
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < least:
        shown = repr(value) if number is None else str(number)
        name = param.opts[-1] if param.opts else param.name
        raise click.UsageError(
            f"{name} must be a whole number of {least} or more, not {shown}.", ctx
        )
    return number


def read_ids(arguments: tuple[str, ...]) -> Iterator[str]:
    """The session ids of the arguments, where ``-`` stands for the ids on stdin: one per
    line, exactly as written but for its line end (``\n`` or ``\r\n``); lines of blanks
    only are skipped.

    Nothing else is stripped: an id may begin or end with a space, and stripping it would
    name (and delete) another session.
    """
    for argument in arguments:
        if argument != "-":
            yield argument
            continue
        for line in sys.stdin:
            session_id = line.removesuffix("\n").removesuffix("\r")
            if session_id.strip():
                yield session_id
