"""``mofa info`` and ``mofa db doctor`` on the four backends the CLI reads; the doctor also on
stores damaged by hand (a dropped index, orphaned rows written with foreign keys off, a file
others can read, a password in agent.yml)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

import pytest

from mofa.persistence import NewMessage, open_store, schema
from tests._cli import mofa, one_error_line
from tests.cli.test_db_existing_tables import execute
from tests.cli.test_session import CLI_BACKENDS
from tests.conftest import _params


@pytest.fixture(params=_params(CLI_BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """The CLI's backends (memory does not outlive the command)."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_inherited_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MOFA_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


async def _fill(url: str) -> None:
    async with await open_store(url) as store:
        await store.upsert_agent("idle")
        await store.create_session("a", agent_id="bot")
        await store.create_session("b", agent_id="bot")
        await store.append_messages("a", [NewMessage("user", "1"), NewMessage("assistant", "2")])
        await store.append_message("b", "user", "3")


def test_info_says_which_store_why_and_what_it_holds(empty_url: str, backend: str) -> None:
    asyncio.run(_fill(empty_url))
    result = mofa("info", "-f", "json", url=empty_url)
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["source"] == "--database-url"
    assert facts["chosen_because"] == "the --database-url option"
    assert (facts["agents"], facts["sessions"], facts["messages"]) == (2, 2, 3)
    expected_version = None if backend == "files" else schema.latest_version(backend)
    assert facts["schema_version"] == expected_version
    assert (
        facts["backend"]
        == {
            "files": "file",
            "sqlite": "SQLite",
            "postgres": "PostgreSQL",
            "mysql": "MySQL",
        }[backend]
    )
    table = mofa("info", url=empty_url)
    assert "Chosen by:      the --database-url option\n" in table.stdout
    assert "Messages:       3\n" in table.stdout


def test_info_names_each_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    asyncio.run(_fill(url))
    monkeypatch.setenv("DATABASE_URL", url)
    assert json.loads(mofa("info", "-f", "json").stdout)["source"] == "DATABASE_URL"
    monkeypatch.setenv("MOFA_DATABASE_URL", url)
    assert json.loads(mofa("info", "-f", "json").stdout)["source"] == "MOFA_DATABASE_URL"
    monkeypatch.delenv("MOFA_DATABASE_URL")
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("MOFA_DATA_DIR", str(tmp_path / "nothing-yet"))
    facts = json.loads(mofa("info", "-f", "json").stdout)
    assert facts["source"] == "default"
    assert facts["note"] == "the default store is empty: nothing has been stored there yet"
    assert facts["directory"] == str(tmp_path / "nothing-yet")


def test_info_masks_the_password_and_reports_what_it_cannot_open() -> None:
    url = "postgresql://mofa:s3cret@127.0.0.1:1/none?connect_timeout=1"
    result = mofa("info", url=url)
    assert result.exit_code == 1
    assert result.stdout.startswith("Store:          postgresql://mofa:****@127.0.0.1:1/none")
    assert "Agents" not in result.stdout
    assert one_error_line(result).startswith("Error: ")
    assert "s3cret" not in result.output


def test_doctor_finds_a_healthy_store_healthy(empty_url: str) -> None:
    asyncio.run(_fill(empty_url))
    result = mofa("db", "doctor", url=empty_url)
    assert result.exit_code == 0, result.output
    assert "✗" not in result.stdout
    assert "✓ every record of 2 sessions reads back\n" in result.stdout
    assert result.stderr.endswith("✓ No problems found\n")


def test_doctor_reports_each_problem_with_its_fix(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    url = f"sqlite://{path}"
    asyncio.run(_fill(url))
    connection = sqlite3.connect(path)
    connection.executescript(
        "PRAGMA foreign_keys = OFF;"
        "DROP INDEX idx_sessions_user;"
        "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
        "VALUES ('gone', 1, 'user', 'x', '{}', '2024-01-01 00:00:00.000000');"
        "UPDATE sessions SET message_count = 7 WHERE session_id = 'b';"
    )
    connection.commit()
    connection.close()
    os.chmod(path, 0o644)
    (tmp_path / "agent.yml").write_text(
        "persistence:\n  database:\n    type: postgres\n"
        "    url: postgresql://mofa:hunter2@localhost/mofa\n",
        encoding="utf-8",
    )
    result = mofa("db", "doctor", url=url)
    assert result.exit_code == 1
    out = result.stdout
    assert "✗ index idx_sessions_user is missing" in out
    assert "✗ 1 messages rows point at a parent that is gone" in out
    assert "✗ 1 sessions have a message_count that disagrees with their messages" in out
    assert f"✗ readable by other users: {path}" in out
    assert f"  fix: chmod -R go-rwx {path}* (conversations are private)\n" in out
    assert "✗ a database password is written in the configuration" in out
    assert "hunter2" not in result.output
    assert out.count("  fix: ") == out.count("✗ ") == 5
    assert one_error_line(result) == "Error: 5 problems found; see the fixes above."


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_doctor_finds_a_dropped_index_on_a_server(empty_url: str, backend: str) -> None:
    asyncio.run(_fill(empty_url))
    drop = {
        "postgres": "DROP INDEX idx_sessions_tenant",
        "mysql": "DROP INDEX idx_sessions_tenant ON sessions",
    }[backend]
    execute(backend, empty_url, [drop])
    result = mofa("db", "doctor", "--quick", url=empty_url)
    assert result.exit_code == 1, result.output
    assert "✗ index idx_sessions_tenant is missing" in result.stdout
    assert "✓ records not read back (--quick)" in result.stdout


def test_doctor_reports_an_undecodable_record(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    url = f"sqlite://{path}"
    asyncio.run(_fill(url))
    connection = sqlite3.connect(path)
    connection.execute("UPDATE messages SET role = 'wizard' WHERE seq = 2")
    connection.commit()
    connection.close()
    result = mofa("db", "doctor", url=url)
    assert result.exit_code == 1
    assert "✗ a record does not decode: The stored message 2 of session 'a'" in result.stdout


def test_doctor_on_a_database_without_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    result = mofa("db", "doctor", url=f"sqlite://{path}")
    assert result.exit_code == 1
    assert "✗ the store does not open: " in result.stdout
    assert '`mofa db init -u "URL"`' in result.stdout
