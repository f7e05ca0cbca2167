"""``mofa db schema`` / ``mofa db init``: output, files, SQLite, usage errors, help.

The server databases (PostgreSQL, MariaDB) are covered in ``test_db_servers.py``; the missing
driver case in ``test_db_nodriver.py``. Output and exit codes go through click's CliRunner;
the workflows with a database's own client go through the installed ``mofa`` script.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mofa.persistence import open_store, schema
from tests._cli import assert_one_error_line, mofa, one_error_line, run_mofa
from tests.conftest import recorded_versions

#: What `mofa db init -u` prints after its URL line, as in the seeds.
SEED_LINES_AFTER_URL = [
    "  ✓ Created table: agents",
    "  ✓ Created table: sessions",
    "  ✓ Created table: messages",
    "  ✓ Created table: agent_state",
    "  ✓ Created indexes",
    "✓ Database tables initialized successfully!",
]
INIT_TITLES = {"postgres": "PostgreSQL", "mysql": "MySQL", "sqlite": "SQLite"}
CLIENT_HINTS = {
    "postgres": "psql -U user -d mofa -f migration.sql",
    "mysql": "mysql -u user -p mofa < migration.sql",
    "sqlite": "sqlite3 mofa.db < migration.sql",
}
DB_TYPES = ["postgres", "mysql", "sqlite"]
ALL_TABLES = {*schema.table_names("sqlite"), schema.MIGRATIONS_TABLE}


def header(title: str) -> str:
    return f"-- MoFA {title} Schema\n-- Copy and execute this SQL to initialize your database\n\n"


# ------------------------------------------------------------------ SQLite catalog


def sqlite_catalog(path: Path) -> dict[str, Any]:
    """Everything that describes the schema of a SQLite file: DDL text, columns, indexes, FKs."""
    connection = sqlite3.connect(path)
    try:
        objects = connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
        tables = [name for kind, name, _, _ in objects if kind == "table"]
        catalog: dict[str, Any] = {"objects": objects}
        for table in tables:
            catalog[f"{table}.columns"] = connection.execute(
                f"PRAGMA table_xinfo({table})"
            ).fetchall()
            catalog[f"{table}.foreign_keys"] = connection.execute(
                f"PRAGMA foreign_key_list({table})"
            ).fetchall()
            indexes = connection.execute(f"PRAGMA index_list({table})").fetchall()
            catalog[f"{table}.indexes"] = indexes
            for index in indexes:
                catalog[f"{table}.{index[1]}"] = connection.execute(
                    f"PRAGMA index_xinfo({index[1]})"
                ).fetchall()
        if schema.MIGRATIONS_TABLE in tables:
            catalog["versions"] = connection.execute(
                f"SELECT version, name FROM {schema.MIGRATIONS_TABLE} ORDER BY version"
            ).fetchall()
        return catalog
    finally:
        connection.close()


def sqlite_tables(path: Path) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return {row[0] for row in rows}
    finally:
        connection.close()


async def exercise_store(url: str) -> tuple[int, ...]:
    """Open a store, run a session through it, return what opening it applied."""
    store = await open_store(url)
    try:
        session = await store.create_session(agent_id="cli-agent", user_id="u1")
        await store.append_message(session.session_id, "user", "hello")
        await store.append_message(session.session_id, "assistant", "hi there")
        messages = await store.list_messages(session.session_id)
        assert [(m.seq, m.role, m.content) for m in messages] == [
            (1, "user", "hello"),
            (2, "assistant", "hi there"),
        ]
        assert await store.delete_session(session.session_id)
        assert await store.get_session(session.session_id) is None
        return tuple(store.applied_migrations)
    finally:
        await store.close()


# ------------------------------------------------------------------ printing SQL


@pytest.mark.parametrize("db_type", DB_TYPES)
def test_schema_prints_upper_case_header_then_the_exact_store_script(db_type: str) -> None:
    result = mofa("db", "schema", "-t", db_type)
    assert result.exit_code == 0, result.output
    assert result.stdout == header(db_type.upper()) + schema.script(db_type)
    assert result.stderr == ""


@pytest.mark.parametrize("db_type", DB_TYPES)
def test_init_without_output_prints_the_seed_header_then_the_script(db_type: str) -> None:
    result = mofa("db", "init", "-t", db_type)
    assert result.exit_code == 0, result.output
    assert result.stdout == header(INIT_TITLES[db_type]) + schema.script(db_type)
    assert result.stderr == ""


@pytest.mark.parametrize("db_type", DB_TYPES)
def test_printed_statements_are_the_statements_a_store_runs(db_type: str) -> None:
    result = mofa("db", "schema", "-t", db_type)
    assert schema.split_statements(result.stdout) == schema.script_statements(db_type)
    for table in ["agents", "sessions", "messages", "agent_state", schema.MIGRATIONS_TABLE]:
        assert f"CREATE TABLE IF NOT EXISTS {table} (" in result.stdout


def test_sqlite_agents_table_is_the_seeds_one() -> None:
    result = mofa("db", "schema", "-t", "sqlite")
    assert (
        "CREATE TABLE IF NOT EXISTS agents (\n"
        "    id TEXT PRIMARY KEY,\n"
        "    name TEXT NOT NULL,\n"
        "    state TEXT NOT NULL,\n"
        "    started_at TEXT NOT NULL,\n"
        "    provider TEXT,\n"
        "    model TEXT,\n"
        "    description TEXT,\n"
        "    created_at TEXT DEFAULT CURRENT_TIMESTAMP,\n"
        "    updated_at TEXT DEFAULT CURRENT_TIMESTAMP\n"
        ");"
    ) in result.stdout


def test_db_type_is_case_insensitive() -> None:
    result = mofa("db", "schema", "-t", "PostgreS")
    assert result.exit_code == 0
    assert result.stdout.startswith("-- MoFA POSTGRES Schema\n")


@pytest.mark.parametrize("command", ["schema", "init"])
def test_unknown_db_type_lists_the_accepted_ones(command: str) -> None:
    result = mofa("db", command, "-t", "oracle")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "'oracle' is not one of 'postgres', 'mysql', 'sqlite'" in result.stderr


@pytest.mark.parametrize("command", ["schema", "init"])
def test_db_type_is_required(command: str) -> None:
    result = mofa("db", command)
    assert result.exit_code == 2
    assert "Missing option '-t' / '--db-type'" in result.stderr


# ------------------------------------------------------------------ saving SQL (-o)


@pytest.mark.parametrize("db_type", DB_TYPES)
def test_output_saves_the_script_and_prints_the_seeds_lines(
    db_type: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = mofa("db", "init", "-t", db_type, "-o", "migration.sql")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"→ Generating {db_type} migration script...",
        "✓ Migration script saved to: migration.sql",
        "You can then execute the SQL manually:",
        CLIENT_HINTS[db_type],
    ]
    assert result.stdout == ""
    saved = (tmp_path / "migration.sql").read_text("utf-8")
    assert saved == header(INIT_TITLES[db_type]) + schema.script(db_type)
    assert sorted(os.listdir(tmp_path)) == ["migration.sql"]  # no temporary file left


def test_output_hint_quotes_a_path_with_spaces(tmp_path: Path) -> None:
    target = tmp_path / "my scripts" / "init db.sql"
    target.parent.mkdir()
    result = mofa("db", "init", "-t", "sqlite", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1] == f"sqlite3 mofa.db < '{target}'"
    assert target.read_text("utf-8").startswith("-- MoFA SQLite Schema\n")


def test_output_replaces_an_existing_file_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "migration.sql"
    target.write_text("old content that is much longer than nothing " * 1000)
    target.chmod(0o640)
    result = mofa("db", "init", "-t", "postgres", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text("utf-8") == header("PostgreSQL") + schema.script("postgres")
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["migration.sql"]


def test_output_writes_through_a_symbolic_link_and_into_a_fifo(tmp_path: Path) -> None:
    target = tmp_path / "real.sql"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.sql"
    link.symlink_to(target)
    result = mofa("db", "init", "-t", "sqlite", "-o", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink()
    assert target.read_text("utf-8") == header("SQLite") + schema.script("sqlite")
    assert target.stat().st_mode & 0o777 == 0o640
    fifo = tmp_path / "pipe.sql"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    result = mofa("db", "init", "-t", "sqlite", "-o", str(fifo))
    received, _ = reader.communicate(timeout=30)
    assert result.exit_code == 0, result.output
    assert received == header("SQLite") + schema.script("sqlite")
    assert fifo.is_fifo()


def test_a_failed_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "migration.sql"
    target.write_text("-- the previous script\n")

    def failing_replace(source: object, destination: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    result = mofa("db", "init", "-t", "postgres", "-o", str(target))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert one_error_line(result) == (
        f"Error: Cannot write the migration script to {target}: No space left on device."
    )
    assert target.read_text() == "-- the previous script\n"
    assert sorted(os.listdir(tmp_path)) == ["migration.sql"]  # the temporary file is gone


def test_output_into_missing_directories_creates_them_as_export_does(tmp_path: Path) -> None:
    # As `session export -o exports/x.json` does (the seeds' export loop relies on it); the
    # success line names the whole path, so a mistyped directory shows.
    target = tmp_path / "sub" / "dir" / "m.sql"
    result = mofa("db", "init", "-t", "mysql", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[:2] == [
        "→ Generating mysql migration script...",
        f"✓ Migration script saved to: {target}",
    ]
    assert target.read_text(encoding="utf-8") == header("MySQL") + schema.script("mysql")
    assert os.listdir(target.parent) == ["m.sql"]


@pytest.mark.parametrize("where", ["file/m.sql", "file/deeper/m.sql"])
def test_output_under_a_file_is_one_error_line(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("not a directory")
    target = tmp_path / where
    result = mofa("db", "init", "-t", "mysql", "-o", str(target))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert one_error_line(result) == (
        f"Error: Cannot write the migration script to {target}: one of its parent "
        "directories is a file."
    )
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_output_onto_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = mofa("db", "init", "-t", "mysql", "-o", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_output_dash_means_stdout() -> None:
    result = mofa("db", "init", "-t", "sqlite", "-o", "-")
    assert result.exit_code == 0
    assert result.stdout == header("SQLite") + schema.script("sqlite")


# ------------------------------------------------------------------ -u on SQLite


def test_url_initializes_sqlite_with_the_seeds_lines(tmp_path: Path) -> None:
    database = tmp_path / "mofa.db"
    result = mofa("db", "init", "-t", "sqlite", "-u", f"sqlite://{database}")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "→ Initializing sqlite database...",
        f"  URL: sqlite://{database}",
        *SEED_LINES_AFTER_URL,
    ]
    assert result.stdout == ""
    assert sqlite_tables(database) == ALL_TABLES


def test_in_memory_sqlite_says_nothing_was_saved() -> None:
    result = mofa("db", "init", "-t", "sqlite", "-u", "sqlite::memory:")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-2:] == [
        "✓ Database tables initialized successfully!",
        "  Note: an in-memory SQLite database is gone when mofa exits; nothing was saved.",
    ]


def test_relative_sqlite_url_as_in_the_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = mofa("db", "init", "-t", "sqlite", "-u", "sqlite://./mofa.db")
    assert result.exit_code == 0, result.output
    assert "  URL: sqlite://./mofa.db" in result.stderr.splitlines()
    assert sqlite_tables(tmp_path / "mofa.db") == ALL_TABLES


def test_running_init_twice_changes_nothing_and_says_so(tmp_path: Path) -> None:
    database = tmp_path / "mofa.db"
    url = f"sqlite://{database}"
    assert mofa("db", "init", "-t", "sqlite", "-u", url).exit_code == 0
    connection = sqlite3.connect(database)
    with connection:
        connection.execute(
            "INSERT INTO sessions (session_id, created_at) VALUES ('kept', '2026-01-01')"
        )
    connection.close()
    before = sqlite_catalog(database)

    result = mofa("db", "init", "-t", "sqlite", "-u", url)

    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "→ Initializing sqlite database...",
        f"  URL: {url}",
        f"✓ Database schema is already up to date (version {schema.latest_version('sqlite')}); "
        "nothing changed.",
    ]
    assert sqlite_catalog(database) == before
    connection = sqlite3.connect(database)
    assert connection.execute("SELECT session_id FROM sessions").fetchall() == [("kept",)]
    connection.close()


def test_a_failing_statement_leaves_no_half_made_schema_on_sqlite(tmp_path: Path) -> None:
    database = tmp_path / "mofa.db"
    # An empty bookkeeping table made by something else, without mofa's name column: the
    # database reads as version 0, so agents, sessions, messages and their indexes are
    # created, and then recording the migration fails in the same transaction.
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("CREATE TABLE mofa_schema_migrations (version INTEGER PRIMARY KEY)")
    connection.close()

    result = mofa("db", "init", "-t", "sqlite", "-u", f"sqlite://{database}")

    assert "has no column named name" in assert_one_error_line(result)
    assert "✓" not in result.stdout
    assert sqlite_tables(database) == {"mofa_schema_migrations"}
    connection = sqlite3.connect(database)
    assert (
        connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall() == []
    )
    connection.close()


def test_a_table_named_like_an_index_is_refused_before_anything_changes(tmp_path: Path) -> None:
    database = tmp_path / "mofa.db"
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("CREATE TABLE idx_messages_session (id INTEGER PRIMARY KEY, body TEXT)")
        connection.execute("INSERT INTO idx_messages_session (body) VALUES ('theirs')")
    connection.close()

    result = mofa("db", "init", "-t", "sqlite", "-u", f"sqlite://{database}")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert one_error_line(result) == (
        f"Error: The SQLite database {str(database)!r} already has a relation named "
        "idx_messages_session (that is not an index), the name of mofa-sdk's index on "
        "messages; drop or rename it, or use an empty database for mofa."
    )
    assert sqlite_tables(database) == {"idx_messages_session"}
    connection = sqlite3.connect(database)
    assert connection.execute("SELECT body FROM idx_messages_session").fetchall() == [("theirs",)]
    connection.close()


def test_sqlite_catalog_is_the_same_from_init_open_store_and_the_sqlite3_client(
    tmp_path: Path,
) -> None:
    by_init, by_store, by_client = (tmp_path / name for name in ("a.db", "b.db", "c.db"))
    assert mofa("db", "init", "-t", "sqlite", "-u", f"sqlite://{by_init}").exit_code == 0
    asyncio.run(_open_and_close(f"sqlite://{by_store}"))
    assert mofa("db", "init", "-t", "sqlite", "-o", str(tmp_path / "migration.sql")).exit_code == 0
    with (tmp_path / "migration.sql").open("rb") as script:
        subprocess.run(["sqlite3", str(by_client)], stdin=script, check=True, timeout=60)

    expected = sqlite_catalog(by_store)
    assert expected["versions"] == recorded_versions("sqlite")
    assert len(expected["objects"]) > 10
    assert sqlite_catalog(by_init) == expected
    assert sqlite_catalog(by_client) == expected


async def _open_and_close(url: str) -> tuple[int, ...]:
    store = await open_store(url)
    try:
        return tuple(store.applied_migrations)
    finally:
        await store.close()


def test_seed_workflow_with_the_sqlite3_client(tmp_path: Path) -> None:
    """mofa db init -t sqlite -o migration.sql; sqlite3 mofa.db < migration.sql; use it."""
    saved = run_mofa("db", "init", "-t", "sqlite", "-o", "migration.sql", cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    assert saved.stderr.splitlines()[-1] == "sqlite3 mofa.db < migration.sql"

    client = subprocess.run(
        "sqlite3 mofa.db < migration.sql",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert client.returncode == 0, client.stderr
    assert client.stderr == ""

    applied = asyncio.run(exercise_store(f"sqlite://{tmp_path / 'mofa.db'}"))
    assert applied == ()  # the client already brought it to the latest version

    again = run_mofa("db", "init", "-t", "sqlite", "-u", "sqlite://./mofa.db", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already up to date" in again.stderr


#: A session and two messages, inserted by the sqlite3 client into the file it made.
SQLITE3_ROWS = """\
INSERT INTO agents (id, name, state, started_at) VALUES ('a1', 'a1', 'unknown', '2024-02-28 10:30:00.000000');
INSERT INTO sessions (session_id, agent_id, status, metadata, message_count, created_at, updated_at)
  VALUES ('s1', 'a1', 'active', '{}', 2, '2024-02-28 10:30:00.000000', '2024-02-28 10:31:00.000000');
INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) VALUES
  ('s1', 1, 'user', 'hello', '{}', '2024-02-28 10:30:30.000000'),
  ('s1', 2, 'assistant', 'hi there', '{}', '2024-02-28 10:31:00.000000');
"""  # noqa: E501 - SQL as a user types it


def _journal_mode(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        connection.close()


def test_read_commands_leave_a_file_made_by_the_sqlite3_client_as_it_is(tmp_path: Path) -> None:
    """list, show, export and open_store(create_schema=False) read a rollback-journal file
    without switching it to WAL or changing a byte of it."""
    saved = run_mofa("db", "init", "-t", "sqlite", "-o", "x.sql", cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    script = (tmp_path / "x.sql").read_text() + SQLITE3_ROWS
    subprocess.run(["sqlite3", "mofa.db"], input=script, text=True, cwd=tmp_path, check=True)
    database = tmp_path / "mofa.db"
    assert _journal_mode(database) == "delete"
    before = database.read_bytes()

    url = ["--database-url", "sqlite://mofa.db"]
    for command in (
        ["session", "list"],
        ["session", "list", "--output-format", "json"],
        ["session", "show", "s1"],
        ["session", "show", "s1", "--format", "yaml"],
        ["session", "export", "s1", "-o", "s1.json", "-f", "json"],
    ):
        result = run_mofa(*url, *command, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert "hi there" in (tmp_path / "s1.json").read_text()

    async def read() -> list[str]:
        store = await open_store(f"sqlite://{database}", create_schema=False)
        try:
            assert await store.get_session("s1") is not None
            return [m.content for m in await store.list_messages("s1")]
        finally:
            await store.close()

    assert asyncio.run(read()) == ["hello", "hi there"]
    assert _journal_mode(database) == "delete"
    assert database.read_bytes() == before
    # No -wal file was ever made (a rollback-journal file has none), nor a journal left.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mofa.db", "s1.json", "x.sql"]


def test_printed_sql_piped_into_sqlite3(tmp_path: Path) -> None:
    printed = run_mofa("db", "schema", "-t", "sqlite", cwd=tmp_path)
    assert printed.returncode == 0
    subprocess.run(
        ["sqlite3", str(tmp_path / "mofa.db")], input=printed.stdout, text=True, check=True
    )
    assert sqlite_tables(tmp_path / "mofa.db") == ALL_TABLES


def test_output_and_url_together_save_then_initialize(tmp_path: Path) -> None:
    database = tmp_path / "mofa.db"
    script = tmp_path / "migration.sql"
    result = mofa("db", "init", "-t", "sqlite", "-o", str(script), "-u", f"sqlite://{database}")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[:2] == [
        "→ Generating sqlite migration script...",
        f"✓ Migration script saved to: {script}",
    ]
    assert lines[2] == "→ Initializing sqlite database..."
    assert lines[-1] == "✓ Database tables initialized successfully!"
    assert script.read_text().startswith("-- MoFA SQLite Schema\n")
    assert sqlite_tables(database) == ALL_TABLES


def test_output_dash_with_url_keeps_progress_off_stdout(tmp_path: Path) -> None:
    database = tmp_path / "mofa.db"
    result = mofa("db", "init", "-t", "sqlite", "-o", "-", "-u", f"sqlite://{database}")
    assert result.exit_code == 0, result.output
    assert result.stdout == header("SQLite") + schema.script("sqlite")
    assert result.stderr.splitlines()[-1] == "✓ Database tables initialized successfully!"


# ------------------------------------------------------------------ -t and the URL must agree


@pytest.mark.parametrize(
    ("db_type", "url", "message"),
    [
        (
            "postgres",
            "mysql://user:pa55word@localhost/mofa",
            "Error: the URL is a mysql:// URL but -t is postgres; use -t mysql, "
            "or a postgresql:// URL to initialize a postgres database.",
        ),
        (
            "mysql",
            "postgresql://user:pa55word@localhost/mofa",
            "Error: the URL is a postgresql:// URL but -t is mysql; use -t postgres, "
            "or a mysql:// URL to initialize a mysql database.",
        ),
        (
            "postgres",
            "mariadb://user:pa55word@localhost/mofa",
            "Error: the URL is a mariadb:// URL but -t is postgres; use -t mysql, "
            "or a postgresql:// URL to initialize a postgres database.",
        ),
        (
            "sqlite",
            "postgres://user:pa55word@localhost/mofa",
            "Error: the URL is a postgres:// URL but -t is sqlite; use -t postgres, "
            "or a sqlite:// URL to initialize a sqlite database.",
        ),
        (
            "mysql",
            "sqlite://./mofa.db",
            "Error: the URL is a sqlite:// URL but -t is mysql; use -t sqlite, "
            "or a mysql:// URL to initialize a mysql database.",
        ),
        (
            "sqlite",
            "file:///tmp/mofa-data",
            "Error: the URL is a file:// URL, which names no SQL database; "
            "use a sqlite:// URL with -t sqlite.",
        ),
        (
            "postgres",
            "memory://",
            "Error: the URL is a memory:// URL, which names no SQL database; "
            "use a postgresql:// URL with -t postgres.",
        ),
    ],
)
def test_db_type_and_url_scheme_must_agree(db_type: str, url: str, message: str) -> None:
    result = mofa("db", "init", "-t", db_type, "-u", url)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == message
    assert "pa55word" not in result.output


@pytest.mark.parametrize(
    "url",
    [
        "oracle://scott:t1ger@localhost/orcl",
        "postgresql://user:t1ger@localhost:notaport/mofa",
        "user:t1ger@localhost/mofa",
        "postgresql//user:t1ger@localhost/mofa",
        "postgresql:/user:t1ger@localhost/mofa",
        "postgresql://user:t1g@r@localhost:notaport/mofa",
        "postgresql://user:t1ger@[::1/mofa",
        "postgres://localhost:99999/mofa?sslmode=require&password=t1ger",
        "",
    ],
)
def test_a_malformed_url_is_a_usage_error_without_the_password(url: str) -> None:
    result = mofa("db", "init", "-t", "postgres", "-u", url)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith("Error: ")
    assert "t1ger" not in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------ help


def test_db_help_explains_the_commands_with_the_seeds_examples() -> None:
    result = mofa("db", "--help")
    assert result.exit_code == 0
    text = result.stdout
    assert "Database setup and migration tools" in text
    assert "init" in text
    assert "schema" in text
    assert "mofa db init -t postgres -o migration.sql" in text
    assert 'mofa db init -t postgres -u "postgresql://user:pass@localhost/mofa"' in text
    assert "pip install 'mofa-sdk[db]'" in text


def test_db_help_lists_each_subcommand_once_with_the_seeds_description() -> None:
    text = mofa("db", "--help").stdout
    assert text.count("Commands:") == 1
    listed = text.split("Commands:\n")[1].splitlines()
    assert listed == [
        "  doctor  Check the store: schema, indexes, rows, permissions; each fix.",
        "  init    Initialize database tables (print, save or run the SQL).",
        "  schema  Show database schema SQL.",
    ]
    assert len(re.findall(r"^\s+init\s", text, re.MULTILINE)) == 1
    assert len(re.findall(r"^\s+schema\s", text, re.MULTILINE)) == 1


def test_db_init_help_explains_every_option() -> None:
    result = mofa("db", "init", "--help")
    assert result.exit_code == 0
    text = result.stdout
    assert "Usage: mofa db init [OPTIONS]" in text
    for option in ["-t, --db-type", "-o, --output PATH", "-u, --database-url URL"]:
        assert option in text
    assert "[postgres|mysql|sqlite|postgresql|mariadb]" in text
    for example in [
        "mofa db init -t postgres\n",
        "mofa db init -t postgres -o migration.sql",
        "psql -d mofa -f migration.sql",
        'mofa db init -t postgres -u "postgresql://user:pass@localhost/mofa"',
        'mofa db init -t mysql -u "mysql://user:pass@localhost/mofa"',
        'mofa db init -t sqlite -u "sqlite://./mofa.db"',
    ]:
        assert example in text


def test_db_schema_help_explains_the_option() -> None:
    result = mofa("db", "schema", "-h")
    assert result.exit_code == 0
    text = result.stdout
    assert "Usage: mofa db schema [OPTIONS]" in text
    assert "-t, --db-type [postgres|mysql|sqlite|postgresql|mariadb]" in text
    for db_type in DB_TYPES:
        assert f"mofa db schema -t {db_type}" in text


@pytest.mark.parametrize("args", [["db"], ["db", "init"], ["db", "schema"]])
def test_help_of_every_db_command_through_the_installed_script(
    args: list[str], tmp_path: Path
) -> None:
    result = run_mofa(*args, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: mofa {' '.join(args)}")
    assert result.stderr == ""


def test_root_help_lists_the_db_group() -> None:
    result = mofa("--help")
    assert result.exit_code == 0
    assert "db " in result.stdout


# ------------------------------------------------------- the global URL, -t left out


def test_db_init_runs_against_the_global_database_url(tmp_path: Path) -> None:
    """`mofa --database-url URL db init -t sqlite` creates the tables there (as -u does)."""
    path = tmp_path / "global.db"
    result = mofa("--database-url", f"sqlite://{path}", "db", "init", "-t", "sqlite")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # nothing printed: it ran
    assert result.stderr.splitlines()[-1] == "✓ Database tables initialized successfully!"
    assert "sessions.columns" in sqlite_catalog(path)


def test_db_init_takes_the_type_from_the_url(tmp_path: Path) -> None:
    path = tmp_path / "typed.db"
    result = mofa("db", "init", "-u", f"sqlite://{path}")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("→ Initializing sqlite database...\n")
    assert path.exists()
    again = mofa("--database-url", f"sqlite://{path}", "db", "init")
    assert again.exit_code == 0, again.output
    assert "already up to date" in again.stderr


@pytest.mark.parametrize(("alias", "dialect"), [("postgresql", "postgres"), ("mariadb", "mysql")])
def test_db_type_aliases(alias: str, dialect: str) -> None:
    assert mofa("db", "schema", "-t", alias).stdout == mofa("db", "schema", "-t", dialect).stdout
    printed = mofa("db", "init", "-t", alias)
    assert printed.exit_code == 0
    assert printed.stdout == mofa("db", "init", "-t", dialect).stdout


def test_db_init_without_a_url_prints_and_says_how_to_use_the_environments(
    tmp_path: Path,
) -> None:
    """The seeds make printing the default; an environment URL is named, never shown."""
    secret = "postgresql://user:s3cret@localhost/mofa"
    result = mofa("db", "init", "-t", "postgres", env={"DATABASE_URL": secret})
    assert result.exit_code == 0
    assert result.stdout.startswith("-- MoFA PostgreSQL Schema")
    assert result.stderr == (
        "Note: $DATABASE_URL is set; this prints the SQL only. To create the tables there, "
        'run: mofa db init -t postgres -u "$DATABASE_URL"\n'
    )
    assert "s3cret" not in result.output


def test_db_init_without_a_type_names_the_environments_url() -> None:
    """`export DATABASE_URL=…` then `mofa db init`, as a user of the seeds types it: the
    usage error says how to run it there (the URL is named, never shown)."""
    secret = "postgresql://user:s3cret@localhost/mofa"
    for name in ("DATABASE_URL", "MOFA_DATABASE_URL"):
        result = mofa("db", "init", env={name: secret})
        assert result.exit_code == 2
        assert result.stderr.splitlines()[-1] == (
            "Error: Missing option '-t' / '--db-type' (postgres, mysql or sqlite); it may be "
            "left out only when a URL (-u or mofa --database-url) says the type. "
            f'${name} is set: to create the tables there, run: mofa db init -u "${name}"'
        )
        assert "s3cret" not in result.output


def test_a_url_that_names_no_sql_database_needs_no_type_to_be_refused(tmp_path: Path) -> None:
    result = mofa("--database-url", f"file://{tmp_path}", "db", "init")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: the URL is a file:// URL, which names no SQL database; give a postgresql://, "
        "mysql:// or sqlite:// URL."
    )
