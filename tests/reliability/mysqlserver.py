"""A private, throwaway MariaDB server started from the installed binaries.

Tests that restart the server must not touch the shared one on 127.0.0.1:3306 (other test
runs use it at the same time). This one keeps its data, socket and log in a temporary
directory, listens on a free port of 127.0.0.1, has real grants (a ``mofa`` user with a
password; ``root`` only over the socket) and TLS with a self-signed certificate::

    with private_mariadb() as server:
        url = server.url("mofa_db")              # mysql://mofa:…@127.0.0.1:PORT/mofa_db
        server.restart()                        # SIGTERM, wait, start on the same data
        server.restart(kill=True)               # SIGKILL: a crash and InnoDB recovery

When the binaries are missing or the server does not start, the tests that use it skip with
the reason, or fail under ``MOFA_TEST_REQUIRE_SERVERS=1`` (CI).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
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

USER = "mofa"
PASSWORD = "pw:with@special/chars"


def _binary(*names: str) -> str:
    for name in names:
        for folder in (None, "/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin"):
            found = shutil.which(name, path=folder)
            if found:
                return found
    raise ServerUnavailable(
        f"no MariaDB server binary ({' or '.join(names)}) found; install mariadb-server"
    )


class PrivateMariaDB:
    """One private server; ``start()`` initialises it, ``restart()`` bounces it."""

    def __init__(self) -> None:
        self.server_binary = _binary("mariadbd", "mysqld")
        self.install_binary = _binary("mariadb-install-db", "mysql_install_db")
        self.client_binary = _binary("mariadb", "mysql")
        self.root = Path(tempfile.mkdtemp(prefix="mofa-mariadb-"))
        self.data = self.root / "data"
        self.socket = self.root / "mysqld.sock"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.tls = False

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Initialise the data directory, start the server, create the ``mofa`` user."""
        completed = subprocess.run(
            [
                self.install_binary,
                "--no-defaults",
                f"--datadir={self.data}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if completed.returncode != 0:
            raise ServerUnavailable(
                f"mariadb-install-db failed ({completed.returncode}): "
                f"{(completed.stderr or completed.stdout).strip()[-500:]}"
            )
        self.tls = make_certificate(self.root)
        self.start_again()
        self.sql(
            f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; "
            f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%'"
        )

    @property
    def certificate(self) -> Path:
        return self.root / "server.crt"

    def _arguments(self) -> list[str]:
        arguments = [
            self.server_binary,
            "--no-defaults",
            f"--datadir={self.data}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket}",
            f"--pid-file={self.root / 'mysqld.pid'}",
            f"--log-error={self.log}",
            "--user=root",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=32M",
            "--max-connections=200",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_bin",
        ]
        if self.tls:
            arguments += [f"--ssl-cert={self.certificate}", f"--ssl-key={self.root / 'server.key'}"]
        return arguments

    def start_again(self, timeout: float = 90) -> None:
        """Start the server on its existing data; return once it accepts connections."""
        self.process = subprocess.Popen(
            self._arguments(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerUnavailable(
                    f"mariadbd exited with {self.process.returncode}; log: {log_tail(self.log)}"
                )
            if self._accepts():
                return
            time.sleep(0.1)
        raise ServerUnavailable(
            f"mariadbd did not accept connections within {timeout}s; log: {log_tail(self.log)}"
        )

    def _accepts(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(1)
            try:
                probe.connect(("127.0.0.1", self.port))
                return bool(probe.recv(1))  # the server's greeting
            except OSError:
                return False

    def shut_down(self, kill: bool = False, timeout: float = 90) -> None:
        """SIGTERM (a clean shutdown) or SIGKILL (a crash); wait until the process is gone."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=timeout)

    def restart(self, kill: bool = False) -> None:
        self.shut_down(kill=kill)
        self.start_again()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.shut_down(kill=True)
        shutil.rmtree(self.root, ignore_errors=True)

    # ----------------------------------------------------------------- access

    def sql(self, statements: str) -> str:
        """Run SQL as root over the unix socket; return the tab-separated output."""
        command = [
            self.client_binary,
            "--no-defaults",
            f"--socket={self.socket}",
            "-uroot",
            "--batch",
            "--skip-column-names",
            "-e",
            statements,
        ]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if completed.returncode != 0:
            raise ServerUnavailable(f"SQL failed: {completed.stderr.strip()}")
        return completed.stdout.strip()

    def create_database(self, name: str) -> str:
        self.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        return name

    def url(self, database: str, query: str = "") -> str:
        """A TCP URL for ``database`` as the ``mofa`` user (password percent-encoded)."""
        suffix = f"?{query}" if query else ""
        return f"mysql://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}/{database}{suffix}"


@contextlib.contextmanager
def private_mariadb() -> Iterator[PrivateMariaDB]:
    """Run a private server for the duration of the block (skip, or fail in CI, if impossible)."""
    with private_server(PrivateMariaDB, "MariaDB") as server:
        yield server
