"""``make demo`` end to end (in a temporary directory): two processes, then the session CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.conftest import ROOT, child_env


@pytest.mark.sqlite
@pytest.mark.slow
def test_the_demo_resumes_in_a_second_process_and_lists_the_session(tmp_path: Path) -> None:
    env = {**child_env(), "MOFA_DEMO_DIR": str(tmp_path / "demo")}
    del env["MOFA_LLM_PROVIDER"]  # the demo asks for offline itself, and says so
    runs = [
        subprocess.run(
            [sys.executable, str(ROOT / "examples" / "demo.py")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for _ in range(2)  # re-running starts from a clean database
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
        out = run.stdout
        assert "provider: offline" in out
        assert run.stderr.splitlines()[0] == (
            "demo: neither OPENAI_API_KEY nor OPENAI_BASE_URL is set; using the offline echo "
            "provider (MOFA_LLM_PROVIDER=offline)."
        )
        # Keys in the one order every backend returns (shorter first, then alphabetical).
        assert "loaded 4 earlier messages and state {'topic': 'tea', 'turns': 2, 'user_name'" in out
        assert "I see 2 earlier turns in this conversation (it began with" in out
        assert "$ mofa --database-url" in out
        session_id = out.split("new session ")[1].split()[0]
        assert f"resumed session {session_id}" in out
        listing = out.split("session list")[1].split("$ mofa")[0]
        assert session_id in listing
        assert "│ 6 " in listing
        assert f"Session: {session_id}" in out
    assert (
        runs[0].stdout.split("new session ")[1][:36] != runs[1].stdout.split("new session ")[1][:36]
    )
