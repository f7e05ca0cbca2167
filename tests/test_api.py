"""The public surface: pinned names, URL parsing, password masking, lazy backends."""

from __future__ import annotations

import logging

import pytest

import mofa
import mofa.persistence
from mofa.persistence import InvalidInputError, InvalidURLError, mask_url, open_store, parse_url
from mofa.persistence.backends.memory import InMemoryStore


def test_version() -> None:
    assert mofa.__version__ == "0.1.0"


def test_persistence_all_is_pinned_and_sorted() -> None:
    def isort_order(name: str) -> tuple[int, str]:  # constants, classes, functions (ruff RUF022)
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert mofa.persistence.__all__ == sorted(mofa.persistence.__all__, key=isort_order)
    assert set(mofa.persistence.__all__) == {
        "SHOWN_PARAMETERS",
        "UNSET",
        "Agent",
        "AgentExistsError",
        "AgentState",
        "AuthenticationError",
        "BaseStore",
        "ConflictError",
        "DamagedRecordError",
        "DatabaseNotFoundError",
        "DatabaseURL",
        "HealthFacts",
        "FileStore",
        "InMemoryStore",
        "InvalidInputError",
        "InvalidURLError",
        "Message",
        "MissingDependencyError",
        "MySqlStore",
        "NewMessage",
        "NotFoundError",
        "Owner",
        "PermissionDeniedError",
        "PersistenceError",
        "PersistencePlugin",
        "PostgresStore",
        "PruneResult",
        "QueryError",
        "Role",
        "SchemaError",
        "Session",
        "SessionExistsError",
        "SessionNotFoundError",
        "SessionStatus",
        "SqliteStore",
        "Store",
        "StoreClosedError",
        "StoreConnectionError",
        "StoreCounts",
        "mask_url",
        "new_session_id",
        "open_store",
        "parse_url",
    }
    for name in mofa.persistence.__all__:
        assert getattr(mofa.persistence, name) is not None


@pytest.mark.parametrize(
    ("url", "backend", "fields"),
    [
        (
            "postgres://user:pass@localhost/mofa",
            "postgres",
            {"username": "user", "password": "pass", "host": "localhost", "database": "mofa"},
        ),
        (
            "postgresql://mofa_user:secret@localhost:5432/mofa",
            "postgres",
            {"port": 5432, "database": "mofa"},
        ),
        (
            "postgresql://user:pass@host/db?sslmode=require",
            "postgres",
            {"query": {"sslmode": "require"}},
        ),
        (
            "postgresql:///dbname?host=/var/run/postgresql",
            "postgres",
            {"host": None, "database": "dbname", "query": {"host": "/var/run/postgresql"}},
        ),
        (
            "mysql://mofa_user:secret@localhost:3306/mofa",
            "mysql",
            {"username": "mofa_user", "port": 3306},
        ),
        (
            "mariadb://user:pass@host/db?ssl-mode=REQUIRED",
            "mysql",
            {"query": {"ssl-mode": "REQUIRED"}},
        ),
        (
            "mysql://user:pass@localhost/db?socket=/var/run/mysqld/mysqld.sock",
            "mysql",
            {"query": {"socket": "/var/run/mysqld/mysqld.sock"}},
        ),
        ("sqlite://./mofa.db", "sqlite", {"path": "./mofa.db"}),
        ("sqlite://mofa.db", "sqlite", {"path": "mofa.db"}),
        ("sqlite:///absolute/path/to/mofa.db", "sqlite", {"path": "/absolute/path/to/mofa.db"}),
        ("sqlite::memory:", "sqlite", {"path": ":memory:"}),
        ("memory://", "memory", {}),
        ("file:///var/lib/mofa", "files", {"path": "/var/lib/mofa"}),
        (
            "postgresql://us%40er:p%40ss%3Aword@h/db",
            "postgres",
            {"username": "us@er", "password": "p@ss:word"},
        ),
    ],
)
def test_parse_url(url: str, backend: str, fields: dict[str, object]) -> None:
    parsed = parse_url(url)
    assert parsed.backend == backend
    for name, value in fields.items():
        assert getattr(parsed, name) == value


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "mofa.db",
        "redis://localhost",
        "http://x",
        "sqlite:relative.db",
        "postgres:/missing-slash",
        "postgres://u:p@h:notaport/db",
        "postgres://u:p@h:70000/db",
        "memory://host",
        "memory:///tmp/x?shared=1",
        "sqlite:///tmp/x.db?mode=ro",
        "sqlite://./x.db?busy_timeout=abc",
        "sqlite://./x.db?busy_timeout=5&lock_timeout=30",
        "sqlite:///tmp/x.db?",
        "sqlite://:memory:?cache=shared",
        "sqlite3:///tmp/x.db?journal_mode=off",
        "file:///tmp/mofa?max_workers=2",
        "file://./data?",
    ],
)
def test_bad_urls_are_one_clear_error(url: str) -> None:
    with pytest.raises(InvalidURLError) as caught:
        parse_url(url)
    message = str(caught.value)
    assert message.endswith(".")
    assert "\n" not in message
    assert ":p@" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "sqlite:///tmp/x.db?mode=ro",
            "The SQLite URL 'sqlite:///tmp/x.db?mode=****' has the parameter 'mode', but sqlite: "
            "URLs take no parameters and read-only opening is not supported; remove the query "
            "string (busy_timeout and lock_timeout are keyword options of open_store() and "
            "SqliteStore.connect(), not URL parameters; write a '?' in a file name as %3F).",
        ),
        (
            "sqlite://./x.db?busy_timeout=abc&lock_timeout=1",
            "The SQLite URL 'sqlite://./x.db?busy_timeout=****&lock_timeout=****' has the "
            "parameters 'busy_timeout', 'lock_timeout', but sqlite: URLs take no parameters; "
            "remove the query string (busy_timeout and lock_timeout are keyword options of "
            "open_store() and SqliteStore.connect(), not URL parameters; write a '?' in a file "
            "name as %3F).",
        ),
        (
            "file:///tmp/mofa?max_workers=2",
            "The file store URL 'file:///tmp/mofa?max_workers=****' has the parameter "
            "'max_workers', but file: URLs take no parameters; remove the query string "
            "(max_workers is a keyword option of open_store() and FileStore.connect(), not a URL "
            "parameter; write a '?' in a directory name as %3F).",
        ),
    ],
)
async def test_sqlite_and_file_urls_take_no_parameters(url: str, expected: str) -> None:
    with pytest.raises(InvalidURLError) as caught:
        await open_store(url)
    assert str(caught.value) == expected


def test_a_question_mark_in_a_sqlite_path_is_percent_encoded() -> None:
    assert parse_url("sqlite:///tmp/what%3F.db").path == "/tmp/what?.db"
    assert parse_url("file:///tmp/what%3F").path == "/tmp/what?"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:pass@localhost/mofa", "postgresql://user:****@localhost/mofa"),
        (
            "postgresql://u:p%40s%3As@h:5/d?sslmode=require",
            "postgresql://u:****@h:5/d?sslmode=require",
        ),
        ("postgresql://user:p@ss@host/db", "postgresql://user:****@host/db"),
        ("postgresql://user:pa/ss@host/db", "postgresql://user:****@host/db"),
        ("postgresql://user:pa?ss@host/db", "postgresql://user:****@host/db"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        (
            "postgresql:///db?host=/run/pg&password=secret",
            "postgresql:///db?host=/run/pg&password=****",
        ),
        (
            "mysql://u:secret@localhost/db?socket=/x.sock",
            "mysql://u:****@localhost/db?socket=/x.sock",
        ),
        ("sqlite:///home/me/mofa.db", "sqlite:///home/me/mofa.db"),
        ("postgresql:/user:pw@host/db", "postgresql:/user:****@host/db"),
        ("postgresql//user:pw@host/db", "postgresql//user:****@host/db"),
        ("postgresql:user:pw@host/db", "postgresql:****@host/db"),
        ("user:pw@host/db", "user:****@host/db"),
        # Malformed and holding '#', '?' or '/' in the password: once shown in clear.
        ("postgresql:/user:pa#ss@host/db", "postgresql:/user:****@host/db"),
        ("postgresql//user:pa?ss@host/db", "postgresql//user:****@host/db"),
        ("postgresql:/user:t1g?er@localhost/mofa", "postgresql:/user:****@localhost/mofa"),
        ("user:pa/ss@host/db", "user:****@host/db"),
        ("user:se#cret@host/db", "user:****@host/db"),
    ],
)
def test_passwords_are_masked(url: str, expected: str) -> None:
    assert mask_url(url) == expected
    try:
        parsed = parse_url(url)
    except InvalidURLError as exc:  # a raw '/' or '?' in a password is not a valid URL
        shown = [str(exc)]
    else:
        assert str(parsed) == expected
        assert expected in repr(parsed)
        shown = [str(parsed), repr(parsed)]
    for secret in ("pass", "secret", "se#cret", "p@ss", "pa/ss", "pa?ss", "pa#ss", "t1g?er", "pw"):
        if secret in url and secret not in expected:
            assert all(secret not in text for text in shown)


async def test_open_store_rejects_unknown_scheme() -> None:
    with pytest.raises(InvalidURLError, match="postgres://"):
        await open_store("redis://localhost/0")


@pytest.mark.parametrize(("url", "shown"), [(None, "None"), (123, "int"), (b"memory://", "bytes")])
async def test_a_url_that_is_not_a_string_is_one_clear_error(url: object, shown: str) -> None:
    with pytest.raises(InvalidURLError) as caught:
        await open_store(url)  # type: ignore[arg-type]
    assert str(caught.value).startswith(
        f"The database URL must be a string such as 'sqlite://./mofa.db', not {shown}; use one of: "
    )


def test_the_mofa_logger_has_a_null_handler() -> None:
    """The standard library's advice for a library: records go nowhere until the application
    configures logging (not to the last-resort handler on stderr)."""
    handlers = logging.getLogger("mofa").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


async def test_opening_a_store_is_logged_under_mofa_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="mofa"):
        async with await open_store("memory://"):
            pass
        with pytest.raises(InvalidURLError):
            await open_store("postgresql://u:pw-Secret@127.0.0.1:1/db?port=x")
    assert caplog.records
    assert all(record.name.startswith("mofa.") for record in caplog.records)
    assert "pw-Secret" not in caplog.text


async def test_the_in_memory_store_takes_no_options() -> None:
    with pytest.raises(InvalidInputError, match="pool_size"):
        await open_store("memory://", pool_size=3)
    with pytest.raises(InvalidURLError, match="not an in-memory store URL"):
        await InMemoryStore.connect("sqlite://x.db")


@pytest.mark.parametrize(
    ("url", "option", "value"),
    [
        ("postgresql://u@127.0.0.1:1/db", "connect_timeout", "5"),
        ("postgresql://u@127.0.0.1:1/db", "command_timeout", 0),
        ("postgresql://u@127.0.0.1:1/db", "statement_cache_size", -1),
        ("postgresql://u@127.0.0.1:1/db", "pool_max_size", 2.5),
        ("mysql://u@127.0.0.1:1/db", "connect_timeout", "x"),
        ("mysql://u@127.0.0.1:1/db", "pool_size", True),
        ("mysql://u@127.0.0.1:1/db", "schema_lock_timeout", -1),
        ("sqlite::memory:", "busy_timeout", None),
        ("sqlite::memory:", "lock_timeout", -0.5),
        ("file:///nonexistent/mofa-option-check", "max_workers", 0),
    ],
)
async def test_bad_option_values_are_named_before_connecting(
    url: str, option: str, value: object
) -> None:
    # Port 1 answers nothing: the check must come before any driver sees the value.
    with pytest.raises(InvalidInputError, match=f"^{option} must be "):
        await open_store(url, **{option: value})
