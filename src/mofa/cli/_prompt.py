"""A yes/no question on the terminal that Ctrl-C always answers.

Why not ``input()`` (``click.confirm``): CPython's ``input()`` checks for a pending signal only
when its ``read()`` is interrupted. A Ctrl-C typed in the instant between the prompt being
written and ``read()`` starting is noticed by nobody, and the command then waits for input
forever. Here the wait is a ``select()`` on stdin *and* a pipe that the signal machinery writes
to (``signal.set_wakeup_fd``), so a signal that arrives at any moment ends the wait.
"""

from __future__ import annotations

import os
import select
import signal
import sys

import click

_YES = ("y", "yes")
_NO = ("", "n", "no")


def ask_yes_no(question: str) -> bool:
    """Ask ``question [y/N]:`` until the answer is yes or no; the default is no.

    Ctrl-C and end of input (Ctrl-D) answer no at once. Call from the main thread, with no
    event loop running.
    """
    wake_reader, wake_writer = os.pipe()
    os.set_blocking(wake_reader, False)
    os.set_blocking(wake_writer, False)
    previous = signal.set_wakeup_fd(wake_writer, warn_on_full_buffer=False)
    try:
        while True:
            # On stderr, with the progress lines: stdout is for data.
            click.echo(f"{question} [y/N]: ", nl=False, err=True)
            line = _read_line(sys.stdin.fileno(), wake_reader)
            if line is None:  # end of input
                click.echo(err=True)
                return False
            answer = line.strip().lower()
            if answer in _YES or answer in _NO:
                return answer in _YES
            click.echo("Error: invalid input", err=True)
    except KeyboardInterrupt:
        click.echo(err=True)
        return False
    finally:
        signal.set_wakeup_fd(previous)
        os.close(wake_reader)
        os.close(wake_writer)


def _read_line(fd: int, wake_reader: int) -> str | None:
    """One line from ``fd`` (without its newline), or None at end of input.

    A signal ends the wait: its Python handler (KeyboardInterrupt for Ctrl-C) runs as soon as
    ``select`` returns.
    """
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd, wake_reader], [], [])
        if wake_reader in ready:
            # A signal came; its handler has run (and raised, for SIGINT). Drain and go on.
            while True:
                try:
                    if not os.read(wake_reader, 64):
                        break
                except BlockingIOError:
                    break
        if fd in ready:
            chunk = os.read(fd, 1024)
            if not chunk:
                return None if not data else _decode(data)
            data += chunk
    return _decode(data[:-1])


def _decode(data: bytes) -> str:
    return data.decode(sys.stdin.encoding or "utf-8", errors="replace")
