"""A private PgBouncer in front of the test PostgreSQL server.

:func:`pgbouncer` starts the distribution's ``pgbouncer`` (the ``pgbouncer`` apt package;
``.ci/run`` installs it) on a free port of 127.0.0.1, with its own configuration, log and
pid file in a temporary directory, pointing at the server of ``MOFA_TEST_POSTGRES_URL``
(default ``127.0.0.1:5432``). PgBouncer refuses to run as root, so under root it runs as the
``postgres`` operating-system user. It lets every user in without a password (``auth_type =
trust``, the users listed in its auth file) and logs in to the server as that user, which
the server must accept (the local one trusts loopback). It is stopped by its process id.

When ``pgbouncer`` is not installed the tests that need it skip with the reason, or fail
under ``MOFA_TEST_REQUIRE_SERVERS=1`` (CI).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.reliability._harness import free_port
from tests.servers import POSTGRES_ADMIN_URL, skip_or_fail

#: Where Debian and Ubuntu install it (not on an ordinary user's PATH).
_KNOWN_PATHS = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


def pgbouncer_binary() -> str | None:
    """The ``pgbouncer`` executable, or ``None`` when it is not installed."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    return next((path for path in _KNOWN_PATHS if os.access(path, os.X_OK)), None)


class PgBouncer:
    """One running PgBouncer; :meth:`url` turns a server URL into the same URL through it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, directory: Path) -> None:
        self.process = process
        self.port = port
        self.directory = directory

    def url(self, server_url: str, **query: str) -> str:
        """``server_url`` with PgBouncer's host and port (and ``query`` added)."""
        parts = urlsplit(server_url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + f"127.0.0.1:{self.port}"
        extra = "&".join(f"{name}={value}" for name, value in query.items())
        joined = "&".join(item for item in (parts.query, extra) if item)
        return urlunsplit((parts.scheme, netloc, parts.path, joined, ""))

    def log(self) -> str:
        """What PgBouncer logged so far (for a failing test's message)."""
        try:
            return (self.directory / "pgbouncer.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGINT is PgBouncer's safe shutdown (no new clients, ends when they are done);
        SIGTERM its immediate one, after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                self.process.wait(timeout=10)


def _config(directory: Path, port: int, pool_mode: str, pool_size: int) -> str:
    server = urlsplit(POSTGRES_ADMIN_URL)
    return "\n".join(
        [
            "[databases]",
            f"* = host={server.hostname or '127.0.0.1'} port={server.port or 5432}",
            "",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {directory / 'users.txt'}",
            f"pool_mode = {pool_mode}",
            f"default_pool_size = {pool_size}",
            "max_client_conn = 500",
            f"logfile = {directory / 'pgbouncer.log'}",
            f"pidfile = {directory / 'pgbouncer.pid'}",
            # asyncpg sends none of the parameters PgBouncer refuses; a test's URL may.
            "ignore_startup_parameters = extra_float_digits",
            "",
        ]
    )


def _users(server_user: str) -> str:
    """The auth file: user names PgBouncer lets in (trust: their passwords are not checked)."""
    return f'"{server_user}" ""\n'


def _as_postgres() -> dict[str, Any]:
    """Popen arguments that run PgBouncer as ``postgres`` when the tests run as root."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        skip_or_fail("pgbouncer refuses to run as root and there is no 'postgres' user")
        raise
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@contextmanager
def pgbouncer(pool_mode: str = "transaction", pool_size: int = 10) -> Iterator[PgBouncer]:
    """A PgBouncer for the duration of the block (see the module's docstring)."""
    binary = pgbouncer_binary()
    if binary is None:
        skip_or_fail("pgbouncer is not installed (apt-get install pgbouncer)")
        raise AssertionError("unreachable")
    account = _as_postgres()
    with tempfile.TemporaryDirectory(prefix="mofa-pgbouncer-") as name:
        directory = Path(name)
        server_user = urlsplit(POSTGRES_ADMIN_URL).username or "postgres"
        (directory / "users.txt").write_text(_users(server_user))
        if account:
            os.chown(directory, account["user"], account["group"])
        for _attempt in range(5):  # another program may take the free port first
            port = free_port()
            config = directory / "pgbouncer.ini"
            config.write_text(_config(directory, port, pool_mode, pool_size))
            process = subprocess.Popen(
                [binary, "-q", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                **account,
            )
            bouncer = PgBouncer(process, port, directory)
            if _listening(bouncer):
                break
            bouncer.stop()
        else:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise AssertionError(f"pgbouncer did not start: {stderr}{bouncer.log()}")
        try:
            yield bouncer
        finally:
            bouncer.stop()
            if process.stderr:
                process.stderr.close()


def _listening(bouncer: PgBouncer, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if bouncer.process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", bouncer.port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
