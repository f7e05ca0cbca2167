"""MySQL/MariaDB specifics the conformance suite cannot express: URL forms, users and
privileges, the errors a user sees, packet limits, and how times and ids are stored.

Runs against the server of ``MOFA_TEST_MYSQL_URL`` (default: the local MariaDB), each module
run in its own throwaway database; test users are created with random names and dropped.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from mofa.persistence import (
    AuthenticationError,
    DatabaseNotFoundError,
    InvalidInputError,
    InvalidURLError,
    MySqlStore,
    PermissionDeniedError,
    SchemaError,
    StoreConnectionError,
    open_store,
)
from mofa.persistence.backends import _mysql_connect
from tests._cli import run_mofa
from tests.conftest import all_versions
from tests.reliability._harness import free_port, make_certificate
from tests.servers import (
    MYSQL_ADMIN_URL,
    MYSQL_SERVER_URL,
    database_name,
    drop_mofa_tables,
    mysql_account,
    mysql_connection,
    mysql_database,
    mysql_rows,
    server_unavailable,
    silent_server,
    skip_or_fail,
    with_credentials,
    with_database,
)

pytestmark = pytest.mark.mysql

_HOST = urlsplit(MYSQL_ADMIN_URL).hostname or "127.0.0.1"
_PORT = urlsplit(MYSQL_ADMIN_URL).port or 3306


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with mysql_database("mofa_mysql") as url:
        yield url


@pytest.fixture
def database(database_url: str) -> str:
    return database_name(database_url)


@pytest.fixture
async def fresh_url(database_url: str) -> str:
    """The module's database, emptied of every mofa table."""
    await drop_mofa_tables("mysql", database_url)
    return database_url


async def _admin(sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Run one statement as the admin user, on no database; return its rows."""
    return await mysql_rows(MYSQL_SERVER_URL, sql, *args)


@pytest.fixture
def user(database: str) -> Iterator[tuple[str, str]]:
    """A database user with a password full of URL-special characters, and all privileges
    on the test database."""
    password = f"p@ss:w/rd#?&{secrets.token_hex(3)}%"
    with mysql_account(f"ALL PRIVILEGES ON `{database}`.*", password=password) as account:
        yield account


async def _round_trip(url: str) -> None:
    async with await open_store(url) as store:
        assert isinstance(store, MySqlStore)
        session = await store.create_session(agent_id="agent", user_id="u")
        message = await store.append_message(session.session_id, "user", "héllo 🎉")
        assert [m.content for m in await store.list_messages(session.session_id)] == [
            message.content
        ]
        assert await store.delete_session(session.session_id)


# ------------------------------------------------------------------------------- URL forms


@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
async def test_schemes_with_percent_encoded_password(
    fresh_url: str, database: str, user: tuple[str, str], scheme: str
) -> None:
    name, password = user
    url = with_credentials(fresh_url, name, password)
    await _round_trip(url.replace("mysql://", f"{scheme}://", 1))


async def test_password_as_query_parameter(
    fresh_url: str, database: str, user: tuple[str, str]
) -> None:
    name, password = user
    url = with_credentials(fresh_url, name, None)
    await _round_trip(f"{url}?password={quote(password, safe='')}")


async def test_unix_socket(fresh_url: str, database: str, user: tuple[str, str]) -> None:
    [(path,)] = await _admin("SELECT @@socket")
    if _HOST not in ("127.0.0.1", "localhost") or not Path(path).exists():
        server_unavailable("mysql", f"its socket {path} is not on this machine")
    name, password = user
    url = (
        f"mysql://{quote(name, safe='')}:{quote(password, safe='')}@localhost/{database}"
        f"?socket={path}"
    )
    await _round_trip(url)
    with pytest.raises(StoreConnectionError, match=r"no socket file at /nonexistent/mysqld\.sock"):
        await open_store(f"mysql://root@localhost/{database}?socket=/nonexistent/mysqld.sock")


# Host localhost means the server's unix socket, as for the mysql client.

#: Where the store looks for the socket after $MYSQL_UNIX_PORT (what the README promises).
_STANDARD_SOCKETS = ("/run/mysqld/mysqld.sock", "/var/run/mysqld/mysqld.sock", "/tmp/mysql.sock")


async def _standard_socket(monkeypatch: pytest.MonkeyPatch) -> str:
    """The server's socket, found where localhost looks without $MYSQL_UNIX_PORT (skips the
    test when the server is not on this machine or keeps its socket elsewhere)."""
    monkeypatch.delenv("MYSQL_UNIX_PORT", raising=False)
    [(path,)] = await _admin("SELECT @@socket")
    found = [p for p in _STANDARD_SOCKETS if Path(p).is_socket()]
    if _HOST not in ("127.0.0.1", "localhost") or not found or not Path(path).exists():
        server_unavailable("mysql", f"its socket {path} is not on this machine")
    if not Path(found[0]).samefile(path):
        server_unavailable("mysql", f"its socket {path} is not where localhost looks first")
    return found[0]


async def _newest_client_host(user: str) -> str:
    """How the server sees the newest connection of ``user``: ``localhost`` over the unix
    socket, ``address:port`` over TCP."""
    rows = await _admin(
        "SELECT host FROM information_schema.processlist WHERE user = %s ORDER BY id DESC",
        user,
    )
    return str(rows[0][0])


async def test_localhost_account_of_the_seeds_logs_in_over_the_socket(
    fresh_url: str, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seeds' least-privilege user, as their guide creates it: CREATE USER
    'mofa_app'@'localhost' IDENTIFIED BY 'secure_password' and GRANT SELECT, INSERT, UPDATE,
    DELETE, reached with mysql://mofa_app:secure_password@localhost/mofa (no ?socket=)."""
    await _standard_socket(monkeypatch)
    async with await open_store(fresh_url):  # an administrator creates the schema
        pass
    grants = f"SELECT, INSERT, UPDATE, DELETE ON `{database}`.*"
    with mysql_account(grants, host="localhost", password="secure_password") as (name, password):
        # A port changes nothing for localhost, as for the mysql client.
        for url in (
            f"mysql://{name}:{password}@localhost/{database}",
            f"mysql://{name}:{password}@localhost:{_PORT}/{database}",
        ):
            async with await open_store(url) as store:
                assert await _newest_client_host(name) == "localhost"  # the socket, not TCP
                session = await store.create_session(agent_id="my-agent", user_id="u1")
                await store.append_message(session.session_id, "user", "Hello")
                assert [m.content for m in await store.list_messages(session.session_id)] == [
                    "Hello"
                ]
                assert await store.delete_session(session.session_id)


async def test_protocol_and_socket_parameters_choose_the_transport(
    fresh_url: str, database: str, user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = await _standard_socket(monkeypatch)
    name, password = user  # an account of any host ('%'): it may log in both ways
    credentials = f"{quote(name, safe='')}:{quote(password, safe='')}"
    local = f"mysql://{credentials}@localhost:{_PORT}/{database}"
    for url, over_socket in [
        (local, True),
        (f"{local}?protocol=tcp", False),
        (f"{local}?protocol=TCP&socket={path}", True),  # ?socket= always wins
        (f"mysql://{credentials}@127.0.0.1:{_PORT}/{database}?protocol=socket", True),
        (f"mysql://{credentials}@127.0.0.1:{_PORT}/{database}", False),
    ]:
        async with await open_store(url):
            host = await _newest_client_host(name)
            assert (host == "localhost") is over_socket, (url, host)
    # No socket anywhere: localhost is reached over TCP, as before.
    monkeypatch.setattr(_mysql_connect, "SOCKET_PATHS", ())
    async with await open_store(local):
        assert await _newest_client_host(name) != "localhost"
    with pytest.raises(StoreConnectionError) as caught:
        await open_store(f"mysql://{credentials}@127.0.0.1:{_PORT}/{database}?protocol=socket")
    assert str(caught.value) == (
        "Failed to connect to MySQL: the URL asks for protocol=socket, but no server socket "
        "was found at ; give its path with ?socket=/path/to/mysqld.sock, or use protocol=tcp."
    )


async def test_unknown_protocol() -> None:
    url = f"mysql://mofa:s3cret-pw@127.0.0.1:{free_port()}/mofa?protocol=pipe"
    with pytest.raises(InvalidURLError) as caught:
        await open_store(url)
    assert str(caught.value) == (
        f"Unknown MySQL protocol 'pipe' in {url.replace('s3cret-pw', '****')!r}; use "
        "protocol=tcp or protocol=socket."
    )


async def test_mysql_unix_port_is_probed_first(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        # Under /tmp: a unix socket path must fit in 108 bytes, which tmp_path may not.
        tempfile.TemporaryDirectory(dir="/tmp") as directory,
        socket.socket(socket.AF_UNIX) as nobody_listening,
    ):
        path = f"{directory}/mysqld.sock"
        nobody_listening.bind(path)
        monkeypatch.setenv("MYSQL_UNIX_PORT", path)
        with pytest.raises(StoreConnectionError) as caught:
            await open_store("mysql://mofa:s3cret-pw@localhost/mofa")
    assert str(caught.value) == (
        f"Failed to connect to MySQL at socket {path}: connection refused — is the server "
        f"running? Check with: mysqladmin --socket={path} ping, or use ?protocol=tcp to "
        "connect to localhost:3306 over TCP instead"
    )


async def test_refused_localhost_login_names_socket_and_protocol(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = await _standard_socket(monkeypatch)
    with mysql_account(f"ALL PRIVILEGES ON `{database}`.*", host="localhost") as (name, _):
        local = f"mysql://{name}:wrong-Secret-42@localhost:{_PORT}/{database}"
        cases = [
            (
                local,
                f"MySQL at socket {path} refused user {name!r}: access denied (wrong user name "
                "or password) — check the credentials in the URL; the login came over the "
                f"server's unix socket, as '{name}'@'localhost': use ?protocol=tcp to log in "
                "over TCP, or ?socket=/path/to/mysqld.sock for another socket.",
            ),
            (
                f"{local}?socket={path}",
                f"MySQL at socket {path} refused user {name!r}: access denied (wrong user name "
                "or password) — check the credentials in the URL; the login came over the "
                f"socket given by ?socket=, as '{name}'@'localhost': remove ?socket= and use "
                "?protocol=tcp to log in over TCP.",
            ),
            (
                f"{local}?protocol=tcp",
                f"MySQL at localhost:{_PORT} refused user {name!r}: access denied (wrong user "
                "name or password) — check the credentials in the URL; the login came over TCP "
                "(?protocol=tcp), where the server may not match an account "
                f"'{name}'@'localhost' as it does over its unix socket: drop ?protocol=tcp, or "
                "give ?socket=/path/to/mysqld.sock.",
            ),
        ]
        for url, expected in cases:
            with pytest.raises(AuthenticationError) as caught:
                await open_store(url)
            assert str(caught.value) == expected
            assert "wrong-Secret-42" not in repr(caught.value)


@pytest.mark.parametrize("mode", ["DISABLED", "PREFERRED", "preferred"])
async def test_ssl_modes_that_connect_without_server_ssl(fresh_url: str, mode: str) -> None:
    await _round_trip(f"{fresh_url}?ssl-mode={mode}")


async def test_ssl_required(fresh_url: str) -> None:
    [(have_ssl,)] = await _admin("SELECT @@have_ssl")
    url = f"{fresh_url}?ssl-mode=REQUIRED"
    if have_ssl == "YES":
        await _round_trip(url)
        return
    with pytest.raises(StoreConnectionError, match="ssl-mode=REQUIRED") as caught:
        await open_store(url)
    assert "have_ssl" in str(caught.value)


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("ssl-mode=SOMETIMES", "Unknown ssl-mode 'SOMETIMES'"),
        ("sslmode=require", "Unknown MySQL URL parameter 'sslmode'"),
    ],
)
async def test_bad_url_parameters(fresh_url: str, query: str, match: str) -> None:
    with pytest.raises(InvalidURLError, match=match):
        await open_store(f"{fresh_url}?{query}")


async def test_url_without_database() -> None:
    with pytest.raises(InvalidURLError, match="names no database"):
        await open_store(f"mysql://root:secret@{_HOST}:{_PORT}")


# The ssl-ca / ssl-cert / ssl-key files are read before connecting: the URLs below point at a
# free port, so a check that came too late would be a StoreConnectionError instead.


def _unreachable(query: str) -> str:
    return f"mysql://root:s3cret-pw@127.0.0.1:{free_port()}/mofa?{query}"


async def test_missing_ssl_file_is_named_before_connecting() -> None:
    url = _unreachable("ssl-cert=/nonexistent.pem")
    with pytest.raises(InvalidURLError) as caught:
        await open_store(url)
    assert str(caught.value) == (
        f"The ssl-cert file '/nonexistent.pem' in '{url.replace('s3cret-pw', '****')}' does "
        "not exist; give the path of a PEM file this process can read."
    )
    assert caught.value.__cause__ is None
    with pytest.raises(InvalidURLError, match=r"^The ssl-ca file '/nonexistent\.pem' in .* does"):
        await open_store(_unreachable("ssl-ca=/nonexistent.pem&ssl-mode=VERIFY_CA"))
    with pytest.raises(InvalidURLError, match="is a directory, not a file"):
        await MySqlStore.connect(_unreachable("ssl-ca=/"))


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """server.crt + server.key, other/server.key (of another certificate), an encrypted copy
    of server.key and a text file, made with openssl."""
    directory = tmp_path_factory.mktemp("pem")
    (directory / "other").mkdir()
    if not (make_certificate(directory) and make_certificate(directory / "other")):
        skip_or_fail("openssl is not installed")
    encrypted = ["-aes128", "-passout", "pass:a-passphrase", "-out", "encrypted.key"]
    subprocess.run(
        ["openssl", "pkey", "-in", "server.key", *encrypted],
        cwd=directory,
        capture_output=True,
        timeout=60,
        check=True,
    )
    (directory / "notes.txt").write_text("not a certificate\n")
    return directory


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ssl-ca={d}/notes.txt", "The ssl-ca file '{d}/notes.txt' in '"),
        ("ssl-ca={d}/notes.txt", "' is not a PEM certificate (no -----BEGIN CERTIFICATE"),
        ("ssl-ca={d}/server.key&ssl-mode=VERIFY_CA", "'{d}/server.key' in '"),
        ("ssl-cert={d}/notes.txt&ssl-key={d}/server.key", "ssl-cert file '{d}/notes.txt'"),
        ("ssl-cert={d}/server.crt&ssl-key=/nonexistent.key", "'/nonexistent.key' in '"),
        ("ssl-cert={d}/server.crt&ssl-key={d}/notes.txt", "is not a PEM private key"),
        (
            "ssl-cert={d}/server.crt&ssl-key={d}/other/server.key",
            "does not belong to the certificate in ssl-cert",
        ),
        ("ssl-cert={d}/server.crt&ssl-key={d}/encrypted.key", "protected by a passphrase"),
        ("ssl-cert={d}/server.crt", "holds a certificate but no private key; add ssl-key="),
        ("ssl-key={d}/server.key", "has ssl-key but no ssl-cert; add ssl-cert="),
    ],
)
async def test_unusable_ssl_files_are_named_before_connecting(
    pem: Path, query: str, expected: str
) -> None:
    with pytest.raises(InvalidURLError) as caught:
        await open_store(_unreachable(query.format(d=pem)))
    message = str(caught.value)
    assert expected.format(d=pem) in message
    assert message.endswith(".")
    assert "\n" not in message
    assert "s3cret-pw" not in message


async def test_usable_ssl_files_pass_the_check(pem: Path) -> None:
    # Only the connection fails: nothing listens on the port.
    with pytest.raises(StoreConnectionError, match="connection refused"):
        await open_store(
            _unreachable(
                f"ssl-mode=VERIFY_CA&ssl-ca={pem}/other/server.crt"
                f"&ssl-cert={pem}/server.crt&ssl-key={pem}/server.key"
            )
        )


# ---------------------------------------------------------------------------------- errors


async def test_server_not_running() -> None:
    port = free_port()
    with pytest.raises(StoreConnectionError) as caught:
        await open_store(f"mysql://mofa:s3cret-pw@127.0.0.1:{port}/mofa")
    message = str(caught.value)
    assert message == (
        f"Failed to connect to MySQL at 127.0.0.1:{port}: connection refused — is the server "
        f"running? Check with: mysqladmin -h 127.0.0.1 -P {port} ping"
    )
    assert "s3cret-pw" not in message
    with pytest.raises(StoreConnectionError, match="mariadb-admin"):
        await open_store(f"mariadb://mofa@127.0.0.1:{port}/mofa")


# A server that accepts the TCP connection and never sends its greeting (a hung server, or
# another service on the port): the connect timeout must cover the MySQL handshake, not only
# the TCP connect, which asyncmy's own timeout stops at.


def _no_handshake(port: int, seconds: str) -> str:
    return (
        f"Failed to connect to MySQL at 127.0.0.1:{port}: the server did not answer the "
        f"handshake within {seconds} s — is a MySQL server listening there, and is it "
        f"responding? Check with: mysqladmin -h 127.0.0.1 -P {port} ping"
    )


@pytest.mark.parametrize(
    ("query", "options", "seconds"),
    [
        ("", {"connect_timeout": 1}, "1"),
        ("?connect_timeout=0.5", {}, "0.5"),
        ("?connect_timeout=600", {"connect_timeout": 1}, "1"),  # the option wins
    ],
)
async def test_connect_timeout_covers_the_handshake(
    query: str, options: dict[str, Any], seconds: str
) -> None:
    with silent_server() as server:
        url = f"mysql://mofa:s3cret-pw@127.0.0.1:{server.port}/mofa{query}"
        started = time.monotonic()
        async with asyncio.timeout(30):  # before the fix: waited forever
            with pytest.raises(StoreConnectionError) as caught:
                await open_store(url, **options)
        assert time.monotonic() - started < float(seconds) + 4
        assert str(caught.value) == _no_handshake(server.port, seconds)
        assert server.accepted == 1
        # Closed by the time the error is raised, not at some later turn of the loop.
        assert server.open_connections() == 0, "the half-open connection was left open"
        assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf", ""])
async def test_bad_connect_timeout_parameter(value: str) -> None:
    port = free_port()
    url = f"mysql://mofa:s3cret-pw@127.0.0.1:{port}/mofa?connect_timeout={value}"
    with pytest.raises(InvalidURLError) as caught:
        await open_store(url, connect_timeout=5)  # the option wins, but the URL must be right
    assert str(caught.value) == (
        f"The MySQL URL 'mysql://mofa:****@127.0.0.1:{port}/mofa"
        f"?connect_timeout={value}' has connect_timeout={value!r}, which is not a positive "
        "number of seconds; write e.g. connect_timeout=10, or pass connect_timeout= to "
        "open_store()."
    )


@pytest.mark.parametrize("value", [0, -1.5, float("nan")])
async def test_bad_connect_timeout_option(value: float) -> None:
    with pytest.raises(InvalidInputError, match=r"^connect_timeout must be a number "):
        await open_store(f"mysql://mofa@127.0.0.1:{free_port()}/mofa", connect_timeout=value)


def test_giving_up_leaves_nothing_behind() -> None:
    """In a plain process, as a user runs it: no warning about a task destroyed while
    pending, an exception never retrieved, or an unclosed transport or socket."""
    script = textwrap.dedent(
        """
        import asyncio, gc, sys
        from mofa.persistence import StoreConnectionError, open_store
        async def main(url):
            try:
                await open_store(url)
            except StoreConnectionError as exc:
                print(exc)
            gc.collect()
        asyncio.run(main(sys.argv[1]))
        gc.collect()
        """
    )
    with silent_server() as server:
        url = f"mysql://root@127.0.0.1:{server.port}/x?connect_timeout=1"
        result = subprocess.run(
            [sys.executable, "-W", "always", "-c", script, url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == _no_handshake(server.port, "1") + "\n"


@pytest.mark.parametrize(
    "command",
    [
        ("session", "list"),
        ("session", "show", "s"),
        ("session", "export", "s", "-o", "-", "-f", "json"),
        ("session", "delete", "s", "--force"),
        ("db", "init", "-t", "mysql", "-u"),
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_every_command_gives_up_on_a_silent_server(command: tuple[str, ...]) -> None:
    with silent_server() as server:
        url = f"mysql://root:s3cret-pw@127.0.0.1:{server.port}/x?connect_timeout=1"
        args = [*command, url] if command[0] == "db" else ["--database-url", url, *command]
        started = time.monotonic()
        result = run_mofa(*args, timeout=60)  # before the fix: waited forever
        elapsed = time.monotonic() - started
    assert result.returncode != 0
    # Progress lines may come first (on stderr when the export goes to stdout).
    assert result.stderr.endswith(f"\nError: {_no_handshake(server.port, '1')}\n") or (
        result.stderr == f"Error: {_no_handshake(server.port, '1')}\n"
    )
    assert "Traceback" not in result.stderr
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert elapsed < 20


async def test_wrong_password_names_the_user_not_the_password(
    fresh_url: str, database: str, user: tuple[str, str]
) -> None:
    name, _ = user
    with pytest.raises(AuthenticationError) as caught:
        await open_store(with_credentials(fresh_url, name, "wrong-Secret-42"))
    message = str(caught.value)
    assert repr(name) in message
    assert "access denied" in message
    assert "wrong-Secret-42" not in message
    assert "wrong-Secret-42" not in repr(caught.value)


async def test_unknown_database() -> None:
    missing = f"mofa_missing_{secrets.token_hex(3)}"
    with pytest.raises(DatabaseNotFoundError) as caught:
        await open_store(with_database(MYSQL_ADMIN_URL, missing))
    assert str(caught.value) == (
        f"Failed to connect to MySQL at {_HOST}:{_PORT}: database '{missing}' does not exist "
        f"— create it with: CREATE DATABASE {missing}"
    )


@pytest.fixture
def reader(database: str) -> Iterator[tuple[str, str]]:
    """A user that may only read the test database."""
    with mysql_account(f"SELECT ON `{database}`.*", password=secrets.token_hex(8)) as account:
        yield account


async def test_permission_denied_for_a_table(
    fresh_url: str, database: str, reader: tuple[str, str]
) -> None:
    async with await open_store(fresh_url) as store:  # creates the schema
        await store.create_session("s")
    name, password = reader
    async with await open_store(with_credentials(fresh_url, name, password)) as store:
        assert (await store.get_session("s")) is not None
        with pytest.raises(PermissionDeniedError) as caught:
            await store.create_session("t", agent_id="a")
        message = str(caught.value)
        assert message.startswith("SQL error: permission denied for table agents — grant ")
        # The account as GRANT names it (its host pattern), not the client's address.
        assert f"GRANT SELECT, INSERT, UPDATE, DELETE ON {database}.* TO '{name}'@'%'" in message
        with pytest.raises(PermissionDeniedError, match="for table sessions"):
            await store.append_message("s", "user", "x")
        assert await store.count_messages("s") == 0


async def test_user_that_cannot_create_the_schema(
    fresh_url: str, database: str, reader: tuple[str, str]
) -> None:
    name, password = reader
    with pytest.raises(PermissionDeniedError, match="may not create the mofa schema"):
        await open_store(with_credentials(fresh_url, name, password))


async def test_minimal_privilege_user_runs_the_store(fresh_url: str, database: str) -> None:
    """The seeds' "Database User Permissions": SELECT, INSERT, UPDATE, DELETE only."""
    async with await open_store(fresh_url) as store:
        assert store.applied_migrations == all_versions("mysql")
    privileges = f"SELECT, INSERT, UPDATE, DELETE ON `{database}`.*"
    with mysql_account(privileges, password="secure_password") as (name, password):
        async with await open_store(with_credentials(fresh_url, name, password)) as store:
            assert store.applied_migrations == ()
            session = await store.create_session(agent_id="my-agent", user_id="u1")
            await store.append_message(session.session_id, "user", "Hello")
            await store.save_state(session.session_id, {"step": 1})
            assert [m.content for m in await store.list_messages(session.session_id)] == ["Hello"]
            assert [s.session_id for s in await store.list_sessions(user_id="u1")] == [
                session.session_id
            ]
            assert await store.delete_session(session.session_id)
            assert await store.get_session(session.session_id) is None


async def test_lost_connection_mid_call(fresh_url: str, database: str) -> None:
    """A call whose connection is killed fails with StoreConnectionError; the store lives on."""
    store = await open_store(fresh_url)
    try:
        await store.create_session("s")
        async with mysql_connection(fresh_url) as blocker, blocker.cursor() as cursor:
            # Hold the session's row lock.
            await cursor.execute("START TRANSACTION")
            await cursor.execute("SELECT * FROM sessions WHERE session_id = 's' FOR UPDATE")
            await cursor.fetchall()
            blocked = asyncio.create_task(store.append_message("s", "user", "lost"))
            victim = None
            for _ in range(200):
                await asyncio.sleep(0.02)
                rows = await _admin(
                    "SELECT id FROM information_schema.processlist WHERE db = %s AND "
                    "info LIKE %s AND id <> CONNECTION_ID()",
                    database,
                    "%UPDATE sessions SET message_count%",
                )
                if rows:
                    victim = rows[0][0]
                    break
            assert victim is not None, "the append never reached the server"
            await _admin(f"KILL CONNECTION {int(victim)}")
            with pytest.raises(StoreConnectionError, match="Lost the connection to MySQL"):
                await blocked
            await cursor.execute("ROLLBACK")
        assert await store.count_messages("s") == 0
        assert (await store.append_message("s", "user", "after")).seq == 1
        assert [m.content for m in await store.list_messages("s")] == ["after"]
    finally:
        await store.close()


async def test_newer_schema_is_refused(fresh_url: str, database: str) -> None:
    async with await open_store(fresh_url) as store:
        assert store.applied_migrations == all_versions("mysql")
    async with await open_store(fresh_url) as store:
        assert store.applied_migrations == ()
    await mysql_rows(
        fresh_url, "INSERT INTO mofa_schema_migrations (version, name) VALUES (999, 'future')"
    )
    with pytest.raises(SchemaError, match="schema version 999, newer than"):
        await open_store(fresh_url)


async def test_missing_driver_names_the_extra(fresh_url: str) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["asyncmy"] = None  # as if it were not installed
        from mofa.persistence import MissingDependencyError, open_store
        try:
            asyncio.run(open_store(sys.argv[1]))
        except MissingDependencyError as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, fresh_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "pip install 'mofa-sdk[mysql]'" in result.stdout


async def test_unknown_option(fresh_url: str) -> None:
    with pytest.raises(InvalidInputError, match="Unknown MySqlStore option 'pool_sise'"):
        await MySqlStore.connect(fresh_url, pool_sise=3)


# ------------------------------------------------------------------------- sizes and storage


async def test_ten_megabytes_and_the_packet_limit(fresh_url: str) -> None:
    [(max_packet,)] = await _admin("SELECT @@max_allowed_packet")
    async with await open_store(fresh_url) as store:
        await store.create_session("s")
        big = "末尾🎉" + "0123456789abcdef" * (10 * 65536)
        assert (await store.append_message("s", "assistant", big)).seq == 1
        [loaded] = await store.list_messages("s")
        assert loaded.content == big
        too_big = "x" * (int(max_packet) + 1)
        with pytest.raises(InvalidInputError, match="max_allowed_packet"):
            await store.append_message("s", "user", too_big)
        from mofa.persistence import NewMessage

        with pytest.raises(InvalidInputError, match="max_allowed_packet"):
            await store.append_messages("s", [NewMessage("user", too_big)])
        # Quotes are escaped on the wire (two bytes each), and metadata counts too.
        quotes = "'" * (int(max_packet) // 2 + 1024)
        with pytest.raises(InvalidInputError, match="max_allowed_packet"):
            await store.append_message("s", "user", quotes)
        with pytest.raises(InvalidInputError, match="max_allowed_packet"):
            await store.append_message("s", "user", "small", metadata={"blob": too_big})
        with pytest.raises(InvalidInputError, match="max_allowed_packet"):
            await store.save_state("s", {"blob": too_big})
        assert await store.count_messages("s") == 1
        assert await store.get_state("s") is None
        assert (await store.append_message("s", "user", "still fine")).seq == 2


async def test_times_are_stored_as_naive_utc(fresh_url: str, database: str) -> None:
    async with await open_store(fresh_url) as store:
        await store.create_session("s")
        written = datetime(2024, 2, 28, 12, 30, 5, 123456, tzinfo=UTC)
        await store.append_message("s", "user", "x", timestamp=written)
    rows = await mysql_rows(fresh_url, "SELECT timestamp FROM messages")
    assert rows[0][0] == written.replace(tzinfo=None)


async def test_ids_are_case_and_space_exact(fresh_url: str) -> None:
    async with await open_store(fresh_url) as store:
        for session_id in ("Ab", "ab", "ab ", "ÄB"):
            await store.create_session(session_id, user_id=session_id)
        for session_id in ("Ab", "ab", "ab ", "ÄB"):
            listed = await store.list_sessions(user_id=session_id)
            assert [s.session_id for s in listed] == [session_id]


async def test_concurrent_state_snapshots_get_distinct_versions(fresh_url: str) -> None:
    async with await open_store(fresh_url) as store:
        await store.create_session("s")
        saved = await asyncio.gather(*(store.save_state("s", {"n": n}) for n in range(20)))
        assert sorted(state.version for state in saved) == list(range(1, 21))
        assert [s.version for s in await store.list_states("s")] == list(range(20, 0, -1))


def test_connecting_from_a_plain_script(database_url: str) -> None:
    """open_store works from asyncio.run in a fresh process (no fixtures, no event loop)."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from mofa.persistence import open_store
        async def main(url):
            async with await open_store(url) as store:
                s = await store.create_session()
                print((await store.append_message(s.session_id, "user", "hi")).seq)
        asyncio.run(main(sys.argv[1]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, database_url], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
