"""``mofa session prune``: delete old, expired or surplus sessions — a dry run unless ``--yes``.

The library call is :meth:`~mofa.persistence.BaseStore.prune_sessions`: the store reads a
page of sessions at a time and deletes what it selects in short batches that re-check the
rule, so writers to other sessions never wait long and nothing holds the whole selection.
The sessions that go (or would go) are the data, on stdout in ``--format`` (the machine
formats a batch at a time); the summary and the progress go to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime

import click

from mofa.cli._errors import run
from mofa.cli._formats import RecordWriter, format_option
from mofa.cli._options import count_callback, time_callback
from mofa.cli._progress import Progress, say, success, warning
from mofa.cli._render import plain_time, shown_id
from mofa.cli._store import open_existing_store, store_choice
from mofa.persistence import PruneResult, Session

__all__ = ["PRUNE_COLUMNS", "prune_command"]

#: The columns of the sessions a prune lists.
PRUNE_COLUMNS = ("session_id", "agent_id", "updated_at", "message_count", "status")


@click.command("prune")
@click.option(
    "--older-than",
    "older_than",
    metavar="WHEN",
    callback=time_callback,
    help="Sessions whose last activity is before WHEN: 30d, 12h (ago) or an ISO date/time.",
)
@click.option("--expired", is_flag=True, help="Sessions past their expires_at.")
@click.option(
    "--keep-last",
    "keep_last",
    metavar="N",
    callback=count_callback,
    help="Keep each agent's N most recently created sessions.",
)
@click.option("-a", "--agent", "agent_id", metavar="AGENT_ID", help="Only this agent's sessions.")
@click.option("--user", "user_id", metavar="USER_ID", help="Only this user's sessions.")
@click.option("--tenant", "tenant_id", metavar="TENANT_ID", help="Only this tenant's sessions.")
@click.option("--yes", is_flag=True, help="Delete them (without it, only list what would go).")
@format_option()
@click.pass_context
def prune_command(
    ctx: click.Context,
    older_than: datetime | None,
    expired: bool,
    keep_last: int | None,
    agent_id: str | None,
    user_id: str | None,
    tenant_id: str | None,
    yes: bool,
    output_format: str,
) -> None:
    """Delete the sessions that match every condition given, with their messages and state.

    A dry run by default: lists what would go and deletes nothing; --yes deletes. At least
    one of --older-than, --expired and --keep-last is needed; --agent, --user and --tenant
    narrow it. Sessions go in short batches (other writers never wait long), each batch
    checking the conditions again, so a session that became active meanwhile stays.

    \b
    Examples:
      mofa session prune --older-than 30d
      mofa session prune --older-than 30d --yes
      mofa session prune --expired --tenant acme --yes
      mofa session prune --keep-last 100 --agent support-bot -f jsonl
    """
    if older_than is None and not expired and keep_last is None:
        raise click.UsageError(
            "Say which sessions to prune: --older-than, --expired and/or --keep-last "
            "(--agent, --user and --tenant only narrow them).",
            ctx,
        )
    output_format = output_format.lower()
    choice = store_choice(ctx)
    say("→ Pruning sessions" + ("" if yes else " (dry run: nothing is deleted)"))
    if older_than is not None:
        say(f"  Last activity before: {plain_time(older_than)} (UTC)")
    if expired:
        say("  Expired")
    if keep_last is not None:
        say(f"  Keeping each agent's {keep_last} newest")
    for label, value in (("agent", agent_id), ("user", user_id), ("tenant", tenant_id)):
        if value is not None:
            say(f"  Filtering by {label}: {shown_id(value)}")
    # The machine formats print each batch as it goes (nothing is held); a table keeps its
    # rows for their widths.
    records = RecordWriter(
        output_format, _write_stdout, columns=PRUNE_COLUMNS, empty_table="No sessions to prune."
    )
    progress = Progress("Deleting", unit="sessions")

    def on_batch(batch: Sequence[Session], dry_run: bool) -> None:
        for found in batch:
            records.add(
                {
                    "session_id": found.session_id,
                    "agent_id": found.agent_id,
                    "updated_at": found.updated_at,
                    "message_count": found.message_count,
                    "status": found.effective_status,
                }
            )
        if not dry_run:
            progress.advance(len(batch))

    async def prune() -> PruneResult:
        async with await open_existing_store(choice) as store:
            return await store.prune_sessions(
                older_than=older_than,
                expired=expired,
                keep_last=keep_last,
                agent_id=agent_id,
                user_id=user_id,
                tenant_id=tenant_id,
                dry_run=not yes,
                on_batch=on_batch,
            )

    try:
        result = run(prune, url=choice.url)
    except BaseException:
        if records.count:  # what went before the error, as a whole document
            _finish(records, output_format, progress if yes else None)
        raise
    _finish(records, output_format, progress if yes else None)
    counted = f"{result.sessions} sessions ({result.messages} messages)"
    if yes:
        say(success(f"✓ Deleted {counted}"))
    elif result.sessions:
        say(warning(f"Would delete {counted}; run again with --yes to delete them."))
    else:
        say("Nothing to prune.")


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)


def _finish(records: RecordWriter, output_format: str, progress: Progress | None) -> None:
    """End the progress line, then the records (a table after a blank line)."""
    if progress is not None and progress.done:
        progress.finish()
    if output_format == "table":
        say("")
    records.finish()
    sys.stdout.flush()
