"""The seeds' "Common Workflows", run verbatim with bash, the real jq and xargs, and the
installed ``mofa`` script, against every backend the CLI reads.

The scripts below are copied from the seed page as they are; ``MOFA_DATABASE_URL`` points them
at the test's database and ``PATH`` starts with the virtualenv's ``bin``. The one interactive
command (``mofa session delete old-session-id``) runs on a pseudo-terminal and gets a "y".
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mofa.persistence import NewMessage, open_store
from tests.cli.test_session import on_terminal
from tests.conftest import _params

BIN = Path(sys.executable).parent
T0 = datetime(2024, 2, 28, 10, 30, tzinfo=UTC)

REVIEW = """\
# List recent sessions
mofa session list --limit 10

# View specific session
mofa session show agent-001:session-123

# Export for analysis
mofa session export agent-001:session-123 -o analysis.json --format json
"""

AUDIT = """\
# List all sessions for an agent
mofa session list --agent my-agent

# Export all sessions
for session in $(mofa session list --agent my-agent --output-format json | jq -r '.[].session_id'); do
  mofa session export $session -o "exports/${session}.json" --format json
done
"""  # noqa: E501 - verbatim

DEBUG_VIEW = """\
# View session in detail
mofa session show session-123 --format json | jq
"""

DEBUG_USER_MESSAGES = """\
# Filter to user messages only
mofa session show session-123 --format json | \\
  jq '.messages[] | select(.role == "user")'
"""

DEBUG_COUNT_BY_ROLE = """\
# Count messages by role
mofa session show session-123 --format json | \\
  jq '.messages | group_by(.role) | map({role: .[0].role, count: length})'
"""

CLEANUP = """\
# List all sessions
mofa session list

# Delete specific session
mofa session delete old-session-id

# Batch delete (with caution)
mofa session list --output-format json | \\
  jq -r '.[].session_id' | \\
  xargs -I {} mofa session delete {} --force
"""

#: session id -> (agent, [(role, content)])
SESSIONS = {
    "agent-001:session-123": (
        "agent-001",
        [("user", "Hello, I need help with my order"), ("assistant", "Which order?")],
    ),
    "my-agent:session-1": ("my-agent", [("user", "first"), ("assistant", "reply")]),
    "my-agent:session-2": ("my-agent", [("system", "be brief"), ("user", "second")]),
    "session-123": (
        "debug-agent",
        [
            ("system", "You are helpful."),
            ("user", "What is 2+2?"),
            ("assistant", "4"),
            ("user", "And 3+3?"),
            ("tool", '{"result": 6}'),
            ("assistant", "6"),
        ],
    ),
    "old-session-id": ("other-agent", [("user", "old")]),
}


@pytest.fixture(params=_params(["files", "sqlite", "postgres", "mysql"]))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _seed(url: str) -> None:
    async with await open_store(url) as store:
        for session_id, (agent_id, messages) in SESSIONS.items():
            await store.create_session(session_id, agent_id=agent_id, user_id="user-456")
            await store.append_messages(
                session_id,
                [
                    NewMessage(role, content, timestamp=T0 + timedelta(seconds=index))
                    for index, (role, content) in enumerate(messages)
                ],
            )


@pytest.fixture
def workdir(empty_url: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    asyncio.run(_seed(empty_url))
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MOFA_DATABASE_URL": empty_url,
    }
    return work, env


def bash(script: str, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(autouse=True)
def _tools_exist() -> None:
    for tool in ("bash", "jq", "xargs"):
        assert shutil.which(tool), f"{tool} is needed for the seeds' workflows"


def test_review_recent_conversations(workdir: tuple[Path, dict[str, str]]) -> None:
    work, env = workdir
    result = bash(REVIEW, work, env)
    assert result.returncode == 0, result.stderr
    # Data on stdout (the table, the session), progress on stderr.
    assert result.stdout.startswith("┌")
    for session_id in SESSIONS:
        assert f"│ {session_id} " in result.stdout
    assert "Session: agent-001:session-123\n" in result.stdout
    assert "│ 10:30:00  │ user      │ Hello, I need help with my order │" in result.stdout
    assert result.stderr == (
        "→ Listing sessions\n"
        "  Limit: 10\n"
        "\n"
        "→ Exporting session: agent-001:session-123\n"
        "  Format: json\n"
        "  Output: analysis.json\n"
        "  ✓ Exported 2 messages\n"
        "✓ Session exported successfully\n"
    )
    exported = json.loads((work / "analysis.json").read_text(encoding="utf-8"))
    assert exported["session_id"] == "agent-001:session-123"
    assert [m["content"] for m in exported["messages"]] == [
        "Hello, I need help with my order",
        "Which order?",
    ]


def test_audit_exports_every_session_of_an_agent(workdir: tuple[Path, dict[str, str]]) -> None:
    work, env = workdir
    result = bash(AUDIT, work, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("┌")  # the first list's table; its progress on stderr
    assert "✓" not in result.stdout
    assert result.stderr.count("✓ Session exported successfully") == 2
    mine = sorted(key for key, (agent, _) in SESSIONS.items() if agent == "my-agent")
    assert sorted(path.name for path in (work / "exports").iterdir()) == [
        f"{session_id}.json" for session_id in mine
    ]
    for session_id in mine:
        exported = json.loads((work / "exports" / f"{session_id}.json").read_text("utf-8"))
        assert exported["session_id"] == session_id
        assert exported["metadata"]["agent_id"] == "my-agent"
        assert [(m["role"], m["content"]) for m in exported["messages"]] == [
            tuple(pair) for pair in SESSIONS[session_id][1]
        ]


def test_debug_conversation_flow(workdir: tuple[Path, dict[str, str]]) -> None:
    work, env = workdir
    messages = SESSIONS["session-123"][1]

    view = bash(DEBUG_VIEW, work, env)
    assert view.returncode == 0, view.stderr
    document = json.loads(view.stdout)
    assert document["session_id"] == "session-123"
    assert document["message_count"] == len(messages)
    assert [(m["role"], m["content"]) for m in document["messages"]] == messages

    users = bash(DEBUG_USER_MESSAGES, work, env)
    assert users.returncode == 0, users.stderr
    decoder = json.JSONDecoder()
    text, found = users.stdout.strip(), []
    while text:
        item, end = decoder.raw_decode(text)
        found.append(item)
        text = text[end:].lstrip()
    assert [m["content"] for m in found] == [c for role, c in messages if role == "user"]
    assert all(m["role"] == "user" for m in found)

    counts = bash(DEBUG_COUNT_BY_ROLE, work, env)
    assert counts.returncode == 0, counts.stderr
    assert json.loads(counts.stdout) == [
        {"role": "assistant", "count": 2},
        {"role": "system", "count": 1},
        {"role": "tool", "count": 1},
        {"role": "user", "count": 2},
    ]


def test_clean_up_old_sessions(workdir: tuple[Path, dict[str, str]]) -> None:
    work, env = workdir
    # The one interactive command gets a "y" on a real terminal.
    code, output, answered = on_terminal(["bash", "-c", CLEANUP], b"y\n", env=env, cwd=work)
    assert answered == 1, output
    assert code == 0, output
    assert (
        "→ Deleting session: old-session-id\n\nSession contains 1 message.\n"
        "This action cannot be undone.\n\nDelete session? [y/N]: y\n"
    ) in output
    # The batch delete removed every remaining session, each with --force (no prompt).
    assert output.count("✓ Session deleted successfully") == len(SESSIONS)
    assert "Traceback" not in output
    after = bash("mofa session list --output-format json", work, env)
    assert json.loads(after.stdout) == []
