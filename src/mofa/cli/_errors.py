"""One place that turns a library error into what a CLI user sees.

A :class:`~mofa.persistence.errors.PersistenceError` becomes one line, ``Error: <message>``, on
stderr and exit code 1 — never a traceback. Every command group uses it the same way::

    with cli_errors():
        result = asyncio.run(do_the_work(url))

The messages of the error tree are already one sentence without a password; this module only
guarantees the one line (a driver's multi-line detail must not spill over several lines).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from mofa.persistence.errors import MissingDependencyError, PersistenceError

__all__ = ["EXIT_FAILURE", "CliError", "cli_errors", "missing_driver_message", "one_line"]

#: Exit code of a failed operation (bad usage exits 2, as click does).
EXIT_FAILURE = 1


def one_line(message: str) -> str:
    """``message`` with every run of whitespace (newlines included) folded into one space."""
    return " ".join(message.split())


class CliError(click.ClickException):
    """Printed by click as ``Error: <message>`` on stderr; the command exits with ``exit_code``."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def missing_driver_message(exc: MissingDependencyError) -> str:
    """The seeds' "requires the 'db' feature" message, in pip terms."""
    return (
        f"Direct database execution requires the '{exc.extra}' extra (the {exc.module!r} "
        f"package is not installed); install it with: pip install 'mofa-sdk[{exc.extra}]' "
        "(or 'mofa-sdk[db]' for every database)."
    )


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn a :class:`PersistenceError` raised inside the block into :class:`CliError`."""
    try:
        yield
    except MissingDependencyError as exc:
        raise CliError(missing_driver_message(exc)) from exc
    except PersistenceError as exc:
        raise CliError(str(exc) or type(exc).__name__) from exc
