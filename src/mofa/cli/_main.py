"""The root ``mofa`` group."""

from __future__ import annotations

import click

from mofa import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="mofa")
def cli() -> None:
    """MoFA: persistence for AI agents — sessions, history and state in a database.

    \b
    Commands:
      mofa db init -t postgres -o migration.sql     generate or run the schema
      mofa session list --limit 10                  list stored conversations
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mofa")
