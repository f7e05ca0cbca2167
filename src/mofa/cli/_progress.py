"""Status lines and progress on stderr, for every command that reports while it works.

Stdout is for data; everything here writes to stderr. Colour only when stderr is a terminal
and ``NO_COLOR`` is unset (https://no-color.org), never in a pipe or a file::

    say("→ Pruning sessions")
    with Progress("Deleting", total=1200, unit="sessions") as progress:
        for batch in batches:
            progress.advance(len(batch))
    say(success("✓ Deleted 1200 sessions"))

On a terminal, :class:`Progress` redraws one line (a bar, done of total, rate, time left);
elsewhere it prints a plain line at most once a second, and one at the end.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import IO, Final, Self

import click

__all__ = ["Progress", "colour_enabled", "say", "success", "warning"]

#: Least time between two plain (not a terminal) progress lines, in seconds.
PLAIN_INTERVAL: Final = 1.0
#: Least time between two redraws of the terminal line.
_REDRAW_INTERVAL: Final = 0.1
_BAR_WIDTH: Final = 24


def _stderr() -> IO[str]:
    return sys.stderr  # looked up at each call: click's test runner swaps it


def colour_enabled(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (stderr by default) gets colour: a terminal, and no ``NO_COLOR``."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    stream = stream or _stderr()
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _styled(text: str, colour: str) -> str:
    return click.style(text, fg=colour) if colour_enabled() else text


def success(text: str) -> str:
    """``text`` in green on a terminal (the seeds' "✓ …" lines)."""
    return _styled(text, "green")


def warning(text: str) -> str:
    """``text`` in yellow on a terminal."""
    return _styled(text, "yellow")


def say(line: str = "") -> None:
    """One status line, to stderr (stdout holds only data)."""
    click.echo(line, err=True, color=colour_enabled())


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Work done of a total (or of an unknown total), reported on stderr."""

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        unit: str = "items",
        stream: IO[str] | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self._stream = stream or _stderr()
        isatty = getattr(self._stream, "isatty", None)
        self._terminal = bool(isatty and isatty())
        self._started = time.monotonic()
        self._shown_at = -PLAIN_INTERVAL  # the first advance() reports at once
        self._drawn = False
        self._reported = -1  # ``done`` at the last plain line

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.finish()

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more done; report if it is time to."""
        self.done += count
        now = time.monotonic() - self._started
        interval = _REDRAW_INTERVAL if self._terminal else PLAIN_INTERVAL
        if now - self._shown_at >= interval:
            self._shown_at = now
            self._show(now)

    def finish(self) -> None:
        """The last report (a newline after the terminal line). Safe to call twice."""
        if self._drawn or (not self._terminal and self._reported != self.done):
            self._show(time.monotonic() - self._started)
        if self._terminal and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
        self._shown_at = float("inf")  # nothing more after the end

    def line(self, elapsed: float) -> str:
        """The report: ``Deleting: 300/1,200 sessions (25%), 150/s, 6s left``."""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.label}: {self.done:,}"
        if self.total is not None:
            share = self.done / self.total if self.total else 1.0
            text += f"/{self.total:,} {self.unit} ({share:.0%})"
            if rate and self.done < self.total:
                text += f", {rate:,.0f}/s, {_duration((self.total - self.done) / rate)} left"
            elif rate:
                text += f", {rate:,.0f}/s"
        else:
            text += f" {self.unit}" + (f", {rate:,.0f}/s" if rate else "")
        return text

    def _show(self, elapsed: float) -> None:
        if self._shown_at == float("inf"):
            return
        text = self.line(elapsed)
        if self._terminal:
            if self.total:
                filled = round(_BAR_WIDTH * min(self.done / self.total, 1.0))
                text = "[" + "#" * filled + "-" * (_BAR_WIDTH - filled) + "] " + text
            self._stream.write("\r\x1b[2K" + text)
            self._drawn = True
        else:
            self._stream.write(text + "\n")
            self._reported = self.done
        self._stream.flush()
