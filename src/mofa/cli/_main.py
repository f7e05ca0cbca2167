"""The root ``mofa`` group and its global options."""

from __future__ import annotations

import codecs
import io
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from mofa import __version__
from mofa.cli._errors import EXIT_INTERRUPTED, CommandError
from mofa.cli.db import db
from mofa.cli.session import session

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """What the root group parsed; commands reach it through ``click.get_current_context().obj``."""

    database_url: str | None = field(repr=False)  # it may hold a password
    config_path: Path | None


class _RootGroup(click.Group):
    """The ``mofa`` group: Ctrl-C anywhere in a command exits 130 with one line.

    click would print "Aborted!" and exit 1 for a Ctrl-C outside :func:`~mofa.cli._errors.run`
    (while a command reads its configuration, say), as if the command had failed.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise CommandError("Interrupted.", EXIT_INTERRUPTED) from None


@click.group(cls=_RootGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="mofa")
@click.option(
    "--database-url",
    metavar="URL",
    help="Store to use (postgres://…, mysql://…, sqlite://…, file:///dir). "
    "Default: $MOFA_DATABASE_URL, else persistence.database in agent.yml, "
    "else the local file store.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Agent configuration to read the database from (default: ./agent.yml if present).",
)
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, config_path: Path | None) -> None:
    """MoFA: persistence for AI agents — sessions, history and state in a database.

    \b
    Examples:
      mofa db init -t postgres -o migration.sql
      mofa session list --limit 10
      mofa --database-url sqlite://./mofa.db session show SESSION_ID --format json
    """
    ctx.obj = GlobalOptions(database_url=database_url, config_path=config_path)


cli.add_command(db)
cli.add_command(session)


def _json_escape(error: UnicodeError) -> tuple[str, int]:
    """Characters the stream's encoding lacks, written as JSON ``\\uXXXX`` escapes (a pair
    for characters beyond the BMP), so JSON output stays valid JSON."""
    assert isinstance(error, UnicodeEncodeError)
    escaped = []
    for character in error.object[error.start : error.end]:
        code = ord(character)
        if code > 0xFFFF:
            code -= 0x10000
            escaped.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            escaped.append(f"\\u{code:04x}")
    return "".join(escaped), error.end


def _survive_narrow_terminals() -> None:
    """On a stream whose encoding is not UTF-8 (``PYTHONIOENCODING=latin-1``, an old locale),
    escape what it cannot show instead of failing part-way with a traceback."""
    codecs.register_error("mofa-json-escape", _json_escape)
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding not in ("utf8", "utf8sig") and isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="mofa-json-escape")


def main() -> None:
    """Console-script entry point."""
    _survive_narrow_terminals()
    # Errors reach the user as one "Error: …" line. Without a handler, asyncio's own log
    # records (a driver's "Future exception was never retrieved" after Ctrl-C cut a connect
    # short) would go to stderr through logging's last-resort handler, after that line.
    logging.getLogger("asyncio").addHandler(logging.NullHandler())
    cli(prog_name="mofa")
