"""``mofa session``: help, usage errors, failures and the delete confirmation.

Every failure must be one ``Error: …`` line on stderr with the documented exit code, never a
traceback and never a password. The confirmation prompt is driven through a real terminal
(a pseudo-terminal) with the installed ``mofa`` script.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from mofa.persistence import NewMessage, open_store
from tests._cli import MOFA, mofa, one_error_line
from tests.cli.test_session import MAIN, on_terminal, seed
from tests.conftest import _params
from tests.servers import database_name, mysql_account, postgres_account, with_credentials

SUBCOMMANDS = ["list", "show", "export", "import", "delete", "prune"]


# -------------------------------------------------------------------------------- help


def test_session_help_lists_every_subcommand() -> None:
    result = mofa("session", "--help")
    assert result.exit_code == 0
    for name in SUBCOMMANDS:
        assert f"\n  {name} " in result.stdout


@pytest.mark.parametrize(
    ("subcommand", "expected"),
    [
        (
            "list",
            [
                "-a, --agent AGENT_ID",
                "-n, --limit N",
                "--user USER_ID",
                "--tenant TENANT_ID",
                "--status STATUS",
                "--since WHEN",
                "--until WHEN",
                "--offset N",
                "--columns COLUMNS",
                "-f, --format, --output-format [table|json|jsonl|csv|yaml]",
            ],
        ),
        (
            "show",
            [
                "SESSION_ID",
                "-f, -o, --format [table|json|jsonl|csv|yaml]",
                "--head N",
                "--tail N",
                "--no-pager",
            ],
        ),
        ("export", ["[SESSION_ID]", "-o, --output PATH", "-f, --format [json|yaml|jsonl]"]),
        ("import", ["FILE...", "--on-conflict [fail|skip|replace]", "--session-id NEW_ID"]),
        (
            "delete",
            [
                "SESSION_ID...",
                "--force",
                "Exit codes (the worst one wins): 0 deleted, 1 a session not found, 2",
            ],
        ),
        (
            "prune",
            [
                "--older-than WHEN",
                "--expired",
                "--keep-last N",
                "--yes",
                "-f, --format [table|json|jsonl|csv|yaml]",
            ],
        ),
    ],
)
def test_every_subcommand_has_help(subcommand: str, expected: list[str]) -> None:
    result = mofa("session", subcommand, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: mofa session {subcommand} [OPTIONS]")
    text = " ".join(result.stdout.split())
    for fragment in expected:
        assert " ".join(fragment.split()) in text


# ------------------------------------------------------------------------ usage errors


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["show", "s1", "--format", "xml"], "'table', 'json', 'jsonl', 'csv', 'yaml'"),
        (["show", "s1", "-o", "tsv"], "'table', 'json', 'jsonl', 'csv', 'yaml'"),
        (["export", "s1", "-o", "x.json", "-f", "table"], "'json', 'yaml', 'jsonl'"),
        (["list", "--output-format", "xml"], "'table', 'json', 'jsonl', 'csv', 'yaml'"),
        (["prune", "--expired", "-f", "xml"], "'table', 'json', 'jsonl', 'csv', 'yaml'"),
    ],
)
def test_a_bad_format_exits_2_listing_the_choices(
    args: list[str], choices: str, tmp_path: Path
) -> None:
    result = mofa("session", *args, url=f"sqlite://{tmp_path / 'm.db'}")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: Invalid value for ")
    assert error.endswith(f"is not one of {choices}.")
    assert not (tmp_path / "m.db").exists()  # nothing was opened


def test_export_needs_an_output_and_a_format() -> None:
    missing_output = mofa("session", "export", "s1", "-f", "json")
    assert missing_output.exit_code == 2
    assert "Missing option '-o' / '--output'" in missing_output.stderr
    missing_format = mofa("session", "export", "s1", "-o", "x.json")
    assert missing_format.exit_code == 2
    assert "Missing option '-f' / '--format'" in missing_format.stderr


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--limit", "0"], "0"),
        (["-n", "-3"], "-3"),
        (["-n", "abc"], "'abc'"),
        (["--limit", "1.5"], "'1.5'"),
        (["--limit="], "''"),
    ],
)
def test_a_limit_that_is_not_a_whole_number_of_1_or_more_is_one_sentence(
    args: list[str], shown: str, tmp_path: Path
) -> None:
    result = mofa("session", "list", *args, url=f"sqlite://{tmp_path / 'm.db'}")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors == [f"Error: --limit must be a whole number of 1 or more, not {shown}."]
    assert not (tmp_path / "m.db").exists()  # nothing was opened


# ------------------------------------------------------------- store and config errors

COMMANDS = {
    "list": (["session", "list"], 1),
    "list-json": (["session", "list", "--output-format", "json"], 1),
    "show": (["session", "show", "s1"], 1),
    "show-yaml": (["session", "show", "s1", "-f", "yaml"], 1),
    "export": (["session", "export", "s1", "-o", "EXPORT", "-f", "json"], 1),
    "delete": (["session", "delete", "s1", "--force"], 3),
}


def invoke(name: str, tmp_path: Path, url: str | None) -> tuple[Result, int]:
    args, code = COMMANDS[name]
    args = [str(tmp_path / "out.json") if arg == "EXPORT" else arg for arg in args]
    return mofa(*args, url=url), code


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    "url",
    ["postgresql://mofa:s3cret-pw@127.0.0.1:1/x", "mysql://root:s3cret-pw@127.0.0.1:1/x"],
    ids=["postgres", "mysql"],
)
def test_an_unreachable_database_is_one_line_without_the_password(
    command: str, url: str, tmp_path: Path
) -> None:
    result, code = invoke(command, tmp_path, url)
    assert result.exit_code == code
    line = one_error_line(result)
    assert "127.0.0.1:1" in line
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_invalid_url_is_one_line(command: str, tmp_path: Path) -> None:
    result, code = invoke(command, tmp_path, "oracle://scott:tiger-pw@db/x")
    assert result.exit_code == code
    line = one_error_line(result)
    assert "Unsupported database URL scheme 'oracle'" in line
    assert "tiger-pw" not in line


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        ("persistence: [\n", "is not valid YAML at line"),
        (
            "persistence:\n  database:\n    url: ${MOFA_TEST_UNSET_VARIABLE}\n",
            "${MOFA_TEST_UNSET_VARIABLE}, which is not set",
        ),
        ("persistence:\n  database:\n    type: oracle\n", "'oracle' is unknown"),
    ],
)
def test_an_unusable_config_is_one_line(
    config_text: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOFA_DATABASE_URL", raising=False)
    monkeypatch.delenv("MOFA_TEST_UNSET_VARIABLE", raising=False)
    config = tmp_path / "agent.yml"
    config.write_text(config_text, encoding="utf-8")
    for name in COMMANDS:
        args, _code = COMMANDS[name]
        result = mofa("--config", str(config), *args)
        # Reading the configuration fails before any store is opened: exit 1 everywhere.
        assert result.exit_code == 1, (name, result.output)
        assert message in one_error_line(result)


def test_a_default_agent_yml_that_cannot_be_read_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOFA_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "agent.yml").mkdir()
    result = mofa("session", "list")
    assert result.exit_code == 1
    assert "agent.yml is a directory" in one_error_line(result)


def test_export_to_an_unwritable_place_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    asyncio.run(seed(url))
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    result = mofa("session", "export", MAIN, "-o", str(blocker / "s.json"), "-f", "json", url=url)
    assert result.exit_code == 1
    assert str(blocker) in one_error_line(result)
    assert blocker.read_text(encoding="utf-8") == "x"
    # A directory where the file should go: the rename fails, the temporary file goes.
    target = tmp_path / "taken"
    target.mkdir()
    result = mofa("session", "export", MAIN, "-o", str(target), "-f", "json", url=url)
    assert result.exit_code != 0
    assert "Traceback" not in result.stderr
    assert target.is_dir()
    assert list(target.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".taken")] == []


# -------------------------------------------------------------- delete: permissions


@pytest.fixture(params=_params(["postgres", "mysql"]))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def read_only_url(backend: str, empty_url: str) -> Iterator[str]:
    """A user that may read the (seeded) database of ``empty_url`` but not delete from it."""
    asyncio.run(seed(empty_url))
    if backend == "postgres":
        account = postgres_account("SELECT ON ALL TABLES IN SCHEMA public", url=empty_url)
    else:
        account = mysql_account(f"SELECT ON `{database_name(empty_url)}`.*")
    with account as (user, password):
        yield with_credentials(empty_url, user, password)


def test_delete_without_the_privilege_exits_2(read_only_url: str, empty_url: str) -> None:
    listed = mofa("session", "list", url=read_only_url)
    assert listed.exit_code == 0, listed.output
    assert MAIN in listed.stdout
    result = mofa("session", "delete", MAIN, "--force", url=read_only_url)
    assert result.exit_code == 2, result.output
    assert "permission denied" in one_error_line(result).lower()

    async def still_there() -> int:
        async with await open_store(empty_url) as store:
            return await store.count_messages(MAIN)

    assert asyncio.run(still_there()) == 4


# ---------------------------------------------------------------- delete: the prompt


def answer_prompt(
    url: str, answer: bytes | list[bytes], *, colour: bool = False
) -> tuple[int, str]:
    """Run ``mofa session delete MAIN`` on a pseudo-terminal and type ``answer`` at the prompt
    (a list: one answer a prompt). Without ``colour``, ``NO_COLOR`` is set."""
    env = {**os.environ, "MOFA_DATABASE_URL": url}
    env.pop("NO_COLOR", None)
    if not colour:
        env["NO_COLOR"] = "1"
    code, output, answered = on_terminal([str(MOFA), "session", "delete", MAIN], answer, env=env)
    assert answered == (1 if isinstance(answer, bytes) else len(answer)), output
    return code, output


def test_delete_asks_with_the_seeds_prompt_and_deletes_on_yes(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    asyncio.run(seed(url))
    code, output = answer_prompt(url, b"y\n")
    assert code == 0, output
    assert output == (
        f"→ Deleting session: {MAIN}\n"
        "\n"
        "Session contains 4 messages.\n"
        "This action cannot be undone.\n"
        "\n"
        "Delete session? [y/N]: y\n"
        "\n"
        "  Removing session data...\n"
        "✓ Session deleted successfully\n"
    )
    assert MAIN not in mofa("session", "list", url=url).stdout


def test_a_terminal_gets_colour_unless_no_color_is_set(tmp_path: Path) -> None:
    """Colour only on a terminal (the test above: NO_COLOR set, none; through click's runner,
    a pipe, none either)."""
    url = f"sqlite://{tmp_path / 'm.db'}"
    asyncio.run(seed(url))
    code, output = answer_prompt(url, b"y\n", colour=True)
    assert code == 0, output
    assert output.endswith("\x1b[32m✓ Session deleted successfully\x1b[0m\n")
    piped = mofa("session", "list", url=url, env={"NO_COLOR": None})
    assert "\x1b[" not in piped.stdout + piped.stderr


@pytest.mark.parametrize(
    "answer",
    [b"\n", b"n\n", b"no\n", b"\x03", b"\x04"],
    ids=["enter", "n", "no", "ctrl-c", "ctrl-d"],
)
def test_delete_defaults_to_no(tmp_path: Path, answer: bytes) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    asyncio.run(seed(url))
    code, output = answer_prompt(url, answer)
    assert code == 3, output
    assert output.endswith("Error: Cancelled; the session was not deleted.\n")
    assert "Removing session data" not in output
    assert MAIN in mofa("session", "list", url=url).stdout


def test_delete_asks_again_after_an_answer_that_is_neither_yes_nor_no(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    asyncio.run(seed(url))
    code, output = answer_prompt(url, [b"maybe\n", b"YES\n"])
    assert code == 0, output
    assert "Delete session? [y/N]: maybe\nError: invalid input\nDelete session? [y/N]: YES\n" in (
        output
    )
    assert MAIN not in mofa("session", "list", url=url).stdout


def test_ctrl_c_the_instant_the_prompt_shows_answers_no(tmp_path: Path) -> None:
    # A Ctrl-C typed as soon as the prompt is written can land before the command starts to
    # read; input() missed such a signal and waited for a line forever. Busy CPUs widen that
    # window (the command is descheduled between the write and the read), so twenty tries
    # with every CPU busy hit it.
    url = f"sqlite://{tmp_path / 'm.db'}"
    asyncio.run(seed(url))
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        for _ in range(20):
            code, output = answer_prompt(url, b"\x03")
            assert code == 3, output
            assert output.endswith("Error: Cancelled; the session was not deleted.\n"), output
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert MAIN in mofa("session", "list", url=url).stdout


# ------------------------------------------------------------------------ closed pipes


async def _long_session(url: str) -> None:
    async with await open_store(url) as store:
        await store.create_session("long")
        await store.append_messages("long", [NewMessage("user", "x" * 200)] * 5_000)


@pytest.mark.parametrize("output_format", ["json", "yaml", "table"])
def test_a_reader_that_stops_early_gets_no_error_spew(tmp_path: Path, output_format: str) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    asyncio.run(_long_session(url))
    piped = subprocess.run(
        [
            "bash",
            "-c",
            f'"$0" --database-url "$1" session show long -f {output_format} | head -1',
            str(MOFA),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0
    first_line = {"json": "{", "yaml": "session_id: long", "table": "Session: long"}
    assert piped.stdout.strip() == first_line[output_format]
    assert piped.stderr == ""


@pytest.mark.parametrize(
    ("args", "code"),
    [(["show"], 1), (["export", "-o", "x.json", "-f", "json"], 1), (["delete", "--force"], 1)],
)
def test_an_impossible_session_id_is_one_line(
    args: list[str], code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite://{tmp_path / 'm.db'}"
    asyncio.run(seed(url))
    result = mofa("session", args[0], "x" * 300, *args[1:], url=url)
    assert result.exit_code == code
    assert "255" in one_error_line(result)
    assert not (tmp_path / "x.json").exists()
