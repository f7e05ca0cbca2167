"""``mofa session export`` and ``mofa session import``: sessions to and from
``mofa-session/1`` files (see :mod:`mofa.persistence.transfer`).

Both stream. An export file appears complete or not at all; an import writes each session
atomically, reports each one on stderr and exits 1 if any failed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Literal, TextIO, cast

import click

from mofa.cli._errors import CommandError, run
from mofa.cli._files import atomic_text_file, cannot_write
from mofa.cli._progress import say
from mofa.cli._render import shown_id
from mofa.cli._store import open_existing_store, open_store_to_write, store_choice
from mofa.persistence import BaseStore, PersistenceError, SessionNotFoundError
from mofa.persistence.transfer import (
    ImportResult,
    export_session,
    export_sessions,
    import_sessions,
)

__all__ = ["export_command", "import_command"]

ExportFormat = Literal["json", "yaml", "jsonl"]


def _progress(line: str) -> None:
    say(line)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# ---------------------------------------------------------------------------- export


def _filters(agent_id: str | None, user_id: str | None, tenant_id: str | None) -> str:
    named = [("agent", agent_id), ("user", user_id), ("tenant", tenant_id)]
    return ", ".join(f"{what} {shown_id(value)}" for what, value in named if value is not None)


@click.command("export")
@click.argument("session_id", required=False)
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="PATH",
    help="File to write (missing parent directories are created); - writes to stdout.",
)
@click.option(
    "-f",
    "--format",
    "export_format",
    required=True,
    type=click.Choice(["json", "yaml", "jsonl"], case_sensitive=False),
    help="json or yaml (one session), jsonl (one session or many, streamed).",
)
@click.option("-a", "--agent", "agent_id", metavar="AGENT_ID", help="Every session of this agent.")
@click.option("--user", "user_id", metavar="USER_ID", help="Every session of this user.")
@click.option("--tenant", "tenant_id", metavar="TENANT_ID", help="Every session of this tenant.")
@click.pass_context
def export_command(
    ctx: click.Context,
    session_id: str | None,
    output_path: Path,
    export_format: str,
    agent_id: str | None,
    user_id: str | None,
    tenant_id: str | None,
) -> None:
    """Export a session, or every session of an agent, user or tenant, losslessly.

    The file is in the mofa-session/1 format: everything the store holds (the session's
    times, status, expiry, metadata and owner, its agent's record, each message with its
    seq, timestamp and metadata, every agent-state version) and an integrity line, so
    `mofa session import` restores it exactly into any store. It keeps the seeds' shape
    ("session_id", "created_at", "metadata" with agent_id and user_id, "messages" with
    role, content and timestamp); times are UTC with microseconds. Filters combine (AND)
    and need -f jsonl: one stream of sessions, oldest first. The file is written
    atomically and streamed; with -o - it goes to stdout, progress to stderr.

    \b
    Examples:
      mofa session export agent-001:session-123 -o session.json --format json
      mofa session export agent-001:session-123 -o - -f json | jq '.messages | length'
      mofa session export --tenant acme -o acme.jsonl -f jsonl     # a tenant backup
    """
    kind = cast(ExportFormat, export_format.lower())
    many = any(value is not None for value in (agent_id, user_id, tenant_id))
    if session_id is not None and many:
        raise click.UsageError("Give a SESSION_ID or --agent/--user/--tenant, not both.", ctx)
    if session_id is None and not many:
        raise click.UsageError(
            "Give the SESSION_ID to export, or --agent/--user/--tenant to export many.", ctx
        )
    if many and kind != "jsonl":
        raise click.UsageError(
            f"Several sessions go into one stream: use -f jsonl, not -f {kind}.", ctx
        )
    choice = store_choice(ctx)
    to_stdout = str(output_path) == "-"

    async def export() -> tuple[int, int]:
        async with await open_existing_store(choice) as store:
            if session_id is not None and await store.get_session(session_id) is None:
                raise CommandError(f"Session not found: {shown_id(session_id)}")
            try:
                if to_stdout:
                    sys.stdout.flush()
                    return await write(store, sys.stdout.buffer)
                # Private: a session's conversation is nobody else's to read.
                with atomic_text_file(output_path, mode=0o600, make_parents=True) as handle:
                    text = cast(TextIO, handle)
                    text.flush()
                    return await write(store, text.buffer)
            except OSError as exc:
                if isinstance(exc, PersistenceError):
                    raise
                raise CommandError(cannot_write("export", output_path, exc)) from exc

    async def write(store: BaseStore, output: IO[bytes]) -> tuple[int, int]:
        if session_id is not None:
            try:
                count = await export_session(store, session_id, output, format=kind)
            except SessionNotFoundError:  # deleted meanwhile
                raise CommandError(f"Session not found: {shown_id(session_id)}") from None
            output.flush()
            return 1, count
        totals = await export_sessions(
            store, output, agent_id=agent_id, user_id=user_id, tenant_id=tenant_id
        )
        output.flush()
        return totals.sessions, totals.messages

    if session_id is not None:
        _progress(f"→ Exporting session: {shown_id(session_id)}")
    else:
        _progress(f"→ Exporting sessions: {_filters(agent_id, user_id, tenant_id)}")
    _progress(f"  Format: {kind}")
    _progress(f"  Output: {'stdout' if to_stdout else output_path}")
    sessions, messages = run(export, url=choice.url)
    if session_id is not None:
        _progress(f"  ✓ Exported {_plural(messages, 'message')}")
        _progress("✓ Session exported successfully")
    else:
        _progress(f"  ✓ Exported {_plural(sessions, 'session')}, {_plural(messages, 'message')}")
        _progress("✓ Sessions exported successfully")


# ---------------------------------------------------------------------------- import


def _report(result: ImportResult) -> None:
    shown = "?" if result.session_id is None else shown_id(result.session_id)
    if result.outcome == "failed":
        _progress(f"  ✗ {result.error}")
    elif result.outcome == "skipped":
        _progress(f"  - {shown}: skipped, the store has a session of that id")
    else:
        _progress(f"  ✓ {shown}: {result.outcome}, {_plural(result.messages, 'message')}")


@click.command("import")
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    metavar="FILE...",
)
@click.option(
    "--on-conflict",
    type=click.Choice(["fail", "skip", "replace"], case_sensitive=False),
    default="fail",
    show_default=True,
    help="When the store has a session of the same id: fail that session, skip it "
    "(a re-import changes nothing), or replace it (atomically).",
)
@click.option(
    "--session-id",
    "new_session_id",
    metavar="NEW_ID",
    help="Import the file's one session under this id (a copy beside the original).",
)
@click.option(
    "-f",
    "--format",
    "import_format",
    type=click.Choice(["json", "yaml", "jsonl"], case_sensitive=False),
    help="The files' format (default: seen from each file's start).",
)
@click.pass_context
def import_command(
    ctx: click.Context,
    files: tuple[Path, ...],
    on_conflict: str,
    new_session_id: str | None,
    import_format: str | None,
) -> None:
    """Import sessions from mofa-session/1 files (what `mofa session export` writes).

    Each session is imported exactly (ids, seq, timestamps, state versions, times) and
    atomically: a damaged, truncated or changed file (the integrity line is checked), a
    wrong format version or a value the store refuses leaves nothing of that session
    written. Each session succeeds or fails on its own; each is reported on stderr, and the
    exit code is 1 if any failed. An agent record the store has is left as it is. - reads
    stdin. The store must exist (`mofa db init` makes a database's tables); the default
    file store is created on first use. json and yaml files are read whole (up to 256 MiB
    and 32 MiB); jsonl streams at any size.

    \b
    Examples:
      mofa session export agent-001:session-123 -o s.json -f json \\
        && mofa session import s.json --on-conflict skip
      mofa session export agent-001:session-123 -o - -f jsonl \\
        | mofa session import - --session-id copy-123
      mofa session export --agent agent-001 -o a.jsonl -f jsonl \\
        && mofa session import a.jsonl --on-conflict replace
    """
    if new_session_id is not None and len(files) > 1:
        raise click.UsageError("--session-id names one session: give one FILE.", ctx)
    choice = store_choice(ctx)
    kind = None if import_format is None else cast(ExportFormat, import_format.lower())
    policy = cast(Literal["fail", "skip", "replace"], on_conflict.lower())

    async def import_all() -> list[ImportResult]:
        results: list[ImportResult] = []
        async with await open_store_to_write(choice) as store:
            for path in files:
                name = "stdin" if str(path) == "-" else str(path)
                try:
                    # Read in the event loop, in blocking reads, like the records (see
                    # mofa.persistence.transfer): an import has nothing else to run.
                    stream = sys.stdin.buffer if str(path) == "-" else open(path, "rb")  # noqa: ASYNC230, SIM115
                except OSError as exc:
                    reason = exc.strerror or str(exc)
                    result = ImportResult(name, None, "failed", error=f"{name}: {reason}")
                    results.append(result)
                    _report(result)
                    continue
                try:
                    for result in await import_sessions(
                        store,
                        stream,
                        name=name,
                        format=kind,
                        on_conflict=policy,
                        session_id=new_session_id,
                    ):
                        results.append(result)
                        _report(result)
                finally:
                    if stream is not sys.stdin.buffer:
                        stream.close()
        return results

    _progress(f"→ Importing {_plural(len(files), 'file')}")
    results = run(import_all, url=choice.url)
    done = [r for r in results if r.outcome in ("imported", "replaced")]
    skipped = sum(r.outcome == "skipped" for r in results)
    failed = sum(r.outcome == "failed" for r in results)
    messages = sum(r.messages for r in done)
    summary = f"{_plural(len(done), 'session')} imported ({_plural(messages, 'message')})"
    if skipped:
        summary += f", {skipped} skipped"
    if failed:
        raise CommandError(
            f"{summary}; {failed} failed, and nothing of {'it' if failed == 1 else 'them'} "
            "was written."
        )
    _progress(f"✓ {summary[0].upper()}{summary[1:]}")
