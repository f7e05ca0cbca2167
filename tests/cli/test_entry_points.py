"""The two ways to start the CLI: the ``mofa`` console script and ``python -m mofa``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from mofa.persistence import open_store
from tests._cli import MOFA


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


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_terminal_that_is_not_utf8_gets_escapes_not_a_traceback(
    encoding: str, tmp_path: Path
) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    text = "héllo 😀 中文"

    async def seed() -> None:
        async with await open_store(url) as store:
            await store.create_session("会话")
            await store.append_message("会话", "user", text)

    asyncio.run(seed())
    environment = {**os.environ, "PYTHONIOENCODING": encoding}
    readable = (
        ["session", "list"],
        ["session", "show", "会话"],
        ["session", "show", "会话", "-o", "yaml"],
    )
    for args in readable:
        shown = subprocess.run(
            [str(MOFA), "--database-url", url, *args],
            capture_output=True,
            env=environment,
            timeout=120,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert b"Traceback" not in shown.stderr
        if args[-1] != "yaml":
            assert b"+-" in shown.stdout  # the table is drawn in ASCII, not in escapes
    as_json = subprocess.run(
        [str(MOFA), "--database-url", url, "session", "show", "会话", "-f", "json"],
        capture_output=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert as_json.returncode == 0, as_json.stderr
    document = as_json.stdout.decode(encoding)  # only characters the terminal can show
    assert json.loads(document)["messages"][0]["content"] == text
