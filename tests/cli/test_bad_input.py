"""Bad input to the commands and options of issue 24: one sentence, a non-zero exit, no
traceback and no secret — in a real process, as a user meets them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mofa.persistence import open_store
from tests._cli import run_mofa

SECRET = "s3cr3t-pw"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite://{tmp_path / 'm.db'}"

    async def make() -> None:
        async with await open_store(url) as store:
            await store.create_session("s1")

    asyncio.run(make())
    return url


CASES = [
    (["--database-url", "nonsense", "info"], 1, "has no scheme"),
    (["--database-url", "nonsense", "db", "doctor"], 1, "1 problem found"),
    (["--database-url", f"postgresql://u:{SECRET}@127.0.0.1:1/x", "info"], 1, "Failed to"),
    (["--database-url", f"mysql://u:{SECRET}@h:99999/x", "session", "list"], 1, "malformed"),
    (["--database-url", f"postgresql://u:{SECRET}@h/db", "db", "init", "-t", "mysql"], 2, "-t"),
    (["db", "init"], 2, "Missing option '-t'"),
    (["session", "list", "--since", "2024-13-45"], 2, "neither a duration"),
    (["session", "list", "--columns", "secret"], 2, "no column 'secret'"),
    (["session", "list", "--offset", "x"], 2, "--offset must be a whole number"),
    (["session", "show", "s1", "--head", "1", "--tail", "1"], 2, "cannot be combined"),
    (["session", "show", "nope", "--tail", "3"], 1, "Session not found: nope"),
    (["session", "delete", "nope", "also-nope", "--force"], 1, "Deleted 0 of 2 sessions"),
    (["session", "prune", "--yes"], 2, "Say which sessions to prune"),
    (["session", "prune", "--keep-last", "-3"], 2, "--keep-last must be a whole number"),
    (["session", "prune", "--older-than", "soon"], 2, "neither a duration"),
    (["info", "--format", "csv"], 2, "is not one of 'table', 'json', 'yaml'"),
]


@pytest.mark.parametrize(("args", "code", "says"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_clear_sentence(
    store_url: str, args: list[str], code: int, says: str
) -> None:
    env = {"PATH": "/usr/bin:/bin", "MOFA_DATABASE_URL": store_url, "NO_COLOR": "1"}
    result = run_mofa(*args, env=env)
    assert result.returncode == code, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ")
    assert says in last
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr
