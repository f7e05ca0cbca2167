"""``mofa session``: list, show, export, import and delete stored sessions.

Each command resolves the store (see :mod:`mofa.cli._store`), makes its library calls and
hands plain dictionaries to :mod:`mofa.cli._render`. Data (a table, JSON, YAML) goes to stdout
alone, so it pipes into ``jq`` or a file; progress lines, the delete prompt and errors (one
``Error: …`` line) go to stderr.
"""

from __future__ import annotations

import sys
from typing import Any, Literal, cast

import click

from mofa.cli._errors import CommandError, run
from mofa.cli._prompt import ask_yes_no
from mofa.cli._render import (
    DocumentWriter,
    plain_time,
    render,
    render_session_table,
    shown_id,
)
from mofa.cli._store import StoreChoice, choice_of, open_existing_store
from mofa.cli._transfer import export_command, import_command
from mofa.persistence import (
    BaseStore,
    InvalidInputError,
    InvalidURLError,
    Message,
    PermissionDeniedError,
    Session,
    SessionNotFoundError,
)

#: ``session delete`` exit codes, as the seeds' table gives them.
EXIT_DELETED, EXIT_NOT_FOUND, EXIT_PERMISSION_DENIED, EXIT_DELETE_FAILED = 0, 1, 2, 3
#: Messages read per query while streaming a session's history.
BATCH_SIZE = 1000


@click.group()
def session() -> None:
    """Session management: list, show, export, import and delete conversation sessions."""


def _choice(ctx: click.Context) -> StoreChoice:
    return choice_of(ctx)


session.add_command(export_command)
session.add_command(import_command)


def _progress(line: str) -> None:
    """A progress line (the seeds' "→ …" and "✓ …"): to stderr, so stdout holds only data."""
    click.echo(line, err=True)


def _not_found(session_id: str) -> CommandError:
    return CommandError(f"Session not found: {shown_id(session_id)}", EXIT_NOT_FOUND)


async def _get_session(store: BaseStore, session_id: str) -> Session:
    found = await store.get_session(session_id)
    if found is None:
        raise _not_found(session_id)
    return found


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


def _limit(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``--limit``: a whole number of 1 or more, refused in one sentence that names it."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < 1:
        shown = repr(value) if number is None else str(number)
        raise click.UsageError(f"--limit must be a whole number of 1 or more, not {shown}.", ctx)
    return number


@session.command("list")
@click.option(
    "-a",
    "--agent",
    "agent_id",
    metavar="AGENT_ID",
    help="Only sessions of this agent (default: all).",
)
@click.option(
    "-n",
    "--limit",
    callback=_limit,
    metavar="N",
    help="At most N sessions, newest first (default: all).",
)
@click.option(
    "--output-format",
    type=click.Choice(["table", "json"], case_sensitive=False),
    default="table",
    show_default=True,
    help="table, or json for scripts.",
)
@click.pass_context
def list_command(
    ctx: click.Context, agent_id: str | None, limit: int | None, output_format: str
) -> None:
    """List conversation sessions, newest first.

    \b
    Examples:
      mofa session list --agent my-agent --limit 10
      mofa session list --output-format json | jq -r '.[].session_id'
    """
    output_format = output_format.lower()
    choice = _choice(ctx)

    async def fetch() -> list[Session]:
        async with await open_existing_store(choice) as store:
            return await store.list_sessions(agent_id=agent_id, limit=limit)

    if output_format == "table":
        # JSON mode prints nothing but the document: stdout stays parseable, stderr quiet
        # (a script sees only errors there). The table's progress lines go to stderr too.
        _progress("→ Listing sessions")
        if agent_id is not None:
            _progress(f"  Filtering by agent: {shown_id(agent_id)}")
        if limit is not None:
            _progress(f"  Limit: {limit}")
    sessions = run(fetch, url=choice.url)
    rows = [
        {
            "session_id": found.session_id,
            "created_at": plain_time(found.created_at),
            "message_count": found.message_count,
            "status": found.effective_status,
        }
        for found in sessions
    ]
    if output_format == "json":
        click.echo(render(rows, "json"))
        return
    _progress("")
    click.echo(render(rows, "table") if rows else "No sessions found.")


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
@click.option(
    "-f",
    "--format",
    "-o",
    "output_format",
    type=click.Choice(["table", "json", "yaml"], case_sensitive=False),
    default="table",
    show_default=True,
    help="Output format (-o is accepted for backward compatibility).",
)
@click.pass_context
def show_command(ctx: click.Context, session_id: str, output_format: str) -> None:
    """Show a session's details and its conversation.

    \b
    Examples:
      mofa session show agent-001:session-123
      mofa session show agent-001:session-123 --format json | jq '.messages[]'
    """
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
            messages = store.iter_messages(session_id, batch_size=BATCH_SIZE)
            if output_format == "table":
                header["messages"] = [_message_entry(message) async for message in messages]
                click.echo(render_session_table(header))
                return
            # JSON / YAML: streamed to stdout, one message at a time.
            stdout = sys.stdout
            writer = DocumentWriter(cast(Literal["json", "yaml"], output_format), stdout.write)
            writer.start(header, "messages")
            async for message in messages:
                writer.add(_message_entry(message))
            writer.finish()
            stdout.flush()

    run(show, url=choice.url)


# ---------------------------------------------------------------------------- delete


def _delete_exit_code(exc: Exception) -> int:
    if isinstance(exc, InvalidURLError):
        return EXIT_DELETE_FAILED
    if isinstance(exc, SessionNotFoundError | InvalidInputError):
        return EXIT_NOT_FOUND  # an id no store accepts names no session
    if isinstance(exc, PermissionDeniedError | PermissionError):
        return EXIT_PERMISSION_DENIED
    return EXIT_DELETE_FAILED


@session.command("delete")
@click.argument("session_id")
@click.option("--force", is_flag=True, help="Skip the confirmation prompt.")
@click.pass_context
def delete_command(ctx: click.Context, session_id: str, force: bool) -> None:
    """Delete a session and its conversation history.

    Asks for confirmation unless --force is given; without a terminal to ask on, it refuses.
    Exit codes: 0 deleted, 1 session not found, 2 permission denied, 3 not deleted (the
    delete failed, was declined, or had no terminal to confirm on and no --force).

    \b
    Examples:
      mofa session delete agent-001:session-123
      mofa session delete agent-001:session-123 --force
    """
    choice = _choice(ctx)

    async def look_up() -> Session:
        async with await open_existing_store(choice) as store:
            return await _get_session(store, session_id)

    async def delete() -> None:
        async with await open_existing_store(choice) as store:
            _progress("  Removing session data...")
            if not await store.delete_session(session_id):
                raise _not_found(session_id)  # deleted by someone else meanwhile

    _progress(f"→ Deleting session: {shown_id(session_id)}")
    if not force:
        # Looked up first: a missing session is "not found" (exit 1) with or without a
        # terminal. The store is closed while the question is open: with no other thread
        # running, Ctrl-C reaches the prompt at once.
        found = run(look_up, url=choice.url, exit_code_for=_delete_exit_code)
        if not sys.stdin.isatty():
            raise CommandError(
                f"Refusing to delete session {shown_id(session_id)} without confirmation: "
                "stdin is not a terminal; use --force.",
                EXIT_DELETE_FAILED,
            )
        _progress("")
        count = found.message_count
        _progress(f"Session contains {count} {'message' if count == 1 else 'messages'}.")
        _progress("This action cannot be undone.")
        _progress("")
        if not ask_yes_no("Delete session?"):
            raise CommandError("Cancelled; the session was not deleted.", EXIT_DELETE_FAILED)
        _progress("")
    run(
        delete,
        url=choice.url,
        exit_code_for=_delete_exit_code,
        interrupted=f"Interrupted; check with 'mofa session show {session_id}' whether the "
        "session was deleted.",
    )
    _progress("✓ Session deleted successfully")
