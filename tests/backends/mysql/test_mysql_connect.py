"""How the MySQL/MariaDB store connects: the connect timeout, which covers the server's
handshake, and host ``localhost``, which means the server's unix socket (see
``mofa.persistence.backends.mysql._connect``).

The localhost tests need the server on this machine (they skip otherwise) and create real
accounts, with random names, that are dropped afterwards; the timeout tests need no server.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mofa.persistence import (
    AuthenticationError,
    InvalidInputError,
    InvalidURLError,
    StoreConnectionError,
    open_store,
)
from mofa.persistence.backends.mysql import _connect
from tests._cli import run_mofa
from tests.backends.mysql._server import HOST, PORT, admin
from tests.reliability._harness import free_port
from tests.servers import (
    mysql_account,
    server_unavailable,
    silent_server,
)

pytestmark = pytest.mark.mysql


# ------------------------------------------------------------------------- connect timeout


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
    *progress, error = result.stderr.splitlines()
    assert error == f"Error: {_no_handshake(server.port, '1')}"
    # Only the command's own progress lines may come first (on stderr when the export goes
    # to stdout): no warning about a pending task or an exception never retrieved.
    assert all(line.startswith(("→ ", "  ")) for line in progress), progress
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert elapsed < 20


# ----------------------------------------------------------------------- localhost


# Host localhost means the server's unix socket, as for the mysql client.

#: Where the store looks for the socket after $MYSQL_UNIX_PORT (what the README promises).
_STANDARD_SOCKETS = ("/run/mysqld/mysqld.sock", "/var/run/mysqld/mysqld.sock", "/tmp/mysql.sock")


async def _standard_socket(monkeypatch: pytest.MonkeyPatch) -> str:
    """The server's socket, found where localhost looks without $MYSQL_UNIX_PORT (skips the
    test when the server is not on this machine or keeps its socket elsewhere)."""
    monkeypatch.delenv("MYSQL_UNIX_PORT", raising=False)
    [(path,)] = await admin("SELECT @@socket")
    found = [p for p in _STANDARD_SOCKETS if Path(p).is_socket()]
    if HOST not in ("127.0.0.1", "localhost") or not found or not Path(path).exists():
        server_unavailable("mysql", f"its socket {path} is not on this machine")
    if not Path(found[0]).samefile(path):
        server_unavailable("mysql", f"its socket {path} is not where localhost looks first")
    return found[0]


async def _newest_client_host(user: str) -> str:
    """How the server sees the newest connection of ``user``: ``localhost`` over the unix
    socket, ``address:port`` over TCP."""
    rows = await admin(
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
            f"mysql://{name}:{password}@localhost:{PORT}/{database}",
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
    local = f"mysql://{credentials}@localhost:{PORT}/{database}"
    for url, over_socket in [
        (local, True),
        (f"{local}?protocol=tcp", False),
        (f"{local}?protocol=TCP&socket={path}", True),  # ?socket= always wins
        (f"mysql://{credentials}@127.0.0.1:{PORT}/{database}?protocol=socket", True),
        (f"mysql://{credentials}@127.0.0.1:{PORT}/{database}", False),
    ]:
        async with await open_store(url):
            host = await _newest_client_host(name)
            assert (host == "localhost") is over_socket, (url, host)
    # No socket anywhere: localhost is reached over TCP, as before.
    monkeypatch.setattr(_connect, "SOCKET_PATHS", ())
    async with await open_store(local):
        assert await _newest_client_host(name) != "localhost"
    with pytest.raises(StoreConnectionError) as caught:
        await open_store(f"mysql://{credentials}@127.0.0.1:{PORT}/{database}?protocol=socket")
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
        local = f"mysql://{name}:wrong-Secret-42@localhost:{PORT}/{database}"
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
                f"MySQL at localhost:{PORT} refused user {name!r}: access denied (wrong user "
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
        # No socket anywhere: the login goes over TCP, and the message says why.
        monkeypatch.setattr(_connect, "SOCKET_PATHS", ("/nonexistent/mysqld.sock",))
        with pytest.raises(AuthenticationError) as caught:
            await open_store(local)
        assert str(caught.value) == (
            f"MySQL at localhost:{PORT} refused user {name!r}: access denied (wrong user name "
            "or password) — check the credentials in the URL; the login came over TCP because "
            "no server socket was found at /nonexistent/mysqld.sock, and over TCP the server "
            f"may not match an account '{name}'@'localhost': give the socket's path with "
            "?socket=/path/to/mysqld.sock."
        )


@pytest.mark.parametrize("code", [1045, 1698])
def test_both_login_refusals_are_authentication_errors(code: int) -> None:
    """MariaDB refuses a login with 1698 rather than 1045 when it ran no password check for
    the account it matched (seen over TCP for an account that exists only at 'localhost'):
    both are the same wrong-credentials message, never a raw SQL error."""
    from mofa.persistence._url import parse_url
    from mofa.persistence.backends.mysql._errors import translate

    target = _connect.Target(parse_url("mysql://ann:Secret-9@db.example:3306/app?protocol=tcp"))
    refusal = RuntimeError(code, "Access denied for user 'ann'@'10.0.0.7'")
    error = translate(refusal, target)
    assert isinstance(error, AuthenticationError)
    assert str(error).startswith("MySQL at db.example:3306 refused user 'ann': access denied")
    assert "Secret-9" not in str(error)
