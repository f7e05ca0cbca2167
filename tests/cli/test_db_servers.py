"""``mofa db init`` on the real PostgreSQL and MariaDB servers.

Each test gets throwaway databases (tests/servers.py) and, where it needs one, a throwaway
database user with a unique name, dropped afterwards. What is compared is the server's own
catalog (information_schema / pg_catalog), never the SQL text we sent.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from mofa.persistence import open_store, schema
from tests._cli import MOFA, assert_one_error_line, mofa, run_mofa
from tests.cli.test_db import (
    ALL_TABLES,
    SEED_LINES_AFTER_URL,
    _open_and_close,
    exercise_store,
)
from tests.conftest import _params, all_versions, recorded_versions
from tests.servers import (
    MYSQL_ADMIN_URL,
    MYSQL_SERVER_URL,
    POSTGRES_ADMIN_URL,
    database_name,
    mysql_account,
    mysql_rows,
    postgres_account,
    postgres_rows,
    require_server,
    server_database,
    server_rows,
    server_unavailable,
    with_credentials,
    with_database,
)

SERVER_TYPES = _params(["postgres", "mysql"])


# ------------------------------------------------------------------ catalogs


_PG_CATALOG = {
    "columns": "SELECT table_name, column_name, ordinal_position, data_type, "
    "character_maximum_length, is_nullable, column_default FROM information_schema.columns "
    "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes "
    "WHERE schemaname = 'public' ORDER BY tablename, indexname",
    "constraints": "SELECT conrelid::regclass::text, conname, contype, "
    "pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
    "ORDER BY 1, 2",
    "sequences": "SELECT sequence_name, data_type FROM information_schema.sequences "
    "WHERE sequence_schema = 'public' ORDER BY 1",
    "tables": "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
}

_MYSQL_CATALOG = {
    "tables": "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1",
    "columns": "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, "
    "COLUMN_DEFAULT, EXTRA, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1, 3",
    "indexes": "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME "
    "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1, 2, 4",
    "foreign_keys": "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, "
    "k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE "
    "FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r "
    "ON r.CONSTRAINT_SCHEMA = k.TABLE_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
    "WHERE k.TABLE_SCHEMA = DATABASE() ORDER BY 1, 2, 3",
    "checks": "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE "
    "FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() "
    "ORDER BY 1, 2",
}


def _catalog_queries(db_type: str) -> dict[str, str]:
    return _PG_CATALOG if db_type == "postgres" else _MYSQL_CATALOG


async def _catalog_async(db_type: str, url: str) -> dict[str, Any]:
    queries = _catalog_queries(db_type)
    catalog = {name: await server_rows(db_type, url, query) for name, query in queries.items()}
    tables = {row[0] for row in catalog["tables"]}
    if schema.MIGRATIONS_TABLE in tables:
        catalog["versions"] = await server_rows(
            db_type, url, f"SELECT version, name FROM {schema.MIGRATIONS_TABLE} ORDER BY version"
        )
    return catalog


def catalog(db_type: str, url: str) -> dict[str, Any]:
    return asyncio.run(_catalog_async(db_type, url))


def table_set(db_type: str, url: str) -> set[str]:
    """The names of the tables in the database of ``url``."""
    rows = asyncio.run(server_rows(db_type, url, _catalog_queries(db_type)["tables"]))
    return {row[0] for row in rows}


def client_environment(db_type: str) -> dict[str, str]:
    """Connection defaults for psql / mariadb, so the seeds' commands run unchanged, and the
    installed ``mofa`` first on PATH."""
    admin = urlsplit(POSTGRES_ADMIN_URL if db_type == "postgres" else MYSQL_ADMIN_URL)
    environment = dict(os.environ)
    environment["PATH"] = f"{MOFA.parent}{os.pathsep}{environment.get('PATH', '')}"
    if db_type == "postgres":
        environment.update(
            PGHOST=admin.hostname or "127.0.0.1",
            PGPORT=str(admin.port or 5432),
            PGUSER=admin.username or "postgres",
        )
        if admin.password:
            environment["PGPASSWORD"] = admin.password
    else:
        environment.update(
            MYSQL_HOST=admin.hostname or "127.0.0.1",
            MYSQL_TCP_PORT=str(admin.port or 3306),
            USER=admin.username or "root",
        )
        if admin.password:
            environment["MYSQL_PWD"] = admin.password
    return environment


# ------------------------------------------------------------------ -u: output, catalog, twice


@pytest.mark.parametrize("db_type", SERVER_TYPES)
def test_init_url_catalog_equals_open_store_and_a_second_run_changes_nothing(
    db_type: str,
) -> None:
    with server_database(db_type) as by_init, server_database(db_type) as by_store:
        result = mofa("db", "init", "-t", db_type, "-u", by_init)
        assert result.exit_code == 0, result.output
        assert result.stderr.splitlines() == [
            f"→ Initializing {db_type} database...",
            f"  URL: {by_init}",
            *SEED_LINES_AFTER_URL,
        ]
        assert result.stdout == ""

        assert asyncio.run(_open_and_close(by_store)) == all_versions(db_type)
        expected = catalog(db_type, by_store)
        assert {row[0] for row in expected["tables"]} == ALL_TABLES
        assert expected["versions"] == recorded_versions(db_type)
        assert catalog(db_type, by_init) == expected

        again = mofa("db", "init", "-t", db_type, "-u", by_init)
        assert again.exit_code == 0, again.output
        assert again.stderr.splitlines()[2:] == [
            f"✓ Database schema is already up to date (version {schema.latest_version(db_type)}); "
            "nothing changed."
        ]
        assert catalog(db_type, by_init) == expected
        # The store sees a current schema too: nothing applied, and it works.
        assert asyncio.run(exercise_store(by_init)) == ()


# ------------------------------------------------------------------ the seeds' client workflows


def _run_client(command: str, db_type: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        shell=True,
        cwd=cwd,
        env=client_environment(db_type),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.postgres
def test_saved_script_runs_with_psql_and_gives_the_stores_catalog(tmp_path: Path) -> None:
    with server_database("postgres") as by_client, server_database("postgres") as by_store:
        saved = run_mofa("db", "init", "-t", "postgres", "-o", "migration.sql", cwd=tmp_path)
        assert saved.returncode == 0, saved.stderr
        assert saved.stderr.splitlines()[-1] == "psql -U user -d mofa -f migration.sql"

        # The seeds' command, as written: psql -d mofa -f migration.sql
        client = _run_client(
            f"psql -d {database_name(by_client)} -f migration.sql", "postgres", tmp_path
        )
        # Without ON_ERROR_STOP psql exits 0 even after a failed statement, so its stderr is
        # the real verdict: not one error, not one notice.
        assert client.returncode == 0, client.stderr
        assert client.stderr == ""

        asyncio.run(_open_and_close(by_store))
        assert catalog("postgres", by_client) == catalog("postgres", by_store)
        assert asyncio.run(exercise_store(by_client)) == ()

        # Running the script a second time is harmless too (IF NOT EXISTS / ON CONFLICT).
        rerun = _run_client(
            f"psql -d {database_name(by_client)} -f migration.sql", "postgres", tmp_path
        )
        assert "ERROR" not in rerun.stderr


@pytest.mark.mysql
def test_saved_script_runs_with_the_mariadb_client_and_gives_the_stores_catalog(
    tmp_path: Path,
) -> None:
    with server_database("mysql") as by_client, server_database("mysql") as by_store:
        saved = run_mofa("db", "init", "-t", "mysql", "-o", "migration.sql", cwd=tmp_path)
        assert saved.returncode == 0, saved.stderr
        assert saved.stderr.splitlines()[-1] == "mysql -u user -p mofa < migration.sql"

        client = _run_client(
            f"mariadb {database_name(by_client)} < migration.sql", "mysql", tmp_path
        )
        assert client.returncode == 0, client.stderr
        assert client.stderr == ""

        asyncio.run(_open_and_close(by_store))
        assert catalog("mysql", by_client) == catalog("mysql", by_store)
        assert asyncio.run(exercise_store(by_client)) == ()

        rerun = _run_client(
            f"mariadb {database_name(by_client)} < migration.sql", "mysql", tmp_path
        )
        assert rerun.returncode == 0, rerun.stderr


@pytest.mark.postgres
def test_printed_sql_piped_into_psql(tmp_path: Path) -> None:
    with server_database("postgres") as url:
        piped = _run_client(
            f"mofa db schema -t postgres | psql -q -d {database_name(url)}", "postgres", tmp_path
        )
        assert piped.returncode == 0, piped.stderr
        assert piped.stderr == ""
        assert table_set("postgres", url) == ALL_TABLES


# ------------------------------------------------------------------ all or nothing


@pytest.mark.postgres
def test_a_failing_statement_leaves_no_half_made_schema_on_postgres() -> None:
    with server_database("postgres") as url:
        # An empty bookkeeping table made by something else, without mofa's name column: the
        # database reads as version 0, so every table and index is created, and then
        # recording the migration fails in the same transaction.
        asyncio.run(
            postgres_rows(url, "CREATE TABLE mofa_schema_migrations (version INTEGER PRIMARY KEY)")
        )
        result = mofa("db", "init", "-t", "postgres", "-u", url)
        line = assert_one_error_line(result)
        assert 'column "name" of relation "mofa_schema_migrations" does not exist' in line
        assert "✓" not in result.stdout
        assert table_set("postgres", url) == {"mofa_schema_migrations"}


@pytest.mark.postgres
def test_a_type_named_like_a_table_is_refused_before_anything_changes() -> None:
    with server_database("postgres") as url:
        asyncio.run(postgres_rows(url, "CREATE TYPE messages AS (body TEXT)"))
        result = mofa("db", "init", "-t", "postgres", "-u", url)
        line = assert_one_error_line(result)
        assert "already has a table named messages that mofa-sdk did not create" in line
        assert table_set("postgres", url) == set()
        assert asyncio.run(
            postgres_rows(url, "SELECT typname FROM pg_type WHERE typname = 'messages'")
        )


@pytest.mark.postgres
def test_a_user_without_create_privilege_leaves_nothing_behind() -> None:
    """A user who may create nothing in the database: the first CREATE fails, nothing is left."""
    with postgres_account() as (user, password), server_database("postgres") as url:
        asyncio.run(postgres_rows(url, f"GRANT CONNECT ON DATABASE {database_name(url)} TO {user}"))
        result = mofa("db", "init", "-t", "postgres", "-u", with_credentials(url, user, password))
        line = assert_one_error_line(result)
        assert line.startswith("Error: SQL error: permission denied for schema public — grant")
        assert table_set("postgres", url) == set()


# ------------------------------------------------------------------ errors, as the seeds show


@pytest.mark.postgres
def test_postgres_connection_refused_names_pg_isready() -> None:
    result = mofa(
        "db", "init", "-t", "postgres", "-u", "postgresql://user:S3cr3tPw@127.0.0.1:1/mofa"
    )
    assert assert_one_error_line(result) == (
        "Error: Failed to connect to PostgreSQL at 127.0.0.1:1: connection refused — is the "
        "server running? Check with: pg_isready -h 127.0.0.1 -p 1"
    )
    assert result.stderr.splitlines()[:2] == [
        "→ Initializing postgres database...",
        "  URL: postgresql://user:****@127.0.0.1:1/mofa",
    ]
    assert result.stdout == ""
    assert "S3cr3tPw" not in result.output


@pytest.mark.postgres
def test_postgres_unknown_user_is_an_authentication_error() -> None:
    require_server("postgres")
    user = f"mofa_nobody_{secrets.token_hex(3)}"
    url = with_credentials(POSTGRES_ADMIN_URL, user, "S3cr3tPw")
    result = mofa("db", "init", "-t", "postgres", "-u", url)
    line = assert_one_error_line(result)
    assert line.startswith("Error: Failed to connect to PostgreSQL at ")
    assert f'role "{user}" does not exist' in line
    assert "check the user name" in line
    assert "S3cr3tPw" not in result.output


@pytest.mark.postgres
def test_postgres_missing_database_names_createdb() -> None:
    require_server("postgres")
    name = f"mofa_missing_{secrets.token_hex(3)}"
    result = mofa("db", "init", "-t", "postgres", "-u", with_database(POSTGRES_ADMIN_URL, name))
    line = assert_one_error_line(result)
    assert f'database "{name}" does not exist — create it with: createdb {name}' in line


@pytest.mark.postgres
def test_postgres_permission_denied_on_a_table_names_the_grant() -> None:
    """A user with only CONNECT runs db init on a database an owner initialized."""
    with postgres_account() as (user, password), server_database("postgres") as url:
        assert mofa("db", "init", "-t", "postgres", "-u", url).exit_code == 0
        asyncio.run(postgres_rows(url, f"GRANT CONNECT ON DATABASE {database_name(url)} TO {user}"))
        result = mofa("db", "init", "-t", "postgres", "-u", with_credentials(url, user, password))
        line = assert_one_error_line(result)
        assert line.startswith(
            f"Error: SQL error: permission denied for table {schema.MIGRATIONS_TABLE} — grant "
        )
        assert f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {user}" in (
            line
        )
        assert password not in result.output


@pytest.mark.mysql
def test_mysql_connection_refused() -> None:
    result = mofa("db", "init", "-t", "mysql", "-u", "mysql://user:S3cr3tPw@127.0.0.1:1/mofa")
    line = assert_one_error_line(result)
    assert line.startswith("Error: Failed to connect to MySQL at 127.0.0.1:1: connection refused")
    assert "is the server running?" in line
    assert "S3cr3tPw" not in result.output


@pytest.mark.mysql
def test_mysql_wrong_password_is_an_authentication_error() -> None:
    with mysql_account() as (user, password), server_database("mysql") as url:
        wrong = with_credentials(url, user, password + "x")
        result = mofa("db", "init", "-t", "mysql", "-u", wrong)
        line = assert_one_error_line(result)
        assert f"refused user {user!r}: access denied" in line
        assert password not in result.output


@pytest.mark.mysql
def test_mysql_missing_database_says_how_to_create_it() -> None:
    require_server("mysql")
    name = f"mofa_missing_{secrets.token_hex(3)}"
    result = mofa("db", "init", "-t", "mysql", "-u", with_database(MYSQL_ADMIN_URL, name))
    line = assert_one_error_line(result)
    assert f"database {name!r} does not exist — create it with: CREATE DATABASE {name}" in line


@pytest.mark.mysql
def test_mysql_permission_denied_names_the_grant() -> None:
    with mysql_account() as (user, password), server_database("mysql") as url:
        assert mofa("db", "init", "-t", "mysql", "-u", url).exit_code == 0
        # USAGE only: the user may log in, but not read the database's tables.
        result = mofa("db", "init", "-t", "mysql", "-u", with_credentials(url, user, password))
        line = assert_one_error_line(result)
        assert "denied" in line
        assert "GRANT SELECT, INSERT, UPDATE, DELETE ON" in line
        assert password not in result.output


# ------------------------------------------------------------------ passwords never shown


SECRET = "Zq8-s3cret-Pw"


def _secrets_in(text: str) -> list[str]:
    forms = [SECRET, quote(SECRET, safe=""), "p@" + SECRET + ":x", quote("p@" + SECRET + ":x")]
    return [form for form in forms if form in text]


def _exception_texts(exception: BaseException | None) -> str:
    """str() and repr() of an exception and everything it was raised from."""
    texts = []
    seen: set[int] = set()
    while exception is not None and id(exception) not in seen:
        seen.add(id(exception))
        texts += [str(exception), repr(exception), *map(str, exception.args)]
        exception = exception.__cause__ or exception.__context__
    return "\n".join(texts)


MASKING_CASES = [
    # (db type, URL, the URL line as it must be shown)
    (
        "postgres",
        f"postgresql://user:{SECRET}@127.0.0.1:1/mofa",
        "postgresql://user:****@127.0.0.1:1/mofa",
    ),
    (
        "postgres",
        f"postgresql://user:{quote('p@' + SECRET + ':x', safe='')}@127.0.0.1:1/mofa",
        "postgresql://user:****@127.0.0.1:1/mofa",
    ),
    ("postgres", "postgresql://user@127.0.0.1:1/mofa", "postgresql://user@127.0.0.1:1/mofa"),
    (
        "postgres",
        f"postgresql://user@127.0.0.1:1/mofa?sslmode=disable&password={SECRET}",
        "postgresql://user@127.0.0.1:1/mofa?sslmode=disable&password=****",
    ),
    (
        "postgres",
        f"postgresql://user:{SECRET}@/mofa?host=/nonexistent/socket/dir",
        "postgresql://user:****@/mofa?host=/nonexistent/socket/dir",
    ),
    (
        "mysql",
        f"mysql://user:{SECRET}@127.0.0.1:1/mofa",
        "mysql://user:****@127.0.0.1:1/mofa",
    ),
    (
        "mysql",
        f"mysql://user:{quote('p@' + SECRET + ':x', safe='')}@localhost/mofa"
        "?socket=/nonexistent/mysqld.sock",
        "mysql://user:****@localhost/mofa?socket=/nonexistent/mysqld.sock",
    ),
    (
        "mysql",
        f"mariadb://user@127.0.0.1:1/mofa?password={SECRET}",
        "mariadb://user@127.0.0.1:1/mofa?password=****",
    ),
]


@pytest.mark.parametrize(("db_type", "url", "shown"), MASKING_CASES)
def test_failing_runs_never_show_the_password(db_type: str, url: str, shown: str) -> None:
    result = mofa("db", "init", "-t", db_type, "-u", url)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[1] == f"  URL: {shown}"
    assert _secrets_in(result.stderr + result.stdout) == []

    # The exception the CLI raised, and every exception it came from.
    from mofa.cli import cli

    with pytest.raises(Exception) as raised:  # noqa: PT011 - any error, scanned below
        cli.main(["db", "init", "-t", db_type, "-u", url], prog_name="mofa", standalone_mode=False)
    assert _secrets_in(_exception_texts(raised.value)) == []

    # And the real console script, as a user runs it.
    real = run_mofa("db", "init", "-t", db_type, "-u", url, cwd=Path.cwd())
    assert real.returncode == 1
    assert _secrets_in(real.stderr + real.stdout) == []
    assert real.stdout == ""
    assert real.stderr.splitlines()[-1].startswith("Error: ")


@pytest.mark.postgres
def test_a_succeeding_postgres_run_never_shows_the_password() -> None:
    with server_database("postgres") as url:
        # trust auth on 127.0.0.1 accepts any password: the run succeeds with one in the URL.
        with_secret = with_credentials(url, urlsplit(url).username or "postgres", SECRET)
        real = run_mofa("db", "init", "-t", "postgres", "-u", with_secret, cwd=Path.cwd())
        assert real.returncode == 0, real.stdout
        assert "  URL: " + with_secret.replace(SECRET, "****") in real.stderr.splitlines()
        assert _secrets_in(real.stderr + real.stdout) == []


@pytest.mark.mysql
def test_a_succeeding_mysql_run_never_shows_the_password() -> None:
    with mysql_account(password=SECRET) as (user, password), server_database("mysql") as url:
        name = database_name(url)
        asyncio.run(mysql_rows(MYSQL_SERVER_URL, f"GRANT ALL ON `{name}`.* TO '{user}'@'%'"))
        with_secret = with_credentials(url, user, password)
        real = run_mofa("db", "init", "-t", "mysql", "-u", with_secret, cwd=Path.cwd())
        assert real.returncode == 0, real.stdout
        assert "✓ Database tables initialized successfully!" in real.stderr
        assert _secrets_in(real.stderr + real.stdout) == []


# ------------------------------------------------------------------ the seeds' app user


async def _run_the_whole_store(url: str) -> None:
    store = await open_store(url)
    try:
        assert store.applied_migrations == ()
        await store.upsert_agent("app-agent", name="App Agent", provider="openai", model="gpt")
        first = await store.create_session(agent_id="app-agent", user_id="u1", tenant_id="t1")
        second = await store.create_session(agent_id="app-agent", user_id="u1", tenant_id="t1")
        await store.append_message(first.session_id, "user", "hello")
        await store.append_message(first.session_id, "assistant", "hi", metadata={"model": "m"})
        await store.save_state(first.session_id, {"step": 1})
        await store.update_session(first.session_id, status="closed", metadata={"k": "v"})
        messages = await store.list_messages(first.session_id)
        assert [m.content for m in messages] == ["hello", "hi"]
        assert (await store.get_session(first.session_id)).message_count == 2  # type: ignore[union-attr]
        listed = await store.list_sessions(agent_id="app-agent")
        assert {s.session_id for s in listed} == {first.session_id, second.session_id}
        assert (await store.get_state(first.session_id)).state == {"step": 1}  # type: ignore[union-attr]
        assert await store.delete_session(first.session_id)
        assert await store.get_session(first.session_id) is None
        assert await store.count_messages(second.session_id) == 0
    finally:
        await store.close()


@pytest.mark.postgres
def test_the_seeds_postgres_app_user_runs_the_whole_store() -> None:
    with postgres_account() as (user, password), server_database("postgres") as url:
        name = database_name(url)
        # An owner (the admin) creates the tables first.
        assert mofa("db", "init", "-t", "postgres", "-u", url).exit_code == 0
        # The seeds' statements, exactly (with this run's user and database names).
        for statement in [
            f"GRANT CONNECT ON DATABASE {name} TO {user}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {user}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {user}",
        ]:
            asyncio.run(postgres_rows(url, statement))
        app_url = with_credentials(url, user, password)

        # The app user is what the seeds describe: it can create nothing.
        is_super = asyncio.run(
            postgres_rows(app_url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        )
        assert is_super == [(False,)]
        with pytest.raises(Exception, match="permission denied for schema public"):
            asyncio.run(postgres_rows(app_url, "CREATE TABLE not_allowed (id INT)"))

        again = mofa("db", "init", "-t", "postgres", "-u", app_url)
        assert again.exit_code == 0, again.output
        assert "already up to date" in again.stderr
        asyncio.run(_run_the_whole_store(app_url))


@pytest.mark.mysql
def test_the_seeds_mariadb_app_user_runs_the_whole_store() -> None:
    # The account first: it skips the test (or fails it in CI) when the server is down.
    with mysql_account(host="localhost") as (user, password), server_database("mysql") as url:
        socket = asyncio.run(mysql_rows(MYSQL_SERVER_URL, "SELECT @@socket"))[0][0]
        if not socket or not Path(socket).exists():
            server_unavailable("mysql", f"its socket {socket!r} is not on this machine")
        name = database_name(url)
        assert mofa("db", "init", "-t", "mysql", "-u", url).exit_code == 0
        # The seeds' statements, exactly (with this run's user and database names).
        for statement in [
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name}.* TO '{user}'@'localhost'",
            "FLUSH PRIVILEGES",
        ]:
            asyncio.run(mysql_rows(MYSQL_SERVER_URL, statement))
        # 'user'@'localhost' matches only socket connections here (skip_name_resolve): connect
        # through the socket, so the account, its password and its grants are all exercised.
        app_url = f"mysql://{user}:{password}@localhost/{name}?socket={socket}"

        wrong = mofa("db", "init", "-t", "mysql", "-u", app_url.replace(password, password + "x"))
        assert "access denied" in assert_one_error_line(wrong)

        again = mofa("db", "init", "-t", "mysql", "-u", app_url)
        assert again.exit_code == 0, again.output
        assert "already up to date" in again.stderr
        asyncio.run(_run_the_whole_store(app_url))


# ------------------------------------------------------------------ two at once


def _two_inits_at_once(db_type: str, url: str, cwd: Path) -> list[str]:
    processes = [
        subprocess.Popen(
            [str(MOFA), "db", "init", "-t", db_type, "-u", url],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        assert stdout == ""  # the progress lines are on stderr
        outcomes.append(stderr.splitlines()[-1])
    return sorted(outcomes)


@pytest.mark.parametrize("db_type", _params(["postgres", "mysql", "sqlite"]))
def test_two_inits_at_once_create_the_schema_once(db_type: str, tmp_path: Path) -> None:
    if db_type == "sqlite":
        url = f"sqlite://{tmp_path / 'mofa.db'}"
        outcomes = _two_inits_at_once(db_type, url, tmp_path)
    else:
        with server_database(db_type) as url:
            outcomes = _two_inits_at_once(db_type, url, tmp_path)
            assert {row[0] for row in catalog(db_type, url)["tables"]} == ALL_TABLES
            assert catalog(db_type, url)["versions"] == recorded_versions(db_type)
    assert outcomes == [
        f"✓ Database schema is already up to date (version {schema.latest_version(db_type)}); "
        "nothing changed.",
        "✓ Database tables initialized successfully!",
    ]
