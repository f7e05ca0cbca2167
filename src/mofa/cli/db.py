"""``mofa db``: generate, print and apply the schema (to be completed)."""

from __future__ import annotations

import click


@click.group()
def db() -> None:
    """Database setup and migration tools for persistent storage backends."""
