"""``mofa session delete ID…`` (and ``-`` for stdin) and ``mofa session prune``, on the four
backends the CLI reads, through click's runner and a real process."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mofa.persistence import open_store
from tests._cli import MOFA, mofa, one_error_line, run_mofa
from tests.cli.test_session import CLI_BACKENDS, on_terminal
from tests.conftest import _params


@pytest.fixture(params=_params(CLI_BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """The CLI's backends (memory does not outlive the command)."""
    return str(request.param)


async def _fill(url: str, count: int, **options: object) -> None:
    async with await open_store(url) as store:
        for index in range(count):
            await store.create_session(f"s{index}", agent_id=f"a{index % 2}", **options)  # type: ignore[arg-type]
            await store.append_message(f"s{index}", "user", "hi")


async def _ids(url: str) -> list[str]:
    async with await open_store(url) as store:
        return sorted(session.session_id for session in await store.list_sessions())


def ids(url: str) -> list[str]:
    return asyncio.run(_ids(url))


# ---------------------------------------------------------------------------- delete


def test_delete_many_ids_in_one_process(empty_url: str) -> None:
    asyncio.run(_fill(empty_url, 4))
    result = mofa("session", "delete", "s0", "s2", "--force", url=empty_url)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == (
        "→ Deleting 2 sessions\n  ✓ Deleted s0\n  ✓ Deleted s2\n✓ Deleted 2 of 2 sessions\n"
    )
    assert ids(empty_url) == ["s1", "s3"]


def test_delete_reads_ids_from_stdin(empty_url: str) -> None:
    """The seeds' batch delete (list | jq | delete), in one process."""
    asyncio.run(_fill(empty_url, 3))
    listed = mofa("session", "list", "-f", "jsonl", "--agent", "a0", url=empty_url)
    piped = "".join(json.loads(line)["session_id"] + "\n" for line in listed.stdout.splitlines())
    result = mofa("session", "delete", "-", "--force", url=empty_url, input=piped + "\n")
    assert result.exit_code == 0, result.output
    assert ids(empty_url) == ["s1"]


def test_stdin_ids_are_taken_exactly(empty_url: str) -> None:
    """An id read from stdin loses only its line end (LF or CRLF): " lead" is deleted, never
    the "lead" that stripping its space would name; lines holding only blanks are skipped,
    and an id given twice is deleted once."""

    async def fill() -> None:
        async with await open_store(empty_url) as store:
            for session_id in (" lead", "lead", "trail ", "trail", "crlf"):
                await store.create_session(session_id)

    asyncio.run(fill())
    piped = " lead\n \t \n\ntrail \r\ncrlf\r\n lead\n"
    result = mofa("session", "delete", "-", "--force", url=empty_url, input=piped)
    assert result.exit_code == 0, result.output
    assert ids(empty_url) == ["lead", "trail"]


def test_the_worst_exit_code_wins_and_the_rest_still_go(empty_url: str) -> None:
    asyncio.run(_fill(empty_url, 2))
    result = mofa("session", "delete", "missing", "s0", "", "s1", "--force", url=empty_url)
    assert result.exit_code == 1  # not found (an empty id names no session either)
    assert "  ✗ Session not found: missing\n" in result.stderr
    assert one_error_line(result) == "Error: Deleted 2 of 4 sessions; see above for the others."
    assert ids(empty_url) == []


def test_delete_many_without_force_needs_a_terminal(empty_url: str) -> None:
    asyncio.run(_fill(empty_url, 2))
    result = mofa("session", "delete", "s0", "s1", url=empty_url)
    assert result.exit_code == 3
    assert one_error_line(result) == (
        "Error: Refusing to delete 2 sessions without confirmation: stdin is not a terminal; "
        "use --force."
    )
    assert ids(empty_url) == ["s0", "s1"]


def test_delete_many_asks_once_on_a_terminal(empty_url: str, tmp_path: Path) -> None:
    asyncio.run(_fill(empty_url, 3))
    env = {**os.environ, "MOFA_DATABASE_URL": empty_url, "NO_COLOR": "1"}
    code, output, answered = on_terminal(
        [str(MOFA), "session", "delete", "s0", "s1", "nope"], b"y\n", env=env
    )
    assert (code, answered) == (1, 1), output
    assert "2 of them exist, holding 2 messages; 1 not found.\n" in output
    assert "Delete 2 sessions? [y/N]: y\n" in output
    assert ids(empty_url) == ["s2"]


def test_no_ids_on_stdin_deletes_nothing(empty_url: str) -> None:
    result = mofa("session", "delete", "-", "--force", url=empty_url, input="\n")
    assert result.exit_code == 1
    assert one_error_line(result) == "Error: No session ids on stdin; nothing was deleted."


# ----------------------------------------------------------------------------- prune


def test_prune_is_a_dry_run_until_yes(empty_url: str) -> None:
    asyncio.run(_fill(empty_url, 5))
    dry = mofa("session", "prune", "--keep-last", "1", "-f", "jsonl", url=empty_url)
    assert dry.exit_code == 0, dry.output
    assert sorted(json.loads(line)["session_id"] for line in dry.stdout.splitlines()) == [
        "s0",
        "s1",
        "s2",
    ]
    assert "(dry run: nothing is deleted)" in dry.stderr
    assert dry.stderr.endswith(
        "Would delete 3 sessions (3 messages); run again with --yes to delete them.\n"
    )
    assert ids(empty_url) == ["s0", "s1", "s2", "s3", "s4"]

    done = mofa("session", "prune", "--keep-last", "1", "--yes", url=empty_url)
    assert done.exit_code == 0, done.output
    assert done.stderr.endswith("✓ Deleted 3 sessions (3 messages)\n")
    assert "Deleting: 3 sessions" in done.stderr  # progress, on stderr
    assert "│ s0 " in done.stdout
    assert ids(empty_url) == ["s3", "s4"]


def test_prune_by_age_expiry_and_owner_combined(empty_url: str) -> None:
    past = datetime.now(UTC) - timedelta(days=1)

    async def fill() -> None:
        async with await open_store(empty_url) as store:
            await store.create_session("gone", tenant_id="acme", expires_at=past)
            await store.create_session("other-tenant", tenant_id="else", expires_at=past)
            await store.create_session("alive", tenant_id="acme")

    asyncio.run(fill())
    assert mofa("session", "prune", "--older-than", "1h", "--yes", url=empty_url).exit_code == 0
    assert ids(empty_url) == ["alive", "gone", "other-tenant"]  # all active within the hour
    result = mofa("session", "prune", "--expired", "--tenant", "acme", "--yes", url=empty_url)
    assert result.exit_code == 0, result.output
    assert ids(empty_url) == ["alive", "other-tenant"]
    nothing = mofa("session", "prune", "--older-than", "2000-01-01", url=empty_url)
    assert nothing.stdout == "No sessions to prune.\n"
    assert nothing.stderr.endswith("Nothing to prune.\n")


def test_prune_needs_a_rule(empty_url: str) -> None:
    result = mofa("session", "prune", "--agent", "a0", "--yes", url=empty_url)
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "Error: Say which sessions to prune: --older-than, --expired and/or --keep-last "
        "(--agent, --user and --tenant only narrow them)."
    )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_prune_in_a_real_process_reports_progress_on_stderr(empty_url: str) -> None:
    asyncio.run(_fill(empty_url, 3))
    done = run_mofa(
        "--database-url", empty_url, "session", "prune", "--keep-last", "0", "--yes", "-f", "csv"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "session_id,agent_id,updated_at,message_count,status"
    assert len(done.stdout.splitlines()) == 4
    assert "Deleting: 3 sessions" in done.stderr
    assert "\x1b[" not in done.stdout + done.stderr  # not a terminal: no colour, no redraws
