"""Every example in every ``--help`` runs, as a user would paste it into a shell.

Each example runs in its own directory with a fresh SQLite store (``./mofa.db``, also
``$MOFA_DATABASE_URL``) that holds the sessions the examples name; the placeholder server
URLs of the examples point at the test servers, and ``$DATABASE_URL`` at a SQLite file.
Pipes into ``jq`` run whole when ``jq`` is installed; without it, the ``mofa`` part before
the pipe runs alone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mofa.cli._main import cli
from mofa.persistence import open_store
from tests._cli import MOFA, mofa

#: The placeholder URLs the examples show, and the fixture whose database stands in for each.
SERVER_URLS = {
    "postgresql://user:pass@localhost/mofa": "postgres_server_database",
    "postgresql://user@localhost/mofa": "postgres_server_database",
    "mysql://user:pass@localhost/mofa": "mysql_server_database",
}
#: Examples whose documented outcome is a refusal: delete asks first, and here is no terminal.
EXPECTED_EXIT = {"mofa session delete agent-001:session-123": 3}


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import click

    assert isinstance(group, click.Group)
    context = click.Context(group)
    found = [prefix]
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


COMMANDS = _commands(cli)


def _examples(help_text: str) -> list[str]:
    """The example lines of a help text (a trailing backslash joins the next line)."""
    examples: list[str] = []
    inside = False
    pending = ""
    for line in help_text.splitlines():
        stripped = line.strip()
        if stripped == "Examples:":
            inside = True
            continue
        if inside and not stripped:
            inside = False
            continue
        if inside and (stripped.startswith(("mofa ", "psql ", "|")) or pending):
            pending += (" " if pending else "") + stripped.rstrip("\\").strip()
            if not stripped.endswith("\\"):
                examples.append(pending)
                pending = ""
    return examples


EXAMPLES = sorted(
    {
        example
        for command in COMMANDS
        for example in _examples(mofa(*command, "--help").stdout)
        if example.startswith("mofa ")
    }
)


def test_every_command_has_help_and_examples() -> None:
    without = [
        " ".join(command)
        for command in COMMANDS
        if command and not _examples(mofa(*command, "--help").stdout)
    ]
    assert without == ["session"]  # the group lists its commands; each has examples
    assert len(EXAMPLES) >= 30


async def _seed(url: str) -> None:
    async with await open_store(url) as store:
        if await store.get_session("agent-001:session-123") is not None:
            return
        await store.create_session("agent-001:session-123", agent_id="agent-001")
        await store.append_message("agent-001:session-123", "user", "Hello")
        for session_id, agent in [
            ("session-123", "my-agent"),
            ("session-124", "old-agent"),
            ("s-bot", "support-bot"),
        ]:
            await store.create_session(session_id, agent_id=agent, user_id="user-456")


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_example_runs(example: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # The store the examples read: the resolved one, and ./mofa.db of the examples' URLs.
    store = f"sqlite://{work / 'mofa.db'}"
    asyncio.run(_seed(store))
    command = example.replace("SESSION_ID", "agent-001:session-123")
    for placeholder, fixture in SERVER_URLS.items():
        if placeholder in command:
            server = str(request.getfixturevalue(fixture))
            asyncio.run(_seed(server))  # a server database with the schema and the sessions
            command = command.replace(placeholder, server)
    if "|" in command and shutil.which("jq") is None:
        command = command.split("|", 1)[0]
    command = (
        command.replace("mofa ", f"{MOFA} ", 1)
        .replace("| mofa ", f"| {MOFA} ")
        .replace("&& mofa ", f"&& {MOFA} ")
    )
    environment = {
        **os.environ,
        "MOFA_DATABASE_URL": store,
        "DATABASE_URL": f"sqlite://{tmp_path / 'from-env.db'}",
        "NO_COLOR": "1",
    }
    if "$DIRECT_URL" in example:  # a PostgreSQL server's own address (not a pooler's)
        environment["DIRECT_URL"] = str(request.getfixturevalue("postgres_server_database"))
    if "$DATABASE_URL" in example or "--database-url" in example or " -u " in example:
        environment.pop("MOFA_DATABASE_URL")
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    expected = EXPECTED_EXIT.get(example, 0)
    if example == "mofa db doctor":
        expected = result.returncode if result.returncode in (0, 1) else 0
    assert result.returncode == expected, f"{example}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
