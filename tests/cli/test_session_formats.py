"""One ``--format`` on ``session list`` and ``session show``, list's filters and paging, and
show's ``--head`` / ``--tail``, on the four backends the CLI reads (real databases, through
click's runner)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from mofa.persistence import NewMessage, Session, open_store
from tests._cli import mofa, one_error_line
from tests.cli.test_session import CLI_BACKENDS, CONVERSATION, MAIN, T0, iso, seed
from tests.conftest import _params


@pytest.fixture(params=_params(CLI_BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """The CLI's backends (memory does not outlive the command)."""
    return str(request.param)


FORMATS = ["json", "jsonl", "csv", "yaml"]


@pytest.fixture
def seeded(empty_url: str) -> tuple[str, dict[str, Session]]:
    return empty_url, asyncio.run(seed(empty_url))


def _machine_rows(text: str, output_format: str) -> list[dict[str, object]]:
    """The records of machine-format output, as JSON would give them."""
    if output_format == "json":
        rows: list[dict[str, object]] = json.loads(text)
        return rows
    if output_format == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    if output_format == "yaml":
        loaded = yaml.safe_load(text)
        return [
            {
                key: iso(value) if isinstance(value, datetime) else value
                for key, value in row.items()
            }
            for row in loaded
        ]
    return [
        {key: int(value) if value.isdigit() else (value or None) for key, value in row.items()}
        for row in csv.DictReader(io.StringIO(text))
    ]


@pytest.mark.parametrize("output_format", FORMATS)
def test_list_machine_formats_hold_the_same_records(
    seeded: tuple[str, dict[str, Session]], output_format: str
) -> None:
    url, sessions = seeded
    result = mofa("session", "list", "--format", output_format, url=url)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # machine formats: data alone, nothing on stderr
    expected = [
        {
            "session_id": key,
            "created_at": iso(sessions[key].created_at),
            "message_count": sessions[key].message_count,
            "status": "expired" if key.endswith("125") else "active",
        }
        for key in ("agent-002:session-125", "agent-001:session-124", MAIN)
    ]
    assert _machine_rows(result.stdout, output_format) == expected


def test_list_csv_has_a_header_and_rfc3339_times(seeded: tuple[str, dict[str, Session]]) -> None:
    url, sessions = seeded
    result = mofa("session", "list", "-f", "csv", "--agent", "agent-001", url=url)
    lines = result.stdout.splitlines()
    assert lines[0] == "session_id,created_at,message_count,status"
    created = iso(sessions["agent-001:session-124"].created_at)
    assert lines[1] == f"agent-001:session-124,{created},1,active"
    assert created.endswith("Z")
    assert "T" in created


def test_list_columns_add_ids_and_times_in_every_format(
    seeded: tuple[str, dict[str, Session]],
) -> None:
    url, sessions = seeded
    result = mofa(
        "session", "list", "-f", "jsonl", "--columns", "agent_id,user_id", "--columns",
        "tenant_id,updated_at", "--limit", "1", url=url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    newest = sessions["agent-002:session-125"]
    assert json.loads(result.stdout) == {
        "session_id": newest.session_id,
        "created_at": iso(newest.created_at),
        "message_count": 0,
        "status": "expired",
        "agent_id": "agent-002",
        "user_id": "user-789",
        "tenant_id": None,
        "updated_at": iso(newest.updated_at),
    }
    table = mofa("session", "list", "--columns", "agent_id", "--limit", "1", url=url)
    assert "│ session_id" in table.stdout
    assert "│ agent_id  │" in table.stdout
    bad = mofa("session", "list", "--columns", "password", url=url)
    assert bad.exit_code == 2
    assert "no column 'password'; choose from agent_id, user_id, tenant_id" in bad.stderr


def test_list_filters_by_user_tenant_status_and_time(empty_url: str) -> None:
    async def fill() -> list[Session]:
        async with await open_store(empty_url) as store:
            made = []
            for index in range(4):
                made.append(
                    await store.create_session(
                        f"s{index}",
                        user_id=f"u{index % 2}",
                        tenant_id="acme" if index < 3 else "other",
                    )
                )
                await asyncio.sleep(0.002)
            await store.update_session("s2", status="closed")
            return made

    made = asyncio.run(fill())

    def ids(*args: str) -> list[str]:
        result = mofa("session", "list", "-f", "jsonl", *args, url=empty_url)
        assert result.exit_code == 0, result.output
        return [json.loads(line)["session_id"] for line in result.stdout.splitlines()]

    assert ids("--user", "u0") == ["s2", "s0"]
    assert ids("--tenant", "acme", "--user", "u1") == ["s1"]
    assert ids("--status", "closed") == ["s2"]
    assert ids("--status", "active", "--tenant", "acme") == ["s1", "s0"]
    since = made[1].created_at.isoformat()
    assert ids("--since", since) == ["s3", "s2", "s1"]
    assert ids("--since", since, "--until", made[3].created_at.isoformat()) == ["s2", "s1"]
    assert ids("--since", "1h") == ["s3", "s2", "s1", "s0"]
    assert ids("--until", "1h") == []
    assert ids("--until", "2000-01-01") == []
    assert ids("--limit", "2", "--offset", "1") == ["s2", "s1"]
    table = mofa("session", "list", "--user", "u0", "--since", "7d", url=empty_url)
    assert "  Filtering by user: u0\n" in table.stderr
    assert "  Created: " in table.stderr
    assert " to … (UTC)\n" in table.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "'yesterday' is neither a duration (7d, 24h, 30m, 90s, 2w)"),
        (["--until", "7x"], "'7x' is neither a duration"),
        (["--offset", "-1"], "--offset must be a whole number of 0 or more, not -1."),
        (["--limit", "0"], "--limit must be a whole number of 1 or more, not 0."),
    ],
)
def test_bad_list_options_are_one_sentence(empty_url: str, args: list[str], message: str) -> None:
    result = mofa("session", "list", *args, url=empty_url)
    assert result.exit_code == 2
    assert message in one_error_line(result)
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------ show


@pytest.mark.parametrize(("option", "seqs"), [("--head", [1, 2]), ("--tail", [3, 4])])
def test_show_head_and_tail_trim_messages_and_keep_the_total(
    seeded: tuple[str, dict[str, Session]], option: str, seqs: list[int]
) -> None:
    url, _ = seeded
    result = mofa("session", "show", MAIN, "-f", "json", option, "2", url=url)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["message_count"] == 4
    assert [m["content"] for m in document["messages"]] == [
        CONVERSATION[seq - 1][1] for seq in seqs
    ]
    table = mofa("session", "show", MAIN, option, "2", url=url)
    assert "Messages: 4\n" in table.stdout
    assert table.stdout.count("\n│ ") == 3  # the header row and two messages
    assert mofa("session", "show", MAIN, "-f", "jsonl", option, "0", url=url).stdout == ""


def test_show_head_and_tail_do_not_combine(seeded: tuple[str, dict[str, Session]]) -> None:
    url, _ = seeded
    result = mofa("session", "show", MAIN, "--head", "1", "--tail", "1", url=url)
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "Error: --head and --tail cannot be combined; give one of them."
    )


def test_show_jsonl_and_csv_are_its_messages(seeded: tuple[str, dict[str, Session]]) -> None:
    url, _ = seeded
    lines = mofa("session", "show", MAIN, "-f", "jsonl", url=url).stdout.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"timestamp": iso(T0 + timedelta(seconds=offset)), "role": role, "content": content}
        for role, content, offset in CONVERSATION
    ]
    text = mofa("session", "show", MAIN, "-o", "csv", url=url).stdout
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["timestamp", "role", "content", "metadata"]
    assert rows[4] == [iso(T0 + timedelta(seconds=18)), "assistant", CONVERSATION[3][1], ""]
    assert len(rows) == 5  # the multi-line answer is one quoted cell


def test_show_table_of_a_long_session_lines_up_and_streams(empty_url: str) -> None:
    """More messages than one batch: the table is measured in one pass and printed in a
    second, so every row has the width of the widest."""

    async def fill() -> None:
        async with await open_store(empty_url) as store:
            await store.create_session("long")
            await store.append_messages(
                "long",
                [NewMessage("user", "x" * (index % 90)) for index in range(1500)]
                + [NewMessage("assistant", "👍🏽 ❤️ 1️⃣ 中文")],
            )

    asyncio.run(fill())
    result = mofa("session", "show", "long", "--no-pager", url=empty_url)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith(("│", "┌", "└"))]
    assert len(rows) == 1501 + 3
    from mofa.cli._render import display_width

    assert len({display_width(row) for row in rows}) == 1
    assert "│ assistant │ 👍🏽 ❤️ 1️⃣ 中文" in result.stdout


def test_show_metadata_in_csv_is_json(empty_url: str) -> None:
    async def fill() -> None:
        async with await open_store(empty_url) as store:
            await store.create_session("m")
            await store.append_message("m", "assistant", "hi", metadata={"model": "x", "n": 1})

    asyncio.run(fill())
    text = mofa("session", "show", "m", "-f", "csv", url=empty_url).stdout
    assert list(csv.reader(io.StringIO(text)))[1][3] == '{"n":1,"model":"x"}'  # JSONB's order


def test_times_are_one_form_per_kind_of_output(seeded: tuple[str, dict[str, Session]]) -> None:
    """Tables: 2024-02-28 10:30:00; every machine format: 2024-02-28T10:30:00Z."""
    url, sessions = seeded
    created = sessions[MAIN].created_at.astimezone(UTC)
    table = created.strftime("%Y-%m-%d %H:%M:%S")
    machine = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert table in mofa("session", "list", url=url).stdout
    assert f"Created: {table}" in mofa("session", "show", MAIN, url=url).stdout
    for output_format in FORMATS:
        listed = mofa("session", "list", "-f", output_format, url=url).stdout
        assert machine in listed, output_format
        assert table not in listed, output_format
    for output_format in ("json", "yaml"):
        shown = mofa("session", "show", MAIN, "-f", output_format, url=url).stdout
        assert machine in shown
        assert table not in shown
