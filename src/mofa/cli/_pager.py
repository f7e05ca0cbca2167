"""A pager for long table output on a terminal, as ``git log`` and ``psql`` page theirs.

Only when stdout is a terminal and the output is longer than the screen; never in a pipe or
a file, and never with ``--no-pager``. The pager is ``$MOFA_PAGER``, else ``$PAGER``, else
``less`` (``LESS=FRX`` unless set: raw colour, and the screen is not cleared on exit). Text is
handed to it as it is made, so a long session is never held whole; quitting the pager stops
the command quietly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

__all__ = ["paged", "wants_pager"]


def wants_pager(lines: int, *, enabled: bool = True) -> bool:
    """Whether ``lines`` of output to stdout should go through a pager."""
    if not enabled or not sys.stdout.isatty():
        return False
    # $LINES first, as shutil.get_terminal_size reads it (os, not shutil: shutil's imports
    # cost a few ms of every command's start); a shell rarely exports it, so the terminal's
    # own size is the usual answer, and 24 rows when neither says.
    height = 0
    with suppress(ValueError):
        height = int(os.environ.get("LINES", ""))
    if height <= 0:
        try:
            height = os.get_terminal_size(sys.stdout.fileno()).lines
        except OSError:
            height = 0
    return lines > (height or 24) - 1


def _pager_command() -> list[str] | None:
    import shlex

    command = os.environ.get("MOFA_PAGER") or os.environ.get("PAGER") or "less"
    words = shlex.split(command)
    if not words or words == ["cat"]:
        return None
    return words


@contextmanager
def paged(use_pager: bool) -> Iterator[Callable[[str], object]]:
    """A ``write`` for the command's output: into the pager when ``use_pager``, else stdout."""
    import subprocess  # only a terminal ever gets here: piped output starts no pager

    command = _pager_command() if use_pager else None
    process = None
    if command is not None:
        environment = dict(os.environ)
        environment.setdefault("LESS", "FRX")
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, env=environment, encoding="utf-8"
            )
        except OSError:
            process = None  # no such pager: print as without one
    if process is None or process.stdin is None:
        yield sys.stdout.write
        return
    try:
        yield process.stdin.write
    except BrokenPipeError:
        pass  # the reader quit the pager: nothing more to show
    finally:
        with suppress(BrokenPipeError, OSError):
            process.stdin.close()
        while True:
            try:
                process.wait()
                break
            except KeyboardInterrupt:
                continue  # Ctrl-C belongs to the pager (less uses it) while it runs
