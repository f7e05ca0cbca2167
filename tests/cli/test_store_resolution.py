"""Which store ``mofa session`` reads: --database-url, MOFA_DATABASE_URL, agent.yml,
DATABASE_URL, files.

Each candidate source points at its own real store holding one session named after the
source, so ``session list --output-format json`` shows which one the command opened.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from mofa.cli._store import resolve_store
from mofa.persistence import InvalidInputError, SchemaError, open_store
from mofa.persistence.locations import directory_url
from tests._cli import mofa, one_error_line
from tests.cli.test_db_servers import table_set
from tests.conftest import _params
from tests.servers import server_database

VARIABLES = ("MOFA_DATABASE_URL", "MOFA_DATA_DIR", "XDG_DATA_HOME", "DATABASE_URL")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No inherited store settings; HOME and the working directory inside tmp_path."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


async def _make(url: str, session_id: str) -> None:
    async with await open_store(url) as store:
        await store.create_session(session_id, agent_id="agent")


def store_with(url: str, session_id: str) -> str:
    asyncio.run(_make(url, session_id))
    return url


def listed(*args: str) -> list[str]:
    result = mofa(*args, "session", "list", "--output-format", "json")
    assert result.exit_code == 0, result.output
    return [row["session_id"] for row in json.loads(result.stdout)]


def write_config(path: Path, url: str, enabled: bool = True) -> Path:
    path.write_text(
        "agent:\n  id: my-agent\n"
        f"persistence:\n  enabled: {'true' if enabled else 'false'}\n"
        f"  database:\n    type: sqlite\n    url: {url}\n",
        encoding="utf-8",
    )
    return path


def test_precedence_option_then_environment_then_config_then_files(
    tmp_path: Path, clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("MOFA_DATA_DIR", str(data_dir))
    store_with(f"file://{data_dir}", "from-files")
    assert listed() == ["from-files"]

    generic_url = store_with(f"sqlite://{tmp_path / 'generic.db'}", "from-database-url")
    monkeypatch.setenv("DATABASE_URL", generic_url)
    assert listed() == ["from-database-url"]

    config_url = store_with(f"sqlite://{tmp_path / 'config.db'}", "from-config")
    write_config(clean_environment / "agent.yml", config_url)
    assert listed() == ["from-config"]

    env_url = store_with(f"sqlite://{tmp_path / 'env.db'}", "from-env")
    monkeypatch.setenv("MOFA_DATABASE_URL", env_url)
    assert listed() == ["from-env"]

    option_url = store_with(f"sqlite://{tmp_path / 'option.db'}", "from-option")
    assert listed("--database-url", option_url) == ["from-option"]


def test_config_option_names_another_file(tmp_path: Path, clean_environment: Path) -> None:
    url = store_with(f"sqlite://{tmp_path / 'other.db'}", "from-other")
    config = write_config(tmp_path / "prod.yml", url)
    write_config(clean_environment / "agent.yml", "sqlite:///nonexistent/never.db")
    assert listed("--config", str(config)) == ["from-other"]


def test_config_expands_variables_from_dotenv(tmp_path: Path, clean_environment: Path) -> None:
    url = store_with(f"sqlite://{tmp_path / 'dotenv.db'}", "from-dotenv")
    (clean_environment / "agent.yml").write_text(
        "persistence:\n  database:\n    type: sqlite\n    url: ${DATABASE_URL}\n",
        encoding="utf-8",
    )
    (clean_environment / ".env").write_text(f"DATABASE_URL={url}\n", encoding="utf-8")
    assert listed() == ["from-dotenv"]


def test_config_with_persistence_disabled_falls_through_to_the_file_store(
    tmp_path: Path, clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("MOFA_DATA_DIR", str(data_dir))
    store_with(f"file://{data_dir}", "from-files")
    url = store_with(f"sqlite://{tmp_path / 'disabled.db'}", "from-disabled")
    write_config(clean_environment / "agent.yml", url, enabled=False)
    assert listed() == ["from-files"]
    choice = resolve_store(None, None)
    assert choice.source == "default"


def test_an_empty_environment_variable_counts_as_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOFA_DATABASE_URL", "")
    monkeypatch.setenv("MOFA_DATA_DIR", str(tmp_path / "data"))
    choice = resolve_store(None, None)
    assert (choice.source, choice.url) == ("default", f"file://{tmp_path / 'data'}")


@pytest.mark.parametrize("source", ["MOFA_DATA_DIR", "XDG_DATA_HOME", "HOME"])
def test_the_default_file_store_location(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = {
        "MOFA_DATA_DIR": tmp_path / "explicit",
        "XDG_DATA_HOME": tmp_path / "xdg" / "mofa",
        "HOME": tmp_path / "home" / ".local" / "share" / "mofa",
    }[source]
    if source == "MOFA_DATA_DIR":
        monkeypatch.setenv("MOFA_DATA_DIR", str(expected))
    elif source == "XDG_DATA_HOME":
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_store(None, None).url == f"file://{expected}"
    store_with(f"file://{expected}", f"in-{source.lower()}")
    assert listed() == [f"in-{source.lower()}"]
    # The seeds' layout: <data dir>/sessions/<agent>/...
    assert (expected / "sessions").is_dir()


def test_a_data_dir_with_url_special_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = tmp_path / "my data #1?%"
    monkeypatch.setenv("MOFA_DATA_DIR", str(odd))
    store_with(
        f"file://{odd}".replace("%", "%25").replace("#", "%23").replace("?", "%3F"), "odd-one"
    )
    assert listed() == ["odd-one"]


def test_a_missing_config_option_file_is_an_error(tmp_path: Path) -> None:
    result = mofa("--config", str(tmp_path / "missing.yml"), "session", "list")
    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"Error: Configuration file not found: {tmp_path / 'missing.yml'}."
    )


def test_the_option_wins_even_over_a_broken_config(tmp_path: Path, clean_environment: Path) -> None:
    (clean_environment / "agent.yml").write_text("persistence: [\n", encoding="utf-8")
    url = store_with(f"sqlite://{tmp_path / 'o.db'}", "from-option")
    assert listed("--database-url", url) == ["from-option"]
    failed = mofa("session", "list")
    assert failed.exit_code == 1
    assert "agent.yml is not valid YAML" in one_error_line(failed)


def test_the_source_is_reported_by_resolve_store(tmp_path: Path, clean_environment: Path) -> None:
    config = write_config(clean_environment / "agent.yml", "sqlite://./x.db")
    assert resolve_store("memory://", None).source == "--database-url"
    assert resolve_store(None, None, environ={"MOFA_DATABASE_URL": "memory://"}).source == (
        "MOFA_DATABASE_URL"
    )
    choice = resolve_store(None, None, environ={})
    assert (choice.url, choice.source) == ("sqlite://./x.db", str(config))
    masked = resolve_store("postgresql://u:pw-secret@h/db", None).masked
    assert "pw-secret" not in masked


# ------------------------------------------- read commands change nothing where they look


def _sqlite_state(path: Path) -> tuple[list[str], str]:
    connection = sqlite3.connect(path)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
        return tables, connection.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        connection.close()


@pytest.mark.parametrize("command", [["list"], ["show", "x"], ["delete", "x", "--force"]])
def test_session_commands_leave_another_programs_sqlite_file_alone(
    tmp_path: Path, command: list[str]
) -> None:
    app = tmp_path / "app.db"
    connection = sqlite3.connect(app)
    with connection:
        connection.execute("CREATE TABLE app (x)")
    connection.close()
    before = app.read_bytes()

    result = mofa("--database-url", f"sqlite://{app}", "session", *command)
    assert result.exit_code != 0
    assert one_error_line(result) == (
        f"Error: The SQLite database {str(app)!r} has no mofa-sdk schema; check the URL, or "
        "create the schema with 'mofa db init'."
    )
    assert _sqlite_state(app) == (["app"], "delete")  # no tables, and not switched to WAL
    assert app.read_bytes() == before


def test_session_commands_leave_a_directory_without_a_file_store_alone(tmp_path: Path) -> None:
    directory = tmp_path / "notastore"
    directory.mkdir()
    (directory / "readme.txt").write_text("hi", encoding="utf-8")

    result = mofa("--database-url", directory_url(directory), "session", "list")
    assert result.exit_code != 0
    assert one_error_line(result) == (
        f"Error: There is no mofa file store in {directory} (it has no mofa-store.json); "
        "check the path."
    )
    assert sorted(path.name for path in directory.iterdir()) == ["readme.txt"]


def test_an_existing_default_data_dir_without_a_store_reads_as_empty(
    tmp_path: Path, clean_environment: Path
) -> None:
    data = tmp_path / "home" / ".local" / "share" / "mofa"
    data.mkdir(parents=True)
    result = mofa("session", "list")
    assert result.exit_code == 0, result.output
    assert "No sessions found." in result.stdout
    assert list(data.iterdir()) == []


@pytest.mark.parametrize("db_type", _params(["postgres", "mysql"]))
def test_session_commands_create_no_schema_in_a_server_database(db_type: str) -> None:
    with server_database(db_type) as url:
        result = mofa("--database-url", url, "session", "list")
        assert result.exit_code != 0
        line = one_error_line(result)
        assert (
            "has no mofa-sdk schema; check the URL, or create the schema with 'mofa db init'."
            in (line)
        )
        assert table_set(db_type, url) == set()


@pytest.mark.parametrize("url", _params(["sqlite", "files"]))
def test_the_library_opens_without_creating_when_asked(tmp_path: Path, url: str) -> None:
    location = tmp_path / "store"
    address = f"sqlite://{location}" if url == "sqlite" else directory_url(location)
    with pytest.raises(SchemaError, match="check the path"):
        asyncio.run(open_store(address, create_schema=False))
    assert not location.exists()
    store_with(address, "s1")

    async def read() -> list[str]:
        async with await open_store(address, create_schema=False) as store:
            assert store.applied_migrations == ()
            return [session.session_id for session in await store.list_sessions()]

    assert asyncio.run(read()) == ["s1"]
    with pytest.raises(InvalidInputError, match="create_schema must be True or False, not 'no'"):
        asyncio.run(open_store(address, create_schema="no"))


def test_database_url_from_a_dotenv_file_is_read(tmp_path: Path, clean_environment: Path) -> None:
    url = store_with(f"sqlite://{tmp_path / 'dotenv-generic.db'}", "from-dotenv-generic")
    (clean_environment / ".env").write_text(f"DATABASE_URL={url}\n", encoding="utf-8")
    assert listed() == ["from-dotenv-generic"]
    assert resolve_store(None, None).source == "DATABASE_URL"
