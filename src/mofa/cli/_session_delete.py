"""``mofa session delete``: one session with the seeds' prompt, or many in one process.

Ids come as arguments and, for ``-``, from stdin; one question covers them all (refused
without a terminal unless ``--force``). Each session is deleted on its own, and the exit code
is the worst of theirs (the seeds' table: 0 deleted, 1 not found, 2 permission denied,
3 failed or not confirmed).
"""

from __future__ import annotations

import sys

import click

from mofa.cli._errors import CommandError, one_line, run
from mofa.cli._options import read_ids
from mofa.cli._progress import say, success
from mofa.cli._prompt import ask_yes_no
from mofa.cli._render import shown_id
from mofa.cli._store import (
    StoreChoice,
    get_session_or_exit,
    not_found,
    open_existing_store,
    store_choice,
)
from mofa.persistence import (
    InvalidInputError,
    InvalidURLError,
    PermissionDeniedError,
    PersistenceError,
    Session,
    SessionNotFoundError,
)

__all__ = [
    "EXIT_DELETED",
    "EXIT_DELETE_FAILED",
    "EXIT_NOT_FOUND",
    "EXIT_PERMISSION_DENIED",
    "delete_command",
]

#: ``session delete`` exit codes, as the seeds' table gives them.
EXIT_DELETED, EXIT_NOT_FOUND, EXIT_PERMISSION_DENIED, EXIT_DELETE_FAILED = 0, 1, 2, 3


def _delete_exit_code(exc: Exception) -> int:
    if isinstance(exc, InvalidURLError):
        return EXIT_DELETE_FAILED
    if isinstance(exc, SessionNotFoundError | InvalidInputError):
        return EXIT_NOT_FOUND  # an id no store accepts names no session
    if isinstance(exc, PermissionDeniedError | PermissionError):
        return EXIT_PERMISSION_DENIED
    return EXIT_DELETE_FAILED


@click.command("delete")
@click.argument("session_ids", nargs=-1, required=True, metavar="SESSION_ID...")
@click.option("--force", is_flag=True, help="Skip the confirmation prompt.")
@click.pass_context
def delete_command(ctx: click.Context, session_ids: tuple[str, ...], force: bool) -> None:
    """Delete sessions and their conversation history.

    Takes one or more ids; - reads more from stdin, one per line, exactly as written (only
    the line end is dropped; blank lines are skipped), so the seeds' batch delete runs in
    one process. Asks once for confirmation unless --force is given;
    without a terminal to ask on, it refuses. Each session is deleted on its own: one that
    is missing or fails is reported and the others still go. Exit codes (the worst one
    wins): 0 deleted, 1 a session not found, 2 permission denied, 3 not deleted (the delete
    failed, was declined, or had no terminal to confirm on and no --force).

    \b
    Examples:
      mofa session delete agent-001:session-123
      mofa session delete session-123 session-124 --force
      mofa session list --agent old-agent -f jsonl | jq -r .session_id \\
        | mofa session delete - --force
    """
    choice = store_choice(ctx)
    ids = list(dict.fromkeys(read_ids(session_ids)))  # each once, in the order given
    if not ids:
        raise CommandError("No session ids on stdin; nothing was deleted.", EXIT_NOT_FOUND)
    if len(ids) == 1:
        _delete_one(choice, ids[0], force)
        return
    _delete_many(choice, ids, force)


def _delete_one(choice: StoreChoice, session_id: str, force: bool) -> None:
    """One id: the seeds' lines and prompt, exactly."""

    async def look_up() -> Session:
        async with await open_existing_store(choice) as store:
            return await get_session_or_exit(store, session_id)

    async def delete() -> None:
        async with await open_existing_store(choice) as store:
            say("  Removing session data...")
            if not await store.delete_session(session_id):
                raise not_found(session_id)  # deleted by someone else meanwhile

    say(f"→ Deleting session: {shown_id(session_id)}")
    if not force:
        # Looked up first: a missing session is "not found" (exit 1) with or without a
        # terminal. The store is closed while the question is open: with no other thread
        # running, Ctrl-C reaches the prompt at once.
        found = run(look_up, url=choice.url, exit_code_for=_delete_exit_code)
        _confirm(
            f"session {shown_id(session_id)}",
            f"Session contains {_messages(found.message_count)}.",
            "Delete session?",
            "the session was not deleted",
        )
    run(
        delete,
        url=choice.url,
        exit_code_for=_delete_exit_code,
        interrupted=f"Interrupted; check with 'mofa session show {session_id}' whether the "
        "session was deleted.",
    )
    say(success("✓ Session deleted successfully"))


def _delete_many(choice: StoreChoice, ids: list[str], force: bool) -> None:
    """Several ids, one store, one question: each deleted on its own, the worst exit wins."""
    say(f"→ Deleting {len(ids)} sessions")

    async def look_up() -> list[Session]:
        async with await open_existing_store(choice) as store:
            return [found for found in [await store.get_session(i) for i in ids] if found]

    if not force:
        found = run(look_up, url=choice.url, exit_code_for=_delete_exit_code)
        missing = len(ids) - len(found)
        _confirm(
            f"{len(ids)} sessions",
            f"{len(found)} of them exist, holding "
            f"{_messages(sum(s.message_count for s in found))}"
            + (f"; {missing} not found." if missing else "."),
            f"Delete {len(found)} sessions?",
            "no session was deleted",
        )

    async def delete_all() -> tuple[int, int]:
        worst, deleted = EXIT_DELETED, 0
        async with await open_existing_store(choice) as store:
            for session_id in ids:
                try:
                    if await store.delete_session(session_id):
                        deleted += 1
                        say(f"  ✓ Deleted {shown_id(session_id)}")
                        continue
                    code, reason = EXIT_NOT_FOUND, f"Session not found: {shown_id(session_id)}"
                except PersistenceError as exc:
                    code, reason = _delete_exit_code(exc), one_line(str(exc))
                say(f"  ✗ {reason}")
                worst = max(worst, code)
        return worst, deleted

    worst, deleted = run(
        delete_all,
        url=choice.url,
        exit_code_for=_delete_exit_code,
        interrupted="Interrupted; the sessions listed as deleted above are gone, the "
        "others were not deleted.",
    )
    summary = f"Deleted {deleted} of {len(ids)} sessions"
    if worst != EXIT_DELETED:
        raise CommandError(f"{summary}; see above for the others.", worst)
    say(success(f"✓ {summary}"))


def _messages(count: int) -> str:
    return f"{count} {'message' if count == 1 else 'messages'}"


def _confirm(what: str, detail: str, question: str, declined: str) -> None:
    """The seeds' confirmation: refused without a terminal, exit 3 when declined."""
    if not sys.stdin.isatty():
        raise CommandError(
            f"Refusing to delete {what} without confirmation: stdin is not a terminal; "
            "use --force.",
            EXIT_DELETE_FAILED,
        )
    say("")
    say(detail)
    say("This action cannot be undone.")
    say("")
    if not ask_yes_no(question):
        raise CommandError(f"Cancelled; {declined}.", EXIT_DELETE_FAILED)
    say("")
