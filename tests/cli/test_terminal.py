"""What the terminal sees: cell widths as wcwidth measures them, the progress line, colour,
and the pager (on a pseudo-terminal; never in a pipe)."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest
import wcwidth

from mofa.cli._progress import Progress, colour_enabled
from mofa.cli._render import box_table, display_width, truncate
from mofa.persistence import NewMessage, open_store
from tests._cli import MOFA, mofa
from tests.cli.test_session import on_terminal

#: Emoji with skin tones, VS16 and keycaps, flags, joiner sequences, CJK, combining marks.
SAMPLES = [
    "👍🏽",
    "❤️",
    "❤",
    "1️⃣",
    "#️⃣",
    "©️",
    "™️",
    "↔️",
    "▶️",
    "☺️",
    "🇫🇷",
    "🇺🇸🇫🇷",
    "👩‍👩‍👧",
    "🧑🏽‍💻",
    "😀",
    "👋🏻 hi",
    "中文",
    "日本語テキスト",
    "한국어",
    "ｆｕｌｌ",
    "é",
    "e\u0301",
    "a\u200bb",
    "x❤️y👍🏽z1️⃣",
    "plain ascii",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_cells_are_measured_as_wcwidth_measures_them(text: str) -> None:
    assert display_width(text) == wcwidth.width(text)


def test_rows_with_emoji_line_up() -> None:
    table = box_table(["id", "note"], [["a", "👍🏽"], ["b", "❤️"], ["c", "1️⃣"], ["d", "ok"]])
    assert len({wcwidth.width(line) for line in table.splitlines()}) == 1


def test_truncation_counts_emoji_as_two_columns() -> None:
    cut = truncate("❤️" * 10, 7)
    assert wcwidth.width(cut) <= 7
    assert cut.endswith("…")


# ---------------------------------------------------------------------------- progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_pipe_is_plain_lines() -> None:
    stream = io.StringIO()
    with Progress("Deleting", total=300, unit="sessions", stream=stream) as progress:
        for _ in range(3):
            progress.advance(100)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("Deleting: 100/300 sessions (33%)")
    assert lines[-1].startswith("Deleting: 300/300 sessions (100%)")
    assert "\r" not in stream.getvalue()
    assert "\x1b" not in stream.getvalue()


def test_progress_on_a_terminal_redraws_one_line() -> None:
    stream = _Terminal()
    with Progress("Copying", total=4, unit="sessions", stream=stream) as progress:
        progress.advance(1)
    text = stream.getvalue()
    assert text.startswith("\r\x1b[2K[######------------------] Copying: 1/4 sessions (25%)")
    assert text.endswith("\n")
    assert text.count("\n") == 1


def test_progress_without_a_total_counts() -> None:
    stream = io.StringIO()
    progress = Progress("Reading", stream=stream)
    progress.advance(7)
    progress.finish()
    progress.finish()
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[0]]
    assert stream.getvalue().startswith("Reading: 7 items")


def test_colour_needs_a_terminal_and_no_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert colour_enabled(_Terminal())
    assert not colour_enabled(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_enabled(_Terminal())


# ------------------------------------------------------------------------------- pager


def _long_session(url: str, count: int) -> None:
    async def fill() -> None:
        async with await open_store(url) as store:
            await store.create_session("long")
            await store.append_messages(
                "long", [NewMessage("user", f"message {n}") for n in range(count)]
            )

    asyncio.run(fill())


def _pager_script(tmp_path: Path) -> Path:
    """A pager that records what it was given (as less would show it) and says so."""
    script = tmp_path / "pager.sh"
    script.write_text(f"#!/bin/sh\ncat > {tmp_path / 'paged.txt'}\necho PAGED\n")
    script.chmod(0o755)
    return script


def test_a_long_table_on_a_terminal_goes_through_the_pager(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    _long_session(url, 300)
    env = {**os.environ, "MOFA_DATABASE_URL": url, "MOFA_PAGER": str(_pager_script(tmp_path))}
    code, output, _ = on_terminal([str(MOFA), "session", "show", "long"], [], env=env)
    assert code == 0, output
    assert output.strip() == "PAGED"
    paged = (tmp_path / "paged.txt").read_text()
    assert "│ message 299 " in paged
    assert paged.count("\n│ ") == 301


def test_a_short_table_and_no_pager_print_straight(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    _long_session(url, 300)
    env = {**os.environ, "MOFA_DATABASE_URL": url, "MOFA_PAGER": str(_pager_script(tmp_path))}
    code, output, _ = on_terminal([str(MOFA), "session", "show", "long", "--no-pager"], [], env=env)
    assert code == 0
    assert "│ message 299 " in output
    code, output, _ = on_terminal(
        [str(MOFA), "session", "show", "long", "--tail", "3"], [], env=env
    )
    assert code == 0
    assert "PAGED" not in output
    assert not (tmp_path / "paged.txt").exists()


def test_the_pager_measures_the_terminal(tmp_path: Path) -> None:
    """A table that fits the terminal (45 lines on 60 rows) prints straight; on 20 rows the
    same table is paged. $LINES is unset, as bash leaves it for the programs it starts."""
    url = f"sqlite://{tmp_path / 'm.db'}"
    _long_session(url, 30)
    env = {**os.environ, "MOFA_DATABASE_URL": url, "MOFA_PAGER": str(_pager_script(tmp_path))}
    env.pop("LINES", None)
    command = [str(MOFA), "session", "show", "long"]
    code, output, _ = on_terminal(command, [], env=env, size=(60, 120))
    assert code == 0, output
    assert "│ message 29 " in output
    assert "PAGED" not in output
    code, output, _ = on_terminal(command, [], env=env, size=(20, 120))
    assert code == 0, output
    assert output.strip() == "PAGED"


def test_piped_output_never_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    _long_session(url, 300)
    monkeypatch.setenv("MOFA_PAGER", str(_pager_script(tmp_path)))
    result = mofa("session", "show", "long", url=url)
    assert result.exit_code == 0
    assert "│ message 299 " in result.stdout
    assert not (tmp_path / "paged.txt").exists()
