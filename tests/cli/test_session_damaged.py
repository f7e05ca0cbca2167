"""A stored record the store cannot read makes ``mofa session list/show/export`` print one
``Error:`` line naming the session and the field, and exit 1 — never a traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests._cli import assert_one_error_line, mofa
from tests.backends.test_damaged_records import seed_two_sessions, store_bad_value
from tests.cli.test_session import CLI_BACKENDS
from tests.conftest import _params


@pytest.fixture(params=_params(CLI_BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides the conftest fixture, so ``empty_url`` covers the CLI's backends."""
    return str(request.param)


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
