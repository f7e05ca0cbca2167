"""Continuity across restarts, with real OS processes (``tests/agent/child_agent.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mofa.persistence import Role, new_session_id, open_store
from tests.agent.conftest import ROOT, child_env, run_child
from tests.agent.llm_server import LLMServer


def acks(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ACK ")]


async def check_continuation(url: str, llm: LLMServer) -> None:
    session_id = new_session_id()
    first = run_child(url, session_id, "My name is Ada", "I like tea", base_url=llm.base_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("RESUMED False 0 {}")
    assert len(acks(first.stdout)) == 2
    earlier = [message for request in llm.requests for message in request.messages]
    assert len(llm.requests) == 2

    second = run_child(url, session_id, "--stream", "What do I like?", base_url=llm.base_url)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("RESUMED True 4 {'turns': 2}")
    assert len(llm.requests) == 3
    # Process B sent the whole earlier conversation, read back from the database.
    sent = llm.requests[-1]
    assert sent.body["stream"] is True
    assert sent.messages == [
        {"role": "user", "content": "My name is Ada"},
        {"role": "assistant", "content": "Reply to 1 user messages; the last was: My name is Ada"},
        {"role": "user", "content": "I like tea"},
        {"role": "assistant", "content": "Reply to 2 user messages; the last was: I like tea"},
        {"role": "user", "content": "What do I like?"},
    ]
    assert earlier[-1] == sent.messages[2]
    assert acks(second.stdout) == ["ACK 1 Reply to 3 user messages; the last was: What do I like?"]

    async with await open_store(url) as store:
        messages = await store.list_messages(session_id)
        assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT] * 3
        assert messages[-1].metadata["model"] == "test-model-1"
        assert messages[-1].metadata["usage"]["prompt_tokens"] > 0
        session = await store.get_session(session_id)
        assert session is not None
        assert (session.user_id, session.tenant_id, session.agent_id) == (
            "user-1",
            "tenant-1",
            "agent-1",
        )
        agent = await store.get_agent("agent-1")
        assert agent is not None
        assert (agent.state, agent.provider, agent.model) == ("stopped", "openai", "gpt-4o-mini")
        state = await store.get_state(session_id)
        assert state is not None
        assert state.state == {"turns": 3}


@pytest.mark.slow
async def test_a_second_process_continues_the_conversation(
    durable_url: str, llm: LLMServer
) -> None:
    """On every backend two processes can share: files, SQLite, PostgreSQL, MySQL."""
    await check_continuation(durable_url, llm)


@pytest.mark.sqlite
@pytest.mark.slow
async def test_sigkill_between_turns_loses_no_acknowledged_turn(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'agent.db'}"
    session_id = new_session_id()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.agent.child_agent", url, session_id, "--forever"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("ACK "):
                acknowledged.append(line.rstrip("\n"))
                if len(acknowledged) == 5:
                    break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert len(acknowledged) == 5, child.stderr.read() if child.stderr else ""

    async with await open_store(url) as store:
        messages = await store.list_messages(session_id)
        state = await store.get_state(session_id)
    # Every acknowledged turn is there, in order: its user message and the reply it printed.
    for number, line in enumerate(acknowledged, start=1):
        user, reply = messages[2 * number - 2], messages[2 * number - 1]
        assert (user.role, user.content) == (Role.USER, f"message {number}")
        assert reply.role == Role.ASSISTANT
        assert line == f"ACK {number} {reply.content}"
    assert state is not None
    assert state.state["turns"] >= 5
    # The kill may land mid-turn: at most one more user message and reply, never a gap.
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    assert len(messages) <= 2 * (len(acknowledged) + 2)

    # A new process resumes the conversation after the crash.
    resumed = run_child(url, session_id, "still there?")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("RESUMED True")
    assert 'began with "message 1"' in acks(resumed.stdout)[0]
