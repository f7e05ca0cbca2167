"""The two ways to start the CLI: the ``mofa`` console script and ``python -m mofa``."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.cli.test_db import MOFA


@pytest.mark.parametrize(
    "command", [[str(MOFA)], [sys.executable, "-m", "mofa"]], ids=["script", "python-m"]
)
def test_both_entry_points_run_the_same_cli(command: list[str], tmp_path: Path) -> None:
    shown = subprocess.run(
        [*command, "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert shown.stdout == f"mofa, version {version('mofa-sdk')}\n"

    environment = {**os.environ, "MOFA_DATA_DIR": str(tmp_path)}
    environment.pop("MOFA_DATABASE_URL", None)
    listed = subprocess.run(
        [*command, "session", "list", "--output-format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=environment,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"
