"""One place that turns a library error into what a CLI user sees.

A :class:`~mofa.persistence.errors.PersistenceError`, a
:class:`~mofa.config.ConfigError` or an :class:`OSError` becomes one line,
``Error: <message>``, on stderr and an exit code (1 unless the command chooses another) —
never a traceback, never a password. Every command runs its work the same way::

    result = run(lambda: do_the_work(url), url=url)

The messages of the error tree are already one sentence without a password; this module only
guarantees the one line (a driver's multi-line detail must not spill over several lines) and
scrubs the URL's secrets (see :func:`mofa.persistence.mask_url`) once more, whatever
produced the message.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    import types

    from mofa.persistence.errors import MissingDependencyError

# The store, the configuration loader and asyncio load when a command first runs one (see
# run()): `mofa --version` and `mofa --help` import none of them.

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "CliError",
    "CommandError",
    "missing_driver_message",
    "one_line",
    "run",
]

#: Exit code of a failed operation (bad usage exits 2, as click does).
EXIT_FAILURE = 1
#: 128 + SIGINT, as shells report a command stopped with Ctrl-C.
EXIT_INTERRUPTED = 130

T = TypeVar("T")


def one_line(message: str) -> str:
    """``message`` with every run of whitespace (newlines included) folded into one space."""
    return " ".join(message.split())


class CliError(click.ClickException):
    """Printed by click as ``Error: <message>`` on stderr; the command exits with ``exit_code``."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class CommandError(CliError):
    """:class:`CliError` with a chosen exit code (``session delete``'s 1 not found,
    2 permission denied, 3 failed)."""

    def __new__(cls, message: str, exit_code: int = EXIT_FAILURE) -> CommandError:
        # click reads the exit code from the class; one subclass per code keeps it there.
        if exit_code != cls.exit_code:
            cls = _coded_class(exit_code)
        return super().__new__(cls)

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)


@functools.cache
def _coded_class(exit_code: int) -> type[CommandError]:
    return type(f"CommandError{exit_code}", (CommandError,), {"exit_code": exit_code})


def missing_driver_message(exc: MissingDependencyError) -> str:
    """The seeds' "requires the 'db' feature" message, in pip terms."""
    return (
        f"Direct database execution requires the '{exc.extra}' extra (the {exc.module!r} "
        f"package is not installed); install it with: pip install 'mofa-sdk[{exc.extra}]' "
        "(or 'mofa-sdk[db]' for every database)."
    )


def run(
    coroutine_factory: Callable[[], Coroutine[Any, Any, T]],
    *,
    url: str | None = None,
    exit_code_for: Callable[[Exception], int] | None = None,
    describe_missing_driver: Callable[[MissingDependencyError], str] | None = None,
    interrupted: str = "Interrupted.",
) -> T:
    """Run a command's coroutine; turn store, configuration and file errors into a
    :class:`CommandError`.

    Args:
        coroutine_factory: Makes the coroutine to run.
        url: The database URL in use; its password is scrubbed from every message.
        exit_code_for: The exit code for an error (default :data:`EXIT_FAILURE`).
        describe_missing_driver: The message for a missing database driver (default: the
            error's own).
        interrupted: The message for Ctrl-C (exit :data:`EXIT_INTERRUPTED`).
    """
    from mofa.persistence import PersistenceError
    from mofa.persistence.errors import MissingDependencyError

    try:
        return _run_interruptibly(coroutine_factory)
    except CliError:
        raise
    except KeyboardInterrupt:
        raise CommandError(interrupted, EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as command-line tools do.
        _silence_stdout()
        raise SystemExit(EXIT_FAILURE) from None
    except Exception as exc:
        if not isinstance(exc, (PersistenceError, OSError, *_config_errors())):
            raise
        code = EXIT_FAILURE if exit_code_for is None else exit_code_for(exc)
        if isinstance(exc, MissingDependencyError) and describe_missing_driver is not None:
            message = describe_missing_driver(exc)
        elif isinstance(exc, OSError) and not isinstance(exc, PersistenceError):
            message = _describe_os_error(exc)
        else:
            message = str(exc)
        if not message.strip():
            message = type(exc).__name__
        raise CommandError(_scrub(message, url), code) from None


def _config_errors() -> tuple[type[Exception], ...]:
    """:class:`~mofa.config.ConfigError` once the configuration loader is loaded (it cannot
    be raised before): a command that reads no agent.yml does not import it (nor YAML)."""
    config = sys.modules.get("mofa.config")
    return () if config is None else (config.ConfigError,)


def _run_interruptibly(coroutine_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run``, except that a Ctrl-C is remembered: whatever the interrupted work
    raises afterwards, the caller sees :class:`KeyboardInterrupt`.

    ``asyncio.run`` reports Ctrl-C only when the cancelled task ends cancelled; a driver that
    turns the cancellation into its own error (a connect timeout expiring in the same
    instant, a wrapped socket error) would otherwise be reported as the failure.
    """
    import asyncio
    import logging
    import signal
    import threading

    # Errors reach the user as one "Error: …" line. Without a handler, asyncio's own log
    # records (a driver's "Future exception was never retrieved" after Ctrl-C cut a connect
    # short) would go to stderr through logging's last-resort handler, after that line.
    asyncio_log = logging.getLogger("asyncio")
    if not asyncio_log.handlers:
        asyncio_log.addHandler(logging.NullHandler())

    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        # SIGINT ignored (a background job) or handled by the embedding program: theirs.
        return asyncio.run(coroutine_factory())
    with asyncio.Runner() as runner:
        loop = runner.get_loop()
        task = loop.create_task(coroutine_factory())
        interrupted = False

        def on_sigint(signum: int, frame: types.FrameType | None) -> None:
            nonlocal interrupted
            if interrupted or task.done():
                raise KeyboardInterrupt  # a second Ctrl-C: stop waiting for the clean-up
            interrupted = True
            task.cancel()
            loop.call_soon_threadsafe(lambda: None)  # wake the loop from a long select()

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            return loop.run_until_complete(task)
        except BaseException:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            signal.signal(signal.SIGINT, previous)


def _scrub(message: str, url: str | None) -> str:
    """Belt and braces: whatever produced ``message``, no secret of ``url`` survives."""
    if not url:
        return message
    from mofa.persistence._url import scrub

    return scrub(message, url)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test runner's buffer)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


def _describe_os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f"{reason}: {os.fsdecode(exc.filename)}."
    return f"{reason}."
