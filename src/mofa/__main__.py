"""``python -m mofa``: the ``mofa`` command, for environments where the script is not on PATH."""

from mofa.cli import main

main()
