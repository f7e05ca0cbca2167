"""The online migration runner: a migration's steps, run so that writes never stop for long.

A migration is a list of steps (:func:`mofa.persistence.schema.pending_steps`). A plain step
runs its statements in one transaction where the dialect has transactional DDL (PostgreSQL,
SQLite; MySQL commits each DDL statement by itself). An online step (``-- online`` in the
migration file) runs alone, outside any transaction, and the dialect's :class:`StepSession`
runs it so that writers never queue behind it for long:

* PostgreSQL ``CREATE INDEX CONCURRENTLY``: builds without blocking writes. A build a kill
  interrupted leaves an *invalid* index; before building, the runner looks the index up:
  valid, the step is done; invalid, it is dropped (``DROP INDEX CONCURRENTLY``) and built
  again;
* any other online statement (a key change in a ``DO`` block, MySQL's ``ALGORITHM=INPLACE,
  LOCK=NONE``) waits at most :data:`LOCK_WAIT_SECONDS` for the strong lock it needs — a
  statement queued for a lock makes every later writer queue behind it — and is tried again
  after a pause, until :data:`GIVE_UP_SECONDS` have passed.

Resumable after a kill at any step: a plain step commits with its statements (and a
migration's version is recorded in a plain step after its online ones), and an online step
is written to be run again (see the schema package). The caller holds the dialect's schema
lock for the whole run, a session-level one, so two processes upgrading at once take turns
and the second finds the work done (:func:`~._migrate.migrate` reads the version under it).

Where the servers do not allow it online, they say so: MySQL/MariaDB refuse an ``ALTER
TABLE … ALGORITHM=INPLACE, LOCK=NONE`` they cannot run that way (MariaDB builds a FULLTEXT
index only with a shared lock, and no InnoDB server changes a column's type in place), so
such a migration states a weaker lock explicitly, and the guide says so.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol

from mofa.persistence.errors import SchemaError
from mofa.persistence.schema import Step

__all__ = [
    "GIVE_UP_SECONDS",
    "LOCK_WAIT_SECONDS",
    "LockWaitTimeout",
    "StepSession",
    "concurrent_index",
    "run_online",
    "run_steps",
]

#: Longest wait for a lock by one attempt of an online statement.
LOCK_WAIT_SECONDS: Final = 1.0
#: Attempts of one online statement stop after this long (a long transaction holds a lock).
GIVE_UP_SECONDS: Final = 120.0

_CONCURRENT_INDEX = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)",
    re.IGNORECASE,
)


class LockWaitTimeout(Exception):
    """An online statement waited :data:`LOCK_WAIT_SECONDS` for a lock and gave up (the
    session raises it in place of the driver's error, so the runner tries again)."""


class StepSession(Protocol):
    """One connection running a migration's steps (the dialect's side of the runner)."""

    def transaction(self) -> AbstractAsyncContextManager[object]:
        """A transaction for a plain step (MySQL: none, each DDL commits by itself; SQLite:
        none, the caller's BEGIN IMMEDIATE holds the whole migration)."""

    async def execute(self, statement: str) -> None:
        """Run one statement."""

    async def execute_online(self, statement: str, lock_wait: float | None) -> None:
        """Run one statement outside any transaction, waiting at most ``lock_wait`` seconds
        for a lock (``None``: the server's default); raise :class:`LockWaitTimeout` when
        that wait ran out."""

    async def index_valid(self, name: str) -> bool | None:
        """Whether index ``name`` exists and is valid (``None``: it does not exist)."""


def concurrent_index(statement: str) -> str | None:
    """The index a ``CREATE INDEX CONCURRENTLY`` statement builds (``None``: another one)."""
    match = _CONCURRENT_INDEX.match(statement)
    return match.group(1) if match else None


async def run_online(session: StepSession, statement: str) -> None:
    """Run one online statement (see the module docstring)."""
    index = concurrent_index(statement)
    if index is not None:
        valid = await session.index_valid(index)
        if valid:
            return  # built before a kill that came before the version was recorded
        if valid is False:  # a build that a kill (or a failure) interrupted
            # The name is a word of the migration's own text (the pattern above).
            await session.execute_online(f"DROP INDEX CONCURRENTLY IF EXISTS {index}", None)
        # Builds without blocking writers: no lock wait to bound (a short lock_timeout
        # would only make it fail behind any long transaction and start again).
        await session.execute_online(statement, None)
        return
    deadline = time.monotonic() + GIVE_UP_SECONDS
    pause = 0.05
    while True:
        try:
            await session.execute_online(statement, LOCK_WAIT_SECONDS)
            return
        except LockWaitTimeout as exc:
            if time.monotonic() + pause > deadline:
                raise SchemaError(
                    f"An online schema migration step waited {GIVE_UP_SECONDS:.0f} s for a "
                    "lock that other sessions kept holding (a long transaction?); end them and "
                    f"open the store again, which resumes the migration: {statement[:80]!r}"
                ) from exc
        await asyncio.sleep(pause)  # writers that queued behind the attempt go first
        pause = min(pause * 2, 2.0)


async def run_steps(session: StepSession, steps: Sequence[Step]) -> None:
    """Run ``steps`` in order: plain ones in a transaction each, online ones alone."""
    for step in steps:
        if step.online:
            for statement in step.statements:
                await run_online(session, statement)
            continue
        async with session.transaction():
            for statement in step.statements:
                await session.execute(statement)
