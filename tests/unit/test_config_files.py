"""Configuration files that never crash and never guess: ``.env`` (python-dotenv, precedence,
encoding, file:line errors) and an ``agent.yml`` too deep or too large once its aliases are
expanded — one sentence, quickly, from the library and from the ``mofa`` process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mofa.agent import LLMAgentBuilder
from mofa.config import ConfigError, environment, load_config, read_dotenv
from mofa.persistence.locations import directory_url
from tests._cli import run_mofa

#: How long refusing a hostile file may take (the issue measured 47 s for 410 bytes).
QUICKLY = 1.0


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No inherited mofa or OpenAI settings; the working directory is tmp_path/work."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "MOFA_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def _deep_lists(levels: int) -> str:
    return "agent:\n  id: " + "[" * levels + "]" * levels + "\n"


def _deep_mappings(levels: int) -> str:
    return "llm: " + "{a: " * levels + "1" + "}" * levels + "\n"


def _billion_laughs() -> str:
    """Nine lines, each value nine aliases of the line before: 9^9 values in ~400 bytes."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


HOSTILE = [
    pytest.param(
        _deep_lists(20_000), "nests more than 64 levels deep (at line 2)", id="deep-lists"
    ),
    pytest.param(
        _deep_mappings(20_000), "nests more than 64 levels deep (at line 1)", id="deep-maps"
    ),
    pytest.param(
        _billion_laughs(),
        "expands to more than 10,000 values through its aliases",
        id="billion-laughs",
    ),
    pytest.param(
        "agent: &loop\n  id: x\n  more: *loop\n",
        "holds a value that contains itself through an alias (at line 1)",
        id="self-reference",
    ),
]


@pytest.mark.parametrize(("text", "fragment"), HOSTILE)
def test_a_hostile_agent_yml_is_one_sentence_within_a_second(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "agent.yml"
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert time.monotonic() - started < QUICKLY
    message = str(caught.value)
    assert message.startswith(f"{path} {fragment}")
    assert message.endswith(".")
    assert "\n" not in message


@pytest.mark.parametrize(("text", "fragment"), HOSTILE)
def test_the_cli_refuses_a_hostile_agent_yml_in_one_line(
    clean_environment: Path, text: str, fragment: str
) -> None:
    (clean_environment / "agent.yml").write_text(text, encoding="utf-8")
    finished = run_mofa("session", "list", cwd=clean_environment, timeout=30)
    assert finished.returncode == 1
    assert "Traceback" not in finished.stderr
    assert finished.stderr.splitlines()[-1].startswith(
        f"Error: {clean_environment / 'agent.yml'} {fragment}"
    )


def test_aliases_within_the_budget_still_work(tmp_path: Path) -> None:
    path = tmp_path / "agent.yml"
    path.write_text(
        "defaults: &defaults {temperature: 0.5, max_tokens: 64}\n"
        "llm:\n  <<: *defaults\n  model: m\n",
        encoding="utf-8",
    )
    assert load_config(path, environ={}).llm == {"temperature": 0.5, "max_tokens": 64, "model": "m"}


# ----------------------------------------------------------------------------------- .env


def test_a_dotenv_that_is_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"A=1\nDATABASE_URL=sqlite:///caf\xe9.db\n")
    (tmp_path / "agent.yml").write_text("agent:\n  id: a\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "agent.yml", environ={})
    assert str(caught.value) == f"{tmp_path / '.env'}:2 is not UTF-8 text; save the file as UTF-8."


def test_the_cli_refuses_a_dotenv_that_is_not_utf8_in_one_line(clean_environment: Path) -> None:
    (clean_environment / ".env").write_bytes(b"\xff\xfeM\x00O\x00")  # UTF-16
    started = time.monotonic()
    finished = run_mofa("session", "list", cwd=clean_environment, timeout=30)
    assert time.monotonic() - started < 10 * QUICKLY  # a whole process, on a busy machine
    assert finished.returncode == 1
    assert finished.stderr.splitlines() == [
        f"Error: {clean_environment / '.env'}:1 is not UTF-8 text; save the file as UTF-8."
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('A=1\nB="never closed\nC=3\n', 2),
        ("A=1\n\n# comment\nnot a line at all\n", 4),
        ("A=1\nBAD-NAME=2\n", 2),
    ],
)
def test_a_malformed_dotenv_line_is_an_error_naming_file_and_line(
    tmp_path: Path, text: str, line: int
) -> None:
    (tmp_path / ".env").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{tmp_path / '.env'}:{line} "):
        read_dotenv(tmp_path / ".env")


def test_a_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"\xef\xbb\xbfOPENAI_API_KEY=sk-bom\n")
    assert read_dotenv(tmp_path / ".env") == {"OPENAI_API_KEY": "sk-bom"}


def test_precedence_environment_then_cwd_dotenv_then_the_one_beside_agent_yml(
    clean_environment: Path, tmp_path: Path
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "agent.yml").write_text(
        "persistence:\n  database:\n    url: ${DATABASE_URL}\n", encoding="utf-8"
    )
    (config_dir / ".env").write_text(
        "DATABASE_URL=sqlite:///beside.db\nMOFA_MODEL=beside\nOPENAI_MODEL=beside\n",
        encoding="utf-8",
    )
    (clean_environment / ".env").write_text(
        "DATABASE_URL=sqlite:///cwd.db\nMOFA_MODEL=cwd\n", encoding="utf-8"
    )
    config = load_config(config_dir / "agent.yml")
    assert config.persistence.database_url() == "sqlite:///cwd.db"
    env = environment(config_dir / "agent.yml", {"MOFA_MODEL": "process"}, settings_only=True)
    assert (env["MOFA_MODEL"], env["OPENAI_MODEL"]) == ("process", "beside")
    assert env["DATABASE_URL"] == "sqlite:///cwd.db"


def test_a_dotenv_fills_only_mofa_settings_and_never_os_environ(clean_environment: Path) -> None:
    (clean_environment / ".env").write_text(
        "OPENAI_BASE_URL=http://127.0.0.1:9/v1\nOPENAI_MODEL=from-dotenv\nPGPASSWORD=x\n",
        encoding="utf-8",
    )
    before = dict(os.environ)
    provider, _ = LLMAgentBuilder.from_env()._make_provider()
    assert provider.model == "from-dotenv"
    assert "PGPASSWORD" not in environment(settings_only=True)
    assert "PGPASSWORD" in environment()  # for ${PGPASSWORD} in agent.yml
    assert dict(os.environ) == before


def test_the_cli_takes_its_store_from_a_dotenv(clean_environment: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (clean_environment / ".env").write_text(
        f"MOFA_DATABASE_URL={directory_url(data)}\n", encoding="utf-8"
    )
    finished = run_mofa(
        "session", "list", "--output-format", "json", cwd=clean_environment, timeout=60
    )
    # The store the .env names does not exist: the error names it, so the .env was read.
    assert finished.returncode == 1
    assert f"There is no mofa file store in {data}" in finished.stderr
    assert json.dumps([]) not in finished.stdout
