"""The root ``mofa`` group and its global options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from mofa import __version__
from mofa.cli.db import db
from mofa.cli.session import session

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """What the root group parsed; commands reach it through ``click.get_current_context().obj``."""

    database_url: str | None
    config_path: Path | None


@click.group(context_settings=CONTEXT_SETTINGS)
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mofa")
