"""``mofa session``: list, show, export, import, delete and prune stored sessions.

Each command resolves the store (see :mod:`mofa.cli._store`), makes its library calls and
hands plain dictionaries to :mod:`mofa.cli._render`. Data (a table, JSON, YAML) goes to stdout
alone, so it pipes into ``jq`` or a file; progress lines, the delete prompt and errors (one
``Error: …`` line) go to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, Literal, cast

import click

from mofa.cli._errors import run
from mofa.cli._formats import csv_cell, format_option, jsonl_line, write_records
from mofa.cli._lazy import LazyGroup
from mofa.cli._options import count_callback, time_callback
from mofa.cli._pager import paged, wants_pager
from mofa.cli._progress import say
from mofa.cli._render import (
    CONVERSATION_HEADERS,
    BoxLayout,
    DocumentWriter,
    conversation_cells,
    display_width,
    plain_time,
    session_header_lines,
    shown_id,
)
from mofa.cli._store import StoreChoice, get_session_or_exit, open_existing_store, store_choice
from mofa.persistence import (
    BaseStore,
    Message,
    Session,
)

#: Messages read per query while streaming a session's history.
BATCH_SIZE = 1000


@click.group(
    cls=LazyGroup,
    lazy={
        "export": (
            "mofa.cli._transfer",
            "export_command",
            "Export sessions losslessly (mofa-session/1: json, yaml or jsonl).",
        ),
        "import": (
            "mofa.cli._transfer",
            "import_command",
            "Import sessions from mofa-session/1 files, each atomically.",
        ),
        "delete": (
            "mofa.cli._session_delete",
            "delete_command",
            "Delete sessions and their conversation history.",
        ),
        "prune": (
            "mofa.cli._session_prune",
            "prune_command",
            "Delete old, expired or surplus sessions (a dry run unless --yes).",
        ),
    },
)
def session() -> None:
    """Session management: list, show, export, import, delete and prune conversation sessions."""


def _choice(ctx: click.Context) -> StoreChoice:
    return store_choice(ctx)


def _progress(line: str) -> None:
    """A progress line (the seeds' "→ …" and "✓ …"): to stderr, so stdout holds only data."""
    say(line)


async def _get_session(store: BaseStore, session_id: str) -> Session:
    return await get_session_or_exit(store, session_id)


#: The session's columns that the seeds' ``metadata`` shows beside the session's own keys.
_COLUMN_KEYS = ("agent_id", "user_id", "tenant_id")


def _metadata_fields(found: Session) -> dict[str, Any]:
    """The seeds' ``metadata`` — the agent_id and user_id columns (null when unset), the
    tenant_id column when set, then the session's own metadata — and, only when the session's
    own metadata has keys of those column names, ``shadowed_metadata`` holding them.

    Neither hides the other: in ``metadata`` agent_id, user_id and tenant_id are always the
    columns (tenant_id absent means the column is unset), and every stored key of the
    session's own metadata is in one of the two mappings, with its value.
    """
    metadata: dict[str, Any] = {"agent_id": found.agent_id, "user_id": found.user_id}
    if found.tenant_id is not None:
        metadata["tenant_id"] = found.tenant_id
    shadowed: dict[str, Any] = {}
    for key, value in found.metadata.items():
        (shadowed if key in _COLUMN_KEYS else metadata)[key] = value
    if shadowed:
        return {"metadata": metadata, "shadowed_metadata": shadowed}
    return {"metadata": metadata}


# ------------------------------------------------------------------------------ list

#: ``session list``'s columns, and those ``--columns`` may add.
LIST_COLUMNS = ("session_id", "created_at", "message_count", "status")
EXTRA_COLUMNS = ("agent_id", "user_id", "tenant_id", "updated_at", "expires_at")


def _columns(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    """``--columns a,b`` (or the option given several times): extra columns, in that order."""
    wanted: list[str] = []
    for item in value:
        for name in filter(None, (part.strip() for part in item.split(","))):
            if name not in EXTRA_COLUMNS:
                raise click.BadParameter(
                    f"no column {name!r}; choose from {', '.join(EXTRA_COLUMNS)}.",
                    ctx,
                    param,
                    param_hint="'--columns'",
                )
            if name not in wanted:
                wanted.append(name)
    return wanted


@session.command("list")
@click.option("-a", "--agent", "agent_id", metavar="AGENT_ID", help="Only this agent's sessions.")
@click.option("--user", "user_id", metavar="USER_ID", help="Only this user's sessions.")
@click.option("--tenant", "tenant_id", metavar="TENANT_ID", help="Only this tenant's sessions.")
@click.option("--status", metavar="STATUS", help="Only sessions with this stored status.")
@click.option(
    "--since",
    metavar="WHEN",
    callback=time_callback,
    help="Only sessions created at or after WHEN: 7d, 24h, 30m (ago) or an ISO date/time.",
)
@click.option(
    "--until",
    metavar="WHEN",
    callback=time_callback,
    help="Only sessions created before WHEN (same forms as --since).",
)
@click.option(
    "-n",
    "--limit",
    callback=count_callback,
    metavar="N",
    help="At most N sessions, newest first (default: all).",
)
@click.option(
    "--offset", callback=count_callback, metavar="N", help="Skip the N newest matches first."
)
@click.option(
    "--columns",
    multiple=True,
    callback=_columns,
    metavar="COLUMNS",
    help="Add columns (comma-separated): " + ", ".join(EXTRA_COLUMNS) + ".",
)
@format_option("--output-format")
@click.pass_context
def list_command(
    ctx: click.Context,
    agent_id: str | None,
    user_id: str | None,
    tenant_id: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    offset: int | None,
    columns: list[str],
    output_format: str,
) -> None:
    """List conversation sessions, newest first.

    Filters combine (AND); the store runs them in its query. --output-format is the
    seeds' name of --format and stays as an alias.

    \b
    Examples:
      mofa session list --agent my-agent --limit 10
      mofa session list --user user-456 --since 7d --columns agent_id,updated_at
      mofa session list --status active --until 2024-03-01 --format csv > sessions.csv
      mofa session list --output-format json | jq -r '.[].session_id'
      mofa session list -f jsonl | jq -r .session_id
    """
    output_format = output_format.lower()
    choice = _choice(ctx)
    shown = [*LIST_COLUMNS, *columns]

    async def fetch() -> list[Session]:
        async with await open_existing_store(choice) as store:
            return await store.list_sessions(
                agent_id=agent_id,
                user_id=user_id,
                tenant_id=tenant_id,
                status=status,
                since=since,
                until=until,
                limit=limit,
                offset=offset or 0,
            )

    if output_format == "table":
        # The machine formats print nothing but the data: stdout stays parseable, stderr
        # quiet (a script sees only errors there). The table's status lines go to stderr.
        _progress("→ Listing sessions")
        for label, value in (
            ("agent", agent_id),
            ("user", user_id),
            ("tenant", tenant_id),
            ("status", status),
        ):
            if value is not None:
                _progress(f"  Filtering by {label}: {shown_id(value)}")
        if since is not None or until is not None:
            start = "…" if since is None else plain_time(since)
            end = "…" if until is None else plain_time(until)
            _progress(f"  Created: {start} to {end} (UTC)")
        if limit is not None:
            _progress(f"  Limit: {limit}")
        if offset:
            _progress(f"  Offset: {offset}")
    sessions = run(fetch, url=choice.url)
    rows = (
        {
            "session_id": found.session_id,
            "created_at": found.created_at,
            "message_count": found.message_count,
            "status": found.effective_status,
            "agent_id": found.agent_id,
            "user_id": found.user_id,
            "tenant_id": found.tenant_id,
            "updated_at": found.updated_at,
            "expires_at": found.expires_at,
        }
        for found in sessions
    )
    if output_format == "table":
        _progress("")
    write_records(
        rows,
        output_format,
        _stdout_write,
        columns=shown,
        empty_table="No sessions found.",
    )


def _stdout_write(text: str) -> None:
    sys.stdout.write(text)


# ------------------------------------------------------------------------------ show


def _message_entry(message: Message) -> dict[str, Any]:
    """A message as ``session show`` prints it; its metadata (model, usage, a ``partial`` or
    ``failed`` status…) follows when it has any."""
    entry: dict[str, Any] = {
        "timestamp": message.timestamp,
        "role": message.role.value,
        "content": message.content,
    }
    if message.metadata:
        entry["metadata"] = message.metadata
    return entry


@session.command("show")
@click.argument("session_id")
@format_option("-o")
@click.option("--head", callback=count_callback, metavar="N", help="Only the first N messages.")
@click.option("--tail", callback=count_callback, metavar="N", help="Only the last N messages.")
@click.option(
    "--no-pager", is_flag=True, help="Never page the table (a pager runs only on a terminal)."
)
@click.pass_context
def show_command(
    ctx: click.Context,
    session_id: str,
    output_format: str,
    head: int | None,
    tail: int | None,
    no_pager: bool,
) -> None:
    """Show a session's details and its conversation.

    The table of a conversation longer than the terminal goes through a pager ($MOFA_PAGER,
    $PAGER or less) when stdout is a terminal, never in a pipe. json and yaml print the
    session with its messages; jsonl and csv print its messages alone, one per line/row.
    With --head or --tail the messages are trimmed and message_count stays the total.
    Messages are read in batches, never all at once. -o is the seeds' alias of --format.

    \b
    Examples:
      mofa session show agent-001:session-123
      mofa session show agent-001:session-123 --tail 20
      mofa session show agent-001:session-123 --format json | jq '.messages[]'
      mofa session show agent-001:session-123 -f csv > conversation.csv
    """
    if head is not None and tail is not None:
        raise click.UsageError("--head and --tail cannot be combined; give one of them.", ctx)
    output_format = output_format.lower()
    choice = _choice(ctx)

    async def show() -> None:
        async with await open_existing_store(choice) as store:
            found = await _get_session(store, session_id)
            header = {
                "session_id": found.session_id,
                "created_at": found.created_at,
                "message_count": found.message_count,
                "status": found.effective_status,
                **_metadata_fields(found),
            }

            def messages() -> AsyncIterator[Message]:
                return _shown_messages(store, session_id, head, tail)

            if output_format == "table":
                shown = found.message_count if head is None and tail is None else head or tail
                lines = len(session_header_lines(header)) + 4 + min(shown or 0, 10**9)
                with paged(wants_pager(lines, enabled=not no_pager)) as write:
                    await _write_conversation(header, messages, found.message_count, write)
                return
            stdout = sys.stdout
            if output_format in ("json", "yaml"):
                writer = DocumentWriter(cast(Literal["json", "yaml"], output_format), stdout.write)
                writer.start(header, "messages")
                async for message in messages():
                    writer.add(_message_entry(message))
                writer.finish()
            elif output_format == "jsonl":
                async for message in messages():
                    stdout.write(jsonl_line(_message_entry(message)))
            else:
                import csv

                rows = csv.writer(stdout, lineterminator="\n")
                rows.writerow(_CSV_MESSAGE_COLUMNS)
                async for message in messages():
                    entry = _message_entry(message)
                    rows.writerow([csv_cell(entry.get(key)) for key in _CSV_MESSAGE_COLUMNS])
            stdout.flush()

    run(show, url=choice.url)


#: ``session show -f csv``'s columns (a message's metadata as JSON; empty when it has none).
_CSV_MESSAGE_COLUMNS = ("timestamp", "role", "content", "metadata")


async def _shown_messages(
    store: BaseStore, session_id: str, head: int | None, tail: int | None
) -> AsyncIterator[Message]:
    """The messages ``show`` prints: all, the first ``head`` or the last ``tail``, in order."""
    if tail is not None:
        for message in await store.list_recent_messages(session_id, limit=tail):
            yield message
        return
    if head == 0:
        return
    size = BATCH_SIZE if head is None else min(head, BATCH_SIZE)
    count = 0
    async for message in store.iter_messages(session_id, batch_size=size):
        yield message
        count += 1
        if count == head:
            return


async def _write_conversation(
    header: dict[str, Any],
    messages: Callable[[], AsyncIterator[Message]],
    total: int,
    write: Callable[[str], object],
) -> None:
    """The table view, a row at a time: a long conversation is read twice (once to measure
    its columns, once to print), never held whole."""
    write("\n".join(session_header_lines(header)) + "\n")
    cells: list[list[str]] | None = []
    layout = BoxLayout.measure(CONVERSATION_HEADERS, [])
    async for message in messages():
        row = conversation_cells(_message_entry(message))
        widths = zip(layout.widths, map(display_width, row), strict=True)
        layout = BoxLayout([max(pair) for pair in widths])
        if cells is not None:
            cells.append(row)
            if len(cells) > BATCH_SIZE:
                cells = None  # too many to keep: read them again to print
    if cells == []:
        write("No messages.\n")
        return
    write("\n".join(layout.head(CONVERSATION_HEADERS)) + "\n")
    if cells is not None:
        for row in cells:
            write(layout.row(row) + "\n")
    else:
        async for message in messages():
            write(layout.row(conversation_cells(_message_entry(message))) + "\n")
    write(layout.bottom() + "\n")
