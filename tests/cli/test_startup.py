"""Start-up: what ``mofa --version``, ``mofa --help`` and ``mofa session list`` import.

Not timed (a shared machine's timings are noise): the modules each one loads, read from
``sys.modules`` in a real process as the command exits. ``--version`` and ``--help`` load
click and the root group alone; ``session list`` on SQLite loads no other backend, no
driver, no YAML, no configuration loader and no other command. The times are in
benchmarks/RESULTS.md (``python -m benchmarks.startup``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mofa.persistence import open_store

#: Runs ``mofa ARGS`` and writes the names of the loaded modules to the file named by
#: $MODULES_OUT when the process exits (after click's own sys.exit).
_PROBE = """
import atexit, json, os, sys
def _dump():
    with open(os.environ["MODULES_OUT"], "w") as out:
        json.dump(sorted(sys.modules), out)
atexit.register(_dump)
from mofa.cli import main
sys.argv = ["mofa", *sys.argv[1:]]
main()
"""

#: Never needed to print the version or the list of commands.
HEAVY = (
    "asyncio",
    "ssl",
    "yaml",
    "sqlite3",
    "asyncpg",
    "asyncmy",
    "httpx",
    "dotenv",
    "orjson",
    "logging",
    "pathlib",
    "mofa.config",
    "mofa.agent",
    "mofa.persistence",
    "mofa.cli.db",
    "mofa.cli.info",
    "mofa.cli.session",
)


def loaded_modules(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    out = tmp_path / "modules.json"
    environment = {**os.environ, **(env or {}), "MODULES_OUT": str(out)}
    environment.pop("MOFA_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(out.read_text()))


def _under(modules: set[str], name: str) -> bool:
    return any(module == name or module.startswith(name + ".") for module in modules)


@pytest.mark.parametrize("option", ["--version", "--help"])
def test_version_and_help_import_click_and_the_root_group_only(tmp_path: Path, option: str) -> None:
    modules = loaded_modules(tmp_path, option)
    assert {name for name in HEAVY if _under(modules, name)} == set()
    assert {module for module in modules if module.startswith("mofa")} == {
        "mofa",
        "mofa.cli",
        "mofa.cli._errors",
        "mofa.cli._lazy",
        "mofa.cli._main",
    }


def test_the_probe_can_fail(tmp_path: Path) -> None:
    """The check above sees what a command loads: `db schema` loads the schema package."""
    modules = loaded_modules(tmp_path, "db", "schema", "-t", "sqlite")
    assert "mofa.persistence.schema" in modules
    assert "mofa.cli.db" in modules


def test_session_list_on_sqlite_loads_that_backend_alone(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"

    async def make() -> None:
        async with await open_store(url) as store:
            await store.create_session("s1")

    asyncio.run(make())
    modules = loaded_modules(tmp_path, "--database-url", url, "session", "list", "--limit", "10")
    assert "mofa.persistence.backends.sqlite" in modules
    unwanted = (
        "yaml",
        "asyncpg",
        "asyncmy",
        "httpx",
        "dotenv",
        "mofa.config",
        "mofa.agent",
        "mofa.persistence.backends.postgres",
        "mofa.persistence.backends.mysql",
        "mofa.persistence.backends.files",
        "mofa.cli._session_delete",
        "mofa.cli._session_prune",
        "mofa.cli.db",
        "mofa.cli.info",
    )
    assert {name for name in unwanted if _under(modules, name)} == set()
