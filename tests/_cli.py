"""Running the ``mofa`` CLI from tests: in-process through click's CliRunner (``mofa``), or
the installed console script in its own process, as a user runs it (``run_mofa``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from click.testing import CliRunner, Result

from mofa.cli import cli

#: The installed ``mofa`` console script of this interpreter's environment.
MOFA = Path(sys.executable).with_name("mofa")


def mofa(
    *args: str,
    url: str | None = None,
    input: str | None = None,
    env: Mapping[str, str | None] | None = None,
) -> Result:
    """Run ``mofa [--database-url URL] ARGS`` in-process (``env``: variables to set, or, as
    None, to unset)."""
    prefix = ["--database-url", url] if url is not None else []
    return CliRunner().invoke(cli, [*prefix, *args], prog_name="mofa", input=input, env=env)


def run_mofa(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``mofa ARGS`` to completion in its own process (text output)."""
    return subprocess.run(
        [str(MOFA), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(result: Result) -> str:
    """The single ``Error: …`` line a failed command printed: the last line on stderr (after
    the progress lines that may precede it there), and the only one starting ``Error: ``."""
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert errors == lines[-1:], result.stderr
    assert "Error: " not in result.stdout
    return lines[-1]


def assert_one_error_line(result: Result) -> str:
    """A command that failed with exit code 1 and one ``Error: …`` line."""
    assert result.exit_code == 1, result.output
    return one_error_line(result)
