"""``mofa session list/show/export/delete`` on every backend the CLI is used with.

Each test seeds a real, empty database of the current backend (files, SQLite, PostgreSQL,
MariaDB) through the store API, runs the command through click's CliRunner with
``--database-url`` and checks stdout, stderr, the exit code and the database afterwards.
"""

from __future__ import annotations

import ast
import asyncio
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from mofa.cli._render import display_width
from mofa.persistence import NewMessage, Session, open_store
from tests._cli import MOFA, mofa, one_error_line
from tests.conftest import _params

#: Every backend the CLI reads (memory does not outlive the command).
CLI_BACKENDS = ["files", "sqlite", "postgres", "mysql"]

T0 = datetime(2024, 2, 28, 10, 30, tzinfo=UTC)
LONG_ANSWER = (
    "I found your order. It's currently being processed. Expected delivery is Thursday;\n"
    "you will get a tracking number by email as soon as it ships."
)
CONVERSATION = [
    ("user", "Hello, I need help with my order", 5),
    ("assistant", "I'd be happy to help! What's your order number?", 8),
    ("user", "ORD-12345", 15),
    ("assistant", LONG_ANSWER, 18),
]
MAIN = "agent-001:session-123"


@pytest.fixture(params=_params(CLI_BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """Overrides the conftest fixture, so ``empty_url`` covers the CLI's backends."""
    return str(request.param)


def _take_the_terminal() -> None:
    # In the child: a new session whose controlling terminal is the pty on stdin, so that
    # typing Ctrl-C there sends SIGINT, as in a shell.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def on_terminal(
    command: list[str],
    answer: bytes | list[bytes],
    env: dict[str, str],
    cwd: Path | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[int, str, int]:
    """Run ``command`` on a pseudo-terminal, typing ``answer`` at every ``[y/N]: `` prompt
    (or, given a list, its answers in turn, one a prompt).

    The answer is typed the moment the prompt shows, so a Ctrl-C may land before the command
    starts reading; the terminal is the command's controlling terminal (Ctrl-C in ``answer``
    interrupts it). ``size``: the terminal's rows and columns (else the pty's 0 x 0, which
    programs read as unknown). Returns the exit code, everything the terminal showed (with
    ``\n`` line ends) and how many prompts were answered.
    """
    answers = [answer] if isinstance(answer, bytes) else list(answer)
    controller, terminal = pty.openpty()
    if size is not None:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        close_fds=True,
        preexec_fn=_take_the_terminal,
    )
    os.close(terminal)
    output = b""
    answered = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # EIO: every process let go of the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if output.endswith(b"[y/N]: "):
                    os.write(controller, answers[min(answered, len(answers) - 1)])
                    answered += 1
            elif process.poll() is not None:
                break
        else:
            pytest.fail(f"{command} still runs after 120 s; the terminal showed {output!r}")
        code = process.wait(timeout=60)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return code, output.decode("utf-8").replace("\r\n", "\n"), answered


async def seed(url: str) -> dict[str, Session]:
    """Three sessions as in the seeds (created in this order: 123, 124, 125)."""
    async with await open_store(url) as store:
        main = await store.create_session(
            MAIN,
            agent_id="agent-001",
            user_id="user-456",
            metadata={"context": "customer_support"},
        )
        await store.append_messages(
            MAIN,
            [
                NewMessage(role, content, timestamp=T0 + timedelta(seconds=offset))
                for role, content, offset in CONVERSATION
            ],
        )
        second = await store.create_session(
            "agent-001:session-124", agent_id="agent-001", user_id="user-456"
        )
        await store.append_message(second.session_id, "user", "Hi", timestamp=T0)
        third = await store.create_session(
            "agent-002:session-125",
            agent_id="agent-002",
            user_id="user-789",
            expires_at=datetime(2020, 1, 1, tzinfo=UTC),
        )
        return {
            session.session_id: session
            for session in [await store.get_session(s.session_id) for s in (main, second, third)]
            if session is not None
        }


def created(session: Session) -> str:
    return session.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def seeded(empty_url: str) -> tuple[str, dict[str, Session]]:
    return empty_url, asyncio.run(seed(empty_url))


async def _state(url: str, session_id: str) -> tuple[Session | None, int, int]:
    async with await open_store(url) as store:
        found = await store.get_session(session_id)
        messages = await store.list_messages(session_id)
        return found, len(messages), len(await store.list_sessions())


def state(url: str, session_id: str) -> tuple[Session | None, int, int]:
    """(the session or None, its messages, sessions in the store)."""
    return asyncio.run(_state(url, session_id))


# ------------------------------------------------------------------------------ list


def test_list_prints_the_seeds_lines_and_a_box_table_newest_first(
    seeded: tuple[str, dict[str, Session]],
) -> None:
    url, sessions = seeded
    result = mofa("session", "list", url=url)
    assert result.exit_code == 0, result.output
    s123, s124, s125 = (sessions[key] for key in sorted(sessions))
    # What a terminal shows: the seeds' lines. The table alone is on stdout.
    assert result.output == (
        "→ Listing sessions\n"
        "\n"
        "┌───────────────────────┬─────────────────────┬───────────────┬─────────┐\n"
        "│ session_id            │ created_at          │ message_count │ status  │\n"
        "├───────────────────────┼─────────────────────┼───────────────┼─────────┤\n"
        f"│ agent-002:session-125 │ {created(s125)} │ 0             │ expired │\n"
        f"│ agent-001:session-124 │ {created(s124)} │ 1             │ active  │\n"
        f"│ agent-001:session-123 │ {created(s123)} │ 4             │ active  │\n"
        "└───────────────────────┴─────────────────────┴───────────────┴─────────┘\n"
    )
    assert result.stderr == "→ Listing sessions\n\n"
    assert result.stdout == result.output.removeprefix(result.stderr)


def test_list_filters_by_agent_and_limits_newest_first(
    seeded: tuple[str, dict[str, Session]],
) -> None:
    url, _ = seeded
    result = mofa("session", "list", "--agent", "agent-001", "--limit", "1", url=url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:4] == ["→ Listing sessions", "  Filtering by agent: agent-001", "  Limit: 1", ""]
    assert result.stdout.splitlines() == lines[4:]
    assert len(lines) == 4 + 5  # top, header, separator, one row, bottom
    assert lines[7].startswith("│ agent-001:session-124 │")
    short = mofa("session", "list", "-a", "agent-002", "-n", "5", url=url)
    assert short.stderr.splitlines()[1:3] == ["  Filtering by agent: agent-002", "  Limit: 5"]
    rows = [line for line in short.stdout.splitlines() if line.startswith("│ agent")]
    assert [row.split()[1] for row in rows] == ["agent-002:session-125"]


def test_list_json_is_the_seeds_shape_and_stdout_holds_only_json(
    seeded: tuple[str, dict[str, Session]],
) -> None:
    """The seeds' fields; the time in RFC 3339 as every machine format prints it (the seeds'
    list JSON had "2024-02-28 10:30:00": a deviation the README names)."""
    url, sessions = seeded
    result = mofa("session", "list", "--agent", "agent-001", "--output-format", "json", url=url)
    assert result.exit_code == 0, result.output
    expected = [
        {
            "session_id": key,
            "created_at": iso(sessions[key].created_at),
            "message_count": sessions[key].message_count,
            "status": "active",
        }
        for key in ("agent-001:session-124", "agent-001:session-123")
    ]
    assert result.stdout == json.dumps(expected, indent=2) + "\n"
    assert result.stderr == ""


async def _create(url: str) -> None:
    async with await open_store(url):
        pass


def test_list_of_an_empty_store(empty_url: str) -> None:
    asyncio.run(_create(empty_url))
    table = mofa("session", "list", url=empty_url)
    assert (table.exit_code, table.output) == (0, "→ Listing sessions\n\nNo sessions found.\n")
    assert table.stdout == "No sessions found.\n"
    as_json = mofa("session", "list", "--output-format", "json", url=empty_url)
    assert (as_json.exit_code, json.loads(as_json.stdout), as_json.stderr) == (0, [], "")


@pytest.mark.parametrize(
    ("scheme", "what"),
    [
        ("sqlite", "SQLite database at {}"),
        ("file", "mofa file store in {} (it has no mofa-store.json)"),
    ],
)
@pytest.mark.parametrize("command", [["list"], ["show", MAIN], ["delete", MAIN, "--force"]])
def test_a_store_that_does_not_exist_is_reported_not_created(
    tmp_path: Path, scheme: str, what: str, command: list[str]
) -> None:
    missing = tmp_path / "typo"
    result = mofa("session", *command, url=f"{scheme}://{missing}")
    assert result.exit_code == 1
    assert one_error_line(result) == (f"Error: There is no {what.format(missing)}; check the path.")
    assert list(tmp_path.iterdir()) == []


def test_the_default_store_before_its_first_write_is_empty_and_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("MOFA_DATA_DIR", str(data))
    monkeypatch.delenv("MOFA_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no agent.yml here
    listed = mofa("session", "list")
    assert (listed.exit_code, listed.output) == (0, "→ Listing sessions\n\nNo sessions found.\n")
    shown = mofa("session", "show", MAIN)
    assert shown.exit_code == 1
    assert one_error_line(shown) == f"Error: Session not found: {MAIN}"
    assert not data.exists()


# ------------------------------------------------------------------------------ show


def show_document(session: Session) -> dict[str, Any]:
    return {
        "session_id": MAIN,
        "created_at": iso(session.created_at),
        "message_count": 4,
        "status": "active",
        "metadata": {"agent_id": "agent-001", "user_id": "user-456", "context": "customer_support"},
        "messages": [
            {"timestamp": iso(T0 + timedelta(seconds=offset)), "role": role, "content": content}
            for role, content, offset in CONVERSATION
        ],
    }


def test_show_table_is_the_seeds_view(seeded: tuple[str, dict[str, Session]]) -> None:
    url, sessions = seeded
    result = mofa("session", "show", MAIN, url=url)
    assert result.exit_code == 0, result.output
    cut = "I found your order. It's currently being processed. Expected delive…"
    assert len(cut) == 68
    border = "─" * 70
    assert result.stdout == (
        f"Session: {MAIN}\n"
        f"Created: {created(sessions[MAIN])}\n"
        "Messages: 4\n"
        "Status: active\n"
        "\n"
        "Metadata:\n"
        "  agent_id: agent-001\n"
        "  user_id: user-456\n"
        "  context: customer_support\n"
        "\n"
        "Conversation:\n"
        "\n"
        f"┌───────────┬───────────┬{border}┐\n"
        f"│ Timestamp │ Role      │ {'Content':<68} │\n"
        f"├───────────┼───────────┼{border}┤\n"
        f"│ 10:30:05  │ user      │ {'Hello, I need help with my order':<68} │\n"
        f"│ 10:30:08  │ assistant │ {CONVERSATION[1][1]:<68} │\n"
        f"│ 10:30:15  │ user      │ {'ORD-12345':<68} │\n"
        f"│ 10:30:18  │ assistant │ {cut} │\n"
        f"└───────────┴───────────┴{border}┘\n"
    )


def test_show_json_is_the_seeds_document_alone_on_stdout(
    seeded: tuple[str, dict[str, Session]],
) -> None:
    url, sessions = seeded
    result = mofa("session", "show", MAIN, "--format", "json", url=url)
    assert result.exit_code == 0, result.output
    assert result.stdout == json.dumps(show_document(sessions[MAIN]), indent=2) + "\n"
    assert result.stderr == ""


@pytest.mark.parametrize("flag", ["--format", "-f", "-o"])
def test_show_yaml_reads_back_as_the_json_document(
    seeded: tuple[str, dict[str, Session]], flag: str
) -> None:
    url, sessions = seeded
    result = mofa("session", "show", MAIN, flag, "yaml", url=url)
    assert result.exit_code == 0, result.output
    document = show_document(sessions[MAIN])
    # Unquoted like the seeds: timestamps are YAML timestamps, ids plain scalars.
    assert f"session_id: {MAIN}\ncreated_at: {document['created_at']}\n" in result.stdout
    assert "  - timestamp: 2024-02-28T10:30:05Z\n    role: user\n" in result.stdout
    assert "    content: Hello, I need help with my order\n" in result.stdout
    loaded = yaml.safe_load(result.stdout)
    # safe_load gives the timestamps back as UTC datetimes; the same instants as the JSON.
    loaded["created_at"] = iso(loaded["created_at"])
    for message in loaded["messages"]:
        message["timestamp"] = iso(message["timestamp"])
    assert loaded == document
    assert list(loaded) == list(document)


def test_show_of_a_missing_session(seeded: tuple[str, dict[str, Session]]) -> None:
    url, _ = seeded
    for output_format in ("table", "json", "yaml"):
        result = mofa("session", "show", "nope", "-f", output_format, url=url)
        assert result.exit_code == 1
        assert one_error_line(result) == "Error: Session not found: nope"
        assert result.stdout == ""
    # An id whose difference would not show is quoted.
    for invisible, shown in [("nope ", "'nope '"), ("a\tb", "'a\\tb'")]:
        result = mofa("session", "show", invisible, url=url)
        assert one_error_line(result) == f"Error: Session not found: {shown}"


# ---------------------------------------------------------------------------- export


@pytest.mark.parametrize("export_format", ["json", "yaml"])
def test_export_writes_the_seeds_file_and_lines(
    seeded: tuple[str, dict[str, Session]], tmp_path: Path, export_format: str
) -> None:
    url, sessions = seeded
    target = tmp_path / "exports" / "deep" / f"{MAIN}.{export_format}"
    result = mofa("session", "export", MAIN, "-o", str(target), "--format", export_format, url=url)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"→ Exporting session: {MAIN}\n"
        f"  Format: {export_format}\n"
        f"  Output: {target}\n"
        "  ✓ Exported 4 messages\n"
        "✓ Session exported successfully\n"
    )
    expected = {
        "session_id": MAIN,
        "created_at": iso(sessions[MAIN].created_at),
        "metadata": {"agent_id": "agent-001", "user_id": "user-456", "context": "customer_support"},
        "messages": [
            {"role": role, "content": content, "timestamp": iso(T0 + timedelta(seconds=offset))}
            for role, content, offset in CONVERSATION
        ],
    }
    text = target.read_text(encoding="utf-8")
    document = _read_back(text, export_format)
    # The seeds' fields hold the seeds' values (their jq workflows work as written), times
    # to the microsecond (a deviation the README names); the rest of mofa-session/1 beside.
    assert document["format"] == "mofa-session/1"
    assert document["messages"][0]["timestamp"] == "2024-02-28T10:30:05.000000Z"
    assert seeds_view(document) == expected
    if export_format == "json":
        assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    # No temporary file is left beside it.
    assert [path.name for path in target.parent.iterdir()] == [target.name]


def test_export_of_a_missing_session_writes_nothing(
    seeded: tuple[str, dict[str, Session]], tmp_path: Path
) -> None:
    url, _ = seeded
    target = tmp_path / "out.json"
    result = mofa("session", "export", "nope", "-o", str(target), "-f", "json", url=url)
    assert result.exit_code == 1
    assert one_error_line(result) == "Error: Session not found: nope"
    assert [p.name for p in tmp_path.iterdir() if "out.json" in p.name] == []


# ---------------------------------------------------------------------------- delete


def test_delete_with_force(seeded: tuple[str, dict[str, Session]]) -> None:
    url, _ = seeded
    result = mofa("session", "delete", MAIN, "--force", url=url)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"→ Deleting session: {MAIN}\n  Removing session data...\n✓ Session deleted successfully\n"
    )
    found, messages, remaining = state(url, MAIN)
    assert (found, messages, remaining) == (None, 0, 2)


def test_delete_of_a_missing_session_exits_1(seeded: tuple[str, dict[str, Session]]) -> None:
    url, _ = seeded
    result = mofa("session", "delete", "nope", "--force", url=url)
    assert result.exit_code == 1
    assert one_error_line(result) == "Error: Session not found: nope"
    assert state(url, MAIN)[2] == 3


def test_delete_without_a_terminal_refuses_instead_of_waiting(
    seeded: tuple[str, dict[str, Session]],
) -> None:
    url, _ = seeded
    # CliRunner's stdin is not a terminal; "y" on it must not count as a confirmation.
    result = mofa("session", "delete", MAIN, url=url, input="y\n")
    assert result.exit_code == 3
    assert "use --force" in one_error_line(result)
    found, messages, _ = state(url, MAIN)
    assert found is not None
    assert messages == 4


def test_delete_of_a_missing_session_without_a_terminal_is_not_found(
    seeded: tuple[str, dict[str, Session]],
) -> None:
    # Looked up before refusing for lack of a terminal: the seeds' exit code 1, not 3.
    url, _ = seeded
    result = mofa("session", "delete", "nope", url=url, input="")
    assert result.exit_code == 1
    assert one_error_line(result) == "Error: Session not found: nope"
    assert result.stderr.splitlines()[0] == "→ Deleting session: nope"
    assert result.stdout == ""
    assert state(url, MAIN)[2] == 3


def test_delete_of_a_missing_session_with_stdin_from_dev_null(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    asyncio.run(seed(url))
    command = [str(MOFA), "--database-url", url, "session", "delete"]
    missing = subprocess.run(
        [*command, "nope"], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.splitlines()[-1] == "Error: Session not found: nope"
    present = subprocess.run(
        [*command, MAIN], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    assert present.returncode == 3
    assert present.stdout == ""
    assert present.stderr.splitlines()[-1] == (
        f"Error: Refusing to delete session {MAIN} without confirmation: stdin is not a "
        "terminal; use --force."
    )
    assert state(url, MAIN)[1] == 4


# ------------------------------------------------ metadata: the columns and the session's own

#: The reviewer's session: its own metadata uses the names of the agent_id, user_id and
#: tenant_id columns, with other values; only agent_id is set as a column.
CLASHING = "clashing-session"
CLASHING_METADATA = {
    "agent_id": "planner-v2",
    "user_id": "alice@example.com",
    "tenant_id": "acme",
    "context": "support",
}
PARTIAL = {"partial": True, "status": "partial", "error": "the stream was cut off"}
FAILED = {"status": "failed", "error": "HTTP 503", "http_status": 503}


async def _seed_clashing(url: str) -> Session:
    async with await open_store(url) as store:
        await store.create_session(CLASHING, agent_id="agent-001", metadata=CLASHING_METADATA)
        await store.append_message(CLASHING, "user", "Hello", timestamp=T0)
        await store.append_message(
            CLASHING, "assistant", "Hi! How can I", metadata=PARTIAL, timestamp=T0
        )
        await store.append_message(CLASHING, "user", "Again?", timestamp=T0)
        await store.append_message(
            CLASHING, "system", "model call failed", metadata=FAILED, timestamp=T0
        )
        found = await store.get_session(CLASHING)
        assert found is not None
        return found


def clashing_document(session: Session) -> dict[str, Any]:
    """What export writes: the seeds' fields, the columns in ``metadata`` (tenant_id is unset,
    so absent), the session's own keys of column names in ``shadowed_metadata``."""
    return {
        "session_id": CLASHING,
        "created_at": iso(session.created_at),
        "metadata": {"agent_id": "agent-001", "user_id": None, "context": "support"},
        "shadowed_metadata": {
            "agent_id": "planner-v2",
            "user_id": "alice@example.com",
            "tenant_id": "acme",
        },
        "messages": [
            {"role": "user", "content": "Hello", "timestamp": iso(T0)},
            {
                "role": "assistant",
                "content": "Hi! How can I",
                "timestamp": iso(T0),
                "metadata": PARTIAL,
            },
            {"role": "user", "content": "Again?", "timestamp": iso(T0)},
            {
                "role": "system",
                "content": "model call failed",
                "timestamp": iso(T0),
                "metadata": FAILED,
            },
        ],
    }


def _read_back(text: str, export_format: str) -> Any:
    if export_format == "json":
        return json.loads(text)
    return yaml.safe_load(text)


def seeds_view(document: dict[str, Any]) -> dict[str, Any]:
    """An export's fields that the seeds show (times to the second, as they print them), and
    each message's metadata when it has any, as ``session show`` prints it."""

    def second(text: str) -> str:
        return iso(datetime.fromisoformat(text))

    view = {key: document[key] for key in ("session_id", "metadata")}
    view["created_at"] = second(document["created_at"])
    if "shadowed_metadata" in document:
        view["shadowed_metadata"] = document["shadowed_metadata"]
    view["messages"] = [
        {
            "role": message["role"],
            "content": message["content"],
            "timestamp": second(message["timestamp"]),
            **({"metadata": message["metadata"]} if message["metadata"] else {}),
        }
        for message in document["messages"]
    ]
    return view


@pytest.mark.parametrize("export_format", ["json", "yaml"])
def test_export_keeps_the_columns_and_every_key_of_the_sessions_metadata(
    empty_url: str, tmp_path: Path, export_format: str
) -> None:
    session = asyncio.run(_seed_clashing(empty_url))
    target = tmp_path / f"out.{export_format}"
    result = mofa(
        "session", "export", CLASHING, "-o", str(target), "-f", export_format, url=empty_url
    )
    assert result.exit_code == 0, result.output
    exported = _read_back(target.read_text(encoding="utf-8"), export_format)
    expected = clashing_document(session)
    assert seeds_view(exported) == expected
    # Nothing lost: the columns and the stored metadata can both be rebuilt from the file.
    own = {
        key: value
        for key, value in exported["metadata"].items()
        if key not in ("agent_id", "user_id", "tenant_id")
    }
    assert {**own, **exported["shadowed_metadata"]} == CLASHING_METADATA


@pytest.mark.parametrize("output_format", ["json", "yaml"])
def test_show_documents_keep_the_sessions_and_the_messages_metadata(
    empty_url: str, output_format: str
) -> None:
    session = asyncio.run(_seed_clashing(empty_url))
    result = mofa("session", "show", CLASHING, "-f", output_format, url=empty_url)
    assert result.exit_code == 0, result.output
    shown = _read_back(result.stdout, output_format)
    expected = clashing_document(session)
    assert shown["metadata"] == expected["metadata"]
    assert shown["shadowed_metadata"] == expected["shadowed_metadata"]
    assert [message.get("metadata") for message in shown["messages"]] == [
        None,
        PARTIAL,
        None,
        FAILED,
    ]


def test_show_table_shows_shadowed_metadata_and_marks_partial_and_failed_messages(
    empty_url: str,
) -> None:
    asyncio.run(_seed_clashing(empty_url))
    result = mofa("session", "show", CLASHING, url=empty_url)
    assert result.exit_code == 0, result.output
    text = result.stdout
    metadata, shadowed = (
        text.split(f"{heading}\n", 1)[1].split("\n\n", 1)[0].splitlines()
        for heading in ("Metadata:", "Shadowed metadata (stored under a column's name):")
    )
    # The columns first; then the session's own keys (in the order the database keeps them:
    # PostgreSQL's JSONB has its own).
    assert metadata[:2] == ["  agent_id: agent-001", "  user_id: -"]
    assert metadata[2:] == ["  context: support"]
    assert sorted(shadowed) == [
        "  agent_id: planner-v2",
        "  tenant_id: acme",
        "  user_id: alice@example.com",
    ]
    assert text.index("Shadowed metadata") < text.index("Conversation:")
    roles = [line.split("│")[2].strip() for line in result.stdout.splitlines() if "│ 10:" in line]
    assert roles == ["user", "assistant (partial)", "user", "system (failed)"]


def test_export_of_a_session_whose_metadata_names_no_column_is_the_seeds_shape(
    seeded: tuple[str, dict[str, Session]],
) -> None:
    url, _ = seeded
    result = mofa("session", "export", MAIN, "-o", "-", "-f", "json", url=url)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert "shadowed_metadata" not in document
    assert set(document["metadata"]) == {"agent_id", "user_id", "context"}
    assert all(
        set(message) == {"content", "metadata", "role", "seq", "timestamp"}
        for message in document["messages"]
    )


# ------------------------------------------------ ids that hold invisible characters

ZERO_WIDTH = "agent-001:se\u200bssion"
FAMILY = "family-👩\u200d👩\u200d👧"
CONTROL = "a\x1b[31mb"


async def _seed_ids(url: str) -> None:
    async with await open_store(url) as store:
        for session_id in (ZERO_WIDTH, FAMILY, CONTROL):
            await store.create_session(session_id, agent_id="agent-001")
            await store.append_message(session_id, "user", "zero\u200bwidth 👩\u200d👩\u200d👧")


def test_ids_in_tables_can_be_copied_back_or_are_shown_escaped(empty_url: str) -> None:
    asyncio.run(_seed_ids(empty_url))
    listed = mofa("session", "list", url=empty_url)
    assert listed.exit_code == 0, listed.output
    cells = [line.split("│")[1].strip() for line in listed.stdout.splitlines()[3:-1]]
    # The emoji's joiners are kept, so the family id is printed exactly; the others are
    # quoted and escaped as the error messages show ids, never turned into spaces.
    assert sorted(cells) == sorted([FAMILY, "'agent-001:se\\u200bssion'", "'a\\x1b[31mb'"])
    assert "\x1b" not in listed.stdout
    assert "\u200b" not in listed.stdout
    for cell in cells:
        session_id = cell if cell == FAMILY else ast.literal_eval(cell)
        shown = mofa("session", "show", session_id, url=empty_url)
        assert shown.exit_code == 0, shown.output
        assert shown.stdout.splitlines()[0] == f"Session: {cell}"
        content = shown.stdout.splitlines()[-2]
        assert "zero\\u200bwidth 👩\u200d👩\u200d👧" in content
    # Table borders stay aligned: one glyph for the family, wide as its first emoji.
    widths = {display_width(line) for line in listed.stdout.splitlines()}
    assert len(widths) == 1


def test_missing_ids_are_escaped_the_same_way_everywhere(empty_url: str) -> None:
    asyncio.run(_seed_ids(empty_url))
    for command in (["show"], ["delete", "--force"]):
        result = mofa("session", *command[:1], "a\u200bb", *command[1:], url=empty_url)
        assert one_error_line(result) == "Error: Session not found: 'a\\u200bb'"
    family = mofa("session", "show", "👩\u200d👧", url=empty_url)
    assert one_error_line(family) == "Error: Session not found: 👩\u200d👧"
