"""``mofa info``: which store the CLI resolved and why, what it is, and what it holds.

The counts come from the counters the store keeps on write (``store.get_counts()``): no
message is read, whatever the store's size. The URL is shown masked.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from mofa.cli._errors import CommandError, run
from mofa.cli._formats import format_option
from mofa.cli._render import to_json
from mofa.cli._store import (
    DATABASE_URL_VARIABLE,
    GENERIC_URL_VARIABLE,
    StoreChoice,
    open_existing_store,
    store_choice,
)

__all__ = ["describe_source", "info", "store_paths"]

#: Why a store was picked, by the source :func:`~mofa.cli._store.resolve_store` names.
_SOURCES = {
    "--database-url": "the --database-url option",
    DATABASE_URL_VARIABLE: f"${DATABASE_URL_VARIABLE}",
    GENERIC_URL_VARIABLE: f"${GENERIC_URL_VARIABLE} (after agent.yml, which sets none)",
    "default": "no URL anywhere: the local file store (--database-url, $MOFA_DATABASE_URL, "
    "agent.yml and $DATABASE_URL are all unset)",
}


def describe_source(choice: StoreChoice) -> str:
    """Why the CLI opens ``choice``, in words."""
    return _SOURCES.get(choice.source, f"persistence.database in {choice.source}")


def store_paths(choice: StoreChoice) -> dict[str, str]:
    """The files behind a store: a SQLite database file, or a file store's directory (none
    for a URL that does not parse: opening it reports that)."""
    from mofa.persistence import InvalidURLError, parse_url

    try:
        parsed = parse_url(choice.url)
    except InvalidURLError:
        return {}
    path = parsed.path or ""
    if parsed.backend == "sqlite" and path and path != ":memory:":
        return {"database_file": os.path.abspath(os.path.expanduser(path))}
    if parsed.backend == "files":
        return {"directory": os.path.abspath(os.path.expanduser(path))}
    return {}


@click.command("info")
@format_option(formats=("table", "json", "yaml"))
@click.pass_context
def info(ctx: click.Context, output_format: str) -> None:
    """Which store the CLI uses and why, its backend and schema, and what it holds.

    The store is the first of: mofa --database-url, $MOFA_DATABASE_URL, persistence.database
    in agent.yml (--config), $DATABASE_URL, the local file store. Counts come from the
    counters kept on write; no message is read. Passwords are shown as ****.

    \b
    Examples:
      mofa info
      mofa --database-url sqlite://./mofa.db info --format json | jq .sessions
    """
    from mofa.persistence import InvalidURLError, parse_url, schema
    from mofa.persistence._registry import display_name

    output_format = output_format.lower()
    choice = store_choice(ctx)
    try:
        backend = parse_url(choice.url).backend
    except InvalidURLError as exc:  # the message shows the URL masked
        raise CommandError(str(exc)) from None
    facts: dict[str, Any] = {
        "store": choice.masked,
        "source": choice.source,
        "chosen_because": describe_source(choice),
        "backend": display_name(backend),
        **store_paths(choice),
    }

    async def count() -> dict[str, int]:
        async with await open_existing_store(choice) as store:
            counts = await store.get_counts()
        return {"agents": counts.agents, "sessions": counts.sessions, "messages": counts.messages}

    try:
        counts = run(count, url=choice.url)
    except CommandError:
        _print(facts, output_format)  # what is known, then the one error line
        raise
    # A SQL store opens only at the current schema version (an older one is refused, and
    # `mofa db init` upgrades it): it is this one.
    facts["schema_version"] = schema.latest_version(backend) if backend in schema.DIALECTS else None
    facts.update(counts)
    if choice.source == "default" and not _default_made(facts):
        facts["note"] = "the default store is empty: nothing has been stored there yet"
    _print(facts, output_format)


def _default_made(facts: dict[str, Any]) -> bool:
    from mofa.persistence.locations import STORE_MARKER

    directory = facts.get("directory")
    return isinstance(directory, str) and os.path.isfile(os.path.join(directory, STORE_MARKER))


_LABELS = {
    "store": "Store",
    "chosen_because": "Chosen by",
    "backend": "Backend",
    "schema_version": "Schema version",
    "database_file": "Database file",
    "directory": "Directory",
    "agents": "Agents",
    "sessions": "Sessions",
    "messages": "Messages",
    "note": "Note",
}


def _print(facts: dict[str, Any], output_format: str) -> None:
    if output_format == "json":
        sys.stdout.write(to_json(facts) + "\n")
        return
    if output_format == "yaml":
        from mofa.cli._render import to_yaml

        sys.stdout.write(to_yaml(facts))
        return
    width = max(len(label) for label in _LABELS.values()) + 1
    for key, label in _LABELS.items():
        value = facts.get(key)
        if key == "schema_version" and value is None and "agents" in facts:
            value = "- (not a SQL database)"
        if value is not None:
            click.echo(f"{label + ':':<{width}} {value}")
