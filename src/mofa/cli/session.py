"""``mofa session``: list, show, export and delete stored sessions (to be completed)."""

from __future__ import annotations

import click


@click.group()
def session() -> None:
    """Session management: list, show, export and delete conversation sessions."""
