"""``mofa db`` when a database driver is not installed.

Each run is a fresh interpreter in which ``import asyncpg`` / ``import asyncmy`` fails (a
``None`` in ``sys.modules`` is what Python itself uses to block an import), then the real
``mofa`` entry point runs. Printing and saving SQL must work; ``-u`` must name the extra.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mofa.persistence import schema

DRIVERS = {"postgres": ("asyncpg", "postgres"), "mysql": ("asyncmy", "mysql")}

_WRAPPER = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
from mofa.cli import main
sys.argv = ["mofa", *sys.argv[1:]]
main()
"""


def run_without(blocked: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = _WRAPPER.format(blocked=blocked)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("db_type", ["postgres", "mysql"])
def test_schema_and_saving_work_without_the_driver(db_type: str, tmp_path: Path) -> None:
    blocked = ["asyncpg", "asyncmy"]
    printed = run_without(blocked, "db", "schema", "-t", db_type, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.endswith(schema.script(db_type))

    saved = run_without(blocked, "db", "init", "-t", db_type, "-o", "migration.sql", cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    assert "✓ Migration script saved to: migration.sql" in saved.stderr
    assert (tmp_path / "migration.sql").read_text("utf-8").endswith(schema.script(db_type))


@pytest.mark.parametrize("db_type", ["postgres", "mysql"])
def test_url_without_the_driver_names_the_extra_to_install(db_type: str, tmp_path: Path) -> None:
    module, extra = DRIVERS[db_type]
    scheme = "postgresql" if db_type == "postgres" else "mysql"
    url = f"{scheme}://user:Dr1verSecret@127.0.0.1:1/mofa"
    result = run_without([module], "db", "init", "-t", db_type, "-u", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"Error: Direct database execution requires the '{extra}' extra (the '{module}' "
        f"package is not installed); install it with: pip install 'mofa-sdk[{extra}]' "
        "(or 'mofa-sdk[db]' for every database)."
    )
    assert "Dr1verSecret" not in result.stderr + result.stdout


def test_sqlite_needs_no_driver(tmp_path: Path) -> None:
    result = run_without(
        ["asyncpg", "asyncmy"],
        "db",
        "init",
        "-t",
        "sqlite",
        "-u",
        "sqlite://./mofa.db",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "✓ Database tables initialized successfully!"
