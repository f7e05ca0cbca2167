"""``mofa session list/show/export`` with the edges of the date rule: a session of year 999
lists, shows and exports with four-digit years; a stored record the store cannot read makes
them print one ``Error:`` line naming the session and the field, and exit 1 — never a
traceback."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mofa.persistence import open_store
from tests._cli import assert_one_error_line, mofa
from tests.backends.test_damaged_records import seed_two_sessions, store_bad_value
from tests.cli.test_session import CLI_BACKENDS
from tests.conftest import _params


@pytest.fixture(params=_params(CLI_BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides the conftest fixture, so ``empty_url`` covers the CLI's backends."""
    return str(request.param)


async def _session_of_year_999(url: str) -> None:
    async with await open_store(url) as store:
        await store.create_session("old", agent_id="a", expires_at=datetime(999, 1, 1, tzinfo=UTC))
        await store.append_message("old", "user", "hi", timestamp=datetime(999, 1, 1, tzinfo=UTC))
        await store.create_session("new", agent_id="a")


def test_a_session_of_year_999_lists_shows_and_exports(empty_url: str, tmp_path: Path) -> None:
    asyncio.run(_session_of_year_999(empty_url))
    listed = mofa("session", "list", url=empty_url)
    assert listed.exit_code == 0, listed.output
    assert "old" in listed.stdout
    assert "new" in listed.stdout
    shown = mofa("session", "show", "old", "-f", "json", url=empty_url)
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert document["status"] == "expired"
    assert document["messages"][0]["timestamp"] == "0999-01-01T00:00:00Z"
    table = mofa("session", "show", "old", url=empty_url)
    assert table.exit_code == 0, table.output
    assert "│ 00:00:00  │ user │ hi" in table.stdout
    target = tmp_path / "old.yaml"
    exported = mofa("session", "export", "old", "-o", str(target), "-f", "yaml", url=empty_url)
    assert exported.exit_code == 0, exported.output
    assert "timestamp: '0999-01-01T00:00:00.000000Z'\n" in target.read_text()
    [message] = yaml.safe_load(target.read_text())["messages"]
    assert datetime.fromisoformat(message["timestamp"]) == datetime(999, 1, 1, tzinfo=UTC)


def test_a_damaged_session_is_one_error_line(backend: str, empty_url: str, tmp_path: Path) -> None:
    asyncio.run(seed_two_sessions(empty_url))
    field = asyncio.run(store_bad_value(backend, empty_url, "session-time"))
    target = tmp_path / "bad.json"
    for command in (
        ["session", "list"],
        ["session", "list", "--output-format", "json"],
        ["session", "show", "bad"],
        ["session", "show", "bad", "-f", "yaml"],
        ["session", "export", "bad", "-o", str(target), "-f", "json"],
    ):
        result = mofa(*command, url=empty_url)
        line = assert_one_error_line(result)
        assert f"The stored session 'bad' has an unreadable {field} (" in line, line
        assert result.stdout.count("{") == 0, result.stdout  # no half document on stdout
    assert not target.exists()
    # The other session still shows, and the damaged one can be deleted.
    assert mofa("session", "show", "good", url=empty_url).exit_code == 0
    deleted = mofa("session", "delete", "bad", "--force", url=empty_url)
    assert deleted.exit_code == 0, deleted.output
    listed = mofa("session", "list", "--output-format", "json", url=empty_url)
    assert listed.exit_code == 0, listed.output
    assert "good" in listed.stdout
