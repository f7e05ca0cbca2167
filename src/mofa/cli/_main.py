"""The root ``mofa`` group and its global options.

Start-up is kept to click and this module: the command groups (``db``, ``info``,
``session``) are imported when one of them runs, or its own ``--help`` is asked for, never
for ``mofa --version`` or ``mofa --help`` (a test pins the modules those import). The store,
asyncio, YAML and the database drivers load only when a command needs them.
"""

from __future__ import annotations

import codecs
import io
import sys
from typing import Any

import click

from mofa import __version__
from mofa.cli._errors import EXIT_INTERRUPTED, CommandError
from mofa.cli._lazy import LazyGroup

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Each command of ``mofa``: the module and name that define it, and its line in ``--help``.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "db": (
        "mofa.cli.db",
        "db",
        "Database setup: print, save or apply the schema; check a store (doctor).",
    ),
    "info": ("mofa.cli.info", "info", "Which store the CLI uses and why, and what it holds."),
    "session": (
        "mofa.cli.session",
        "session",
        "Session management: list, show, export, delete and prune sessions.",
    ),
}


class GlobalOptions:
    """What the root group parsed; commands reach it through ``click.get_current_context().obj``."""

    __slots__ = ("config_path", "database_url")

    def __init__(self, database_url: str | None, config_path: str | None) -> None:
        self.database_url = database_url  # it may hold a password: not in repr()
        self.config_path = config_path

    def __repr__(self) -> str:
        return f"GlobalOptions(config_path={self.config_path!r})"


class _RootGroup(LazyGroup):
    """The ``mofa`` group: commands load on first use; Ctrl-C anywhere in a command exits 130
    with one line.

    click would print "Aborted!" and exit 1 for a Ctrl-C outside :func:`~mofa.cli._errors.run`
    (while a command reads its configuration, say), as if the command had failed.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise CommandError("Interrupted.", EXIT_INTERRUPTED) from None


@click.group(cls=_RootGroup, lazy=COMMANDS, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="mofa")
@click.option(
    "--database-url",
    metavar="URL",
    help="Store to use (postgres://…, mysql://…, sqlite://…, file:///dir). "
    "Default: $MOFA_DATABASE_URL, else persistence.database in agent.yml, "
    "else $DATABASE_URL, else the local file store. `mofa info` says which was picked.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Agent configuration to read the database from (default: ./agent.yml if present).",
)
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, config_path: str | None) -> None:
    """MoFA: persistence for AI agents — sessions, history and state in a database.

    \b
    Examples:
      mofa db init -t postgres -o migration.sql
      mofa session list --limit 10
      mofa --database-url sqlite://./mofa.db session show SESSION_ID --format json
      mofa info

    \b
    Shell completion (bash; zsh and fish alike, with _MOFA_COMPLETE=zsh_source / fish_source):
      eval "$(_MOFA_COMPLETE=bash_source mofa)"
    """
    ctx.obj = GlobalOptions(database_url=database_url, config_path=config_path)


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
    cli(prog_name="mofa")
