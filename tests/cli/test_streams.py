"""Every command, every format: stdout holds only the data (SQL, a table, JSON, YAML, or
nothing), and progress lines and errors go to stderr — so ``> file`` and ``| jq`` get data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from mofa.persistence import open_store, schema
from tests._cli import mofa, one_error_line

SESSION = "agent-001:session-123"


async def _seed(url: str) -> None:
    async with await open_store(url) as store:
        await store.create_session(SESSION, agent_id="agent-001")
        await store.append_message(SESSION, "user", "Hello")


@pytest.fixture
def url(tmp_path: Path) -> str:
    address = f"sqlite://{tmp_path / 'mofa.db'}"
    asyncio.run(_seed(address))
    return address


def _json(text: str) -> object:
    return json.loads(text)


def _yaml(text: str) -> object:
    return yaml.safe_load(text)


def _table(text: str) -> object:
    assert text.startswith(("┌", "Session: ")), text
    assert "→" not in text
    assert "✓" not in text
    return text


@pytest.mark.parametrize(
    ("args", "parse"),
    [
        (["session", "list"], _table),
        (["session", "list", "--agent", "agent-001", "--limit", "5"], _table),
        (["session", "list", "--output-format", "json"], _json),
        (["session", "show", SESSION], _table),
        (["session", "show", SESSION, "--format", "json"], _json),
        (["session", "show", SESSION, "-o", "yaml"], _yaml),
        (["session", "export", SESSION, "-o", "-", "-f", "json"], _json),
        (["session", "export", SESSION, "-o", "-", "-f", "yaml"], _yaml),
    ],
)
def test_session_commands_write_only_data_to_stdout(
    url: str, args: list[str], parse: object
) -> None:
    result = mofa(*args, url=url)
    assert result.exit_code == 0, result.output
    assert callable(parse)
    assert parse(result.stdout)
    assert "Error" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["session", "export", SESSION, "-o", "{tmp}/out.json", "-f", "json"],
        ["session", "delete", SESSION, "--force"],
        ["db", "init", "-t", "sqlite", "-o", "{tmp}/m.sql"],
        ["db", "init", "-t", "sqlite", "-u", "sqlite://{tmp}/new.db"],
    ],
)
def test_commands_without_data_leave_stdout_empty(
    url: str, tmp_path: Path, args: list[str]
) -> None:
    result = mofa(*(arg.format(tmp=tmp_path) for arg in args), url=url)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert any(line.startswith("✓ ") for line in result.stderr.splitlines())


@pytest.mark.parametrize(
    "args",
    [
        ["db", "schema", "-t", "sqlite"],
        ["db", "init", "-t", "sqlite"],
        ["db", "init", "-t", "sqlite", "-o", "-", "-u", "sqlite://{tmp}/new.db"],
    ],
)
def test_sql_is_the_only_thing_on_stdout(tmp_path: Path, args: list[str]) -> None:
    result = mofa(*(arg.format(tmp=tmp_path) for arg in args))
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(schema.script("sqlite"))
    assert "→" not in result.stdout
    assert "✓" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["session", "list", "--output-format", "json"],
        ["session", "list"],
        ["session", "show", "nope"],
        ["session", "show", "nope", "--format", "yaml"],
        ["session", "export", "nope", "-o", "-", "-f", "json"],
        ["session", "export", "nope", "-o", "{tmp}/x.json", "-f", "yaml"],
        ["session", "delete", "nope", "--force"],
        ["db", "init", "-t", "postgres", "-u", "postgresql://u:pw@127.0.0.1:1/x"],
        ["db", "init", "-t", "sqlite", "-o", "{tmp}/mofa.db/x.sql"],
    ],
)
def test_errors_go_to_stderr_and_nothing_to_stdout(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "mofa.db").write_text("not a database")
    url = f"sqlite://{tmp_path / 'mofa.db'}"
    result = mofa(*(arg.format(tmp=tmp_path) for arg in args), url=url)
    assert result.exit_code != 0
    assert result.stdout == ""
    assert one_error_line(result)
