"""The ``mofa`` command line: ``mofa db …`` and ``mofa session …``.

One module per command group; each command parses its options, makes one library call and
renders the result. Data goes to stdout, progress and errors to stderr.
"""

from __future__ import annotations

from mofa.cli._main import cli, main

__all__ = ["cli", "main"]
