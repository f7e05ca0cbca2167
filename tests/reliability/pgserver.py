"""A private, throwaway PostgreSQL server started from the installed binaries.

Tests that restart the server, or need password authentication, must not touch the shared
server on 127.0.0.1:5432 (other test runs use it at the same time). This one lives in a
temporary directory, listens on a free port of 127.0.0.1 and on a unix socket in that
directory, and is removed afterwards::

    with private_postgres() as server:
        url = server.url("postgres")             # trust for the superuser
        server.restart("fast")                  # or "immediate" (a crash and recovery)

``pg_hba.conf``: trust on the unix socket and for ``postgres`` over TCP; every other role
must give its password over TCP (scram-sha-256). SSL is on, with a self-signed certificate.

When the binaries are missing or the server does not start, the tests that use it skip with
the reason, or fail under ``MOFA_TEST_REQUIRE_SERVERS=1`` (CI).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from tests.reliability._harness import (
    ServerUnavailable,
    free_port,
    log_tail,
    make_certificate,
    private_server,
)

_HBA = """\
local   all   all                    trust
host    all   postgres  127.0.0.1/32   trust
host    all   all       127.0.0.1/32   scram-sha-256
"""


def _bin_dir() -> Path:
    configured = os.environ.get("MOFA_TEST_PG_BIN")
    candidates = (
        [configured] if configured else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    )
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServerUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) found; install postgresql or set "
        "MOFA_TEST_PG_BIN"
    )


class PrivatePostgres:
    """One private server: data, socket and log in a temporary directory."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="mofa-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self.port = free_port()
        # PostgreSQL refuses to run as root: run its binaries as the postgres user then.
        self._as_postgres = os.geteuid() == 0

    # --------------------------------------------------------------- commands

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=False
        )
        if check and completed.returncode != 0:
            raise ServerUnavailable(
                f"{Path(args[0]).name} failed ({completed.returncode}): "
                f"{completed.stderr.strip() or completed.stdout.strip()}; log: {log_tail(self.log)}"
            )
        return completed

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        """``pg_ctl -D DATA -w ARGS`` (waits for the server to start or stop)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", *args, check=check)

    def _options(self) -> str:
        return " ".join(
            [
                f"-c port={self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c max_connections=60",
                "-c shared_buffers=16MB",
                "-c ssl=on",
                f"-c ssl_cert_file={self.root / 'server.crt'}",
                f"-c ssl_key_file={self.root / 'server.key'}",
            ]
        )

    def start(self) -> None:
        """initdb, write pg_hba.conf and a certificate, start, wait until it accepts."""
        self.socket_dir.mkdir()
        if not make_certificate(self.root):
            raise ServerUnavailable("openssl could not make the server's certificate")
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            for path in self.root.rglob("*"):
                shutil.chown(path, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--auth=trust",
        )
        (self.data / "pg_hba.conf").write_text(_HBA)
        if self._as_postgres:
            shutil.chown(self.data / "pg_hba.conf", "postgres", "postgres")
        self.start_again()

    def start_again(self) -> None:
        """Start the (initialised, stopped) server and wait until it accepts connections."""
        self._pg_ctl("-l", str(self.log), "-t", "60", "-o", self._options(), "start")

    def shut_down(self, mode: str = "fast") -> None:
        """Stop the server but keep its data (``start_again`` brings it back)."""
        self._pg_ctl("-t", "60", "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m fast`` (sessions terminated) or ``immediate`` (a crash)."""
        self._pg_ctl("-l", str(self.log), "-t", "60", "-m", mode, "-o", self._options(), "restart")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the unix socket; return the unaligned output."""
        completed = self._run(
            str(self.bin / "psql") if (self.bin / "psql").exists() else "psql",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atqc",
            sql,
        )
        return completed.stdout.strip()

    # ------------------------------------------------------------------ urls

    def url(
        self, database: str, user: str = "postgres", password: str | None = None, query: str = ""
    ) -> str:
        """A TCP URL for ``database`` (password percent-encoded)."""
        secret = f":{quote(password, safe='')}" if password is not None else ""
        suffix = f"?{query}" if query else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}{suffix}"

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return name


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """Run a private server for the duration of the block (skip, or fail in CI, if impossible)."""
    with private_server(PrivatePostgres, "PostgreSQL") as server:
        yield server
