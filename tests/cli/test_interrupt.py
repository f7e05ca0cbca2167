"""Ctrl-C: a real ``mofa`` process, a real SIGINT, exit 130 and one line, never a traceback
nor another diagnosis (a connect timeout, click's "Aborted!")."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests._cli import MOFA

#: How long a test waits for the process to reach the point it interrupts.
PATIENCE = 30.0


@contextmanager
def silent_server() -> Iterator[tuple[int, threading.Event]]:
    """A TCP listener that accepts connections and never says a word; yields its port and an
    event set once a client has connected (the client then waits for the server's greeting,
    as on a hung database server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    connected = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            accepted.append(connection)
            connected.set()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], connected
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


def interrupt(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Send Ctrl-C's signal; return the process's (stdout, stderr) once it ended."""
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=PATIENCE)


def assert_interrupted(process: subprocess.Popen[str], stderr: str) -> None:
    assert "Traceback" not in stderr
    assert process.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "Error: Interrupted.", stderr


@pytest.mark.parametrize("scheme", ["mysql", "postgresql"])
@pytest.mark.parametrize(
    "command",
    [
        ["session", "list"],
        ["session", "show", "s-1", "--format", "json"],
    ],
)
def test_ctrl_c_during_a_hung_connect_exits_130(scheme: str, command: list[str]) -> None:
    with silent_server() as (port, connected):
        url = f"{scheme}://root@127.0.0.1:{port}/mofa"
        process = subprocess.Popen(
            [str(MOFA), "--database-url", url, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert connected.wait(PATIENCE), "mofa never connected"
        _, stderr = interrupt(process)
    assert_interrupted(process, stderr)
    assert "connect" not in stderr


def test_ctrl_c_during_a_hung_db_init_exits_130() -> None:
    with silent_server() as (port, connected):
        url = f"postgresql://postgres:S3cret-pw@127.0.0.1:{port}/mofa"
        process = subprocess.Popen(
            [str(MOFA), "db", "init", "-t", "postgres", "-u", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert connected.wait(PATIENCE), "mofa never connected"
        stdout, stderr = interrupt(process)
    assert_interrupted(process, stderr)
    assert "S3cret-pw" not in stdout + stderr


def _wait_for_a_reader(fifo: Path, process: subprocess.Popen[str]) -> int:
    """Open ``fifo`` for writing once ``process`` has opened it for reading (it then waits for
    data that never comes); return the descriptor."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)


def test_ctrl_c_while_reading_the_configuration_exits_130(tmp_path: Path) -> None:
    """Before any store is opened: click alone would say "Aborted!" and exit 1."""
    fifo = tmp_path / "agent.yml"
    os.mkfifo(fifo)
    env = {name: value for name, value in os.environ.items() if name != "MOFA_DATABASE_URL"}
    process = subprocess.Popen(
        [str(MOFA), "--config", str(fifo), "session", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    writer = _wait_for_a_reader(fifo, process)
    try:
        _, stderr = interrupt(process)
    finally:
        os.close(writer)
    assert_interrupted(process, stderr)
