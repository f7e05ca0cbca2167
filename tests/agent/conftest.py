"""Fixtures of the agent tests: the local LLM server and the child-process runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.llm_server import LLMServer, llm_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def llm() -> Iterator[LLMServer]:
    with llm_server() as server:
        yield server


def child_env(base_url: str | None = None) -> dict[str, str]:
    """The environment of a child agent process: never a hosted LLM."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "MOFA_MODEL", "MOFA_LLM_PROVIDER"))
    }
    env["PYTHONPATH"] = str(ROOT)
    if base_url is not None:
        env["OPENAI_BASE_URL"] = base_url
        env["OPENAI_API_KEY"] = "sk-test-child"
    else:
        env["MOFA_LLM_PROVIDER"] = "offline"  # asked for, as a deployment without a model would
    return env


def run_child(*args: str, base_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``tests/agent/child_agent.py`` to completion in its own OS process."""
    return subprocess.run(
        [sys.executable, "-m", "tests.agent.child_agent", *args],
        cwd=ROOT,
        env=child_env(base_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
