"""``mofa session import`` (and ``export`` of many sessions) on the four persistent backends:
round trips byte for byte, conflicts, several files, stdin, and hostile or damaged files,
each one error line with where, exit 1, and nothing of the session written."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mofa.persistence import open_store
from mofa.persistence.testing.conformance.transfer import fill
from mofa.persistence.transfer import export_session
from tests._cli import MOFA, mofa, one_error_line
from tests.conftest import DURABLE_BACKENDS, _params


@pytest.fixture(params=_params(DURABLE_BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def seed(url: str, *session_ids: str, tenant_id: str = "tenant-t") -> None:
    async def go() -> None:
        async with await open_store(url) as store:
            for session_id in session_ids:
                await fill(store, session_id, tenant_id=tenant_id)

    asyncio.run(go())


def exported(url: str, session_id: str, kind: str = "json") -> bytes:
    async def go() -> bytes:
        async with await open_store(url) as store:
            buffer = io.BytesIO()
            await export_session(store, session_id, buffer, format=kind)  # type: ignore[arg-type]
            return buffer.getvalue()

    return asyncio.run(go())


def session_ids(url: str) -> list[str]:
    async def go() -> list[str]:
        async with await open_store(url) as store:
            return sorted(found.session_id for found in await store.list_sessions())

    return asyncio.run(go())


def delete(url: str, *ids: str) -> None:
    for session_id in ids:
        assert mofa("session", "delete", session_id, "--force", url=url).exit_code == 0


# -------------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", ["json", "yaml", "jsonl"])
def test_export_then_import_gives_back_the_same_file(
    empty_url: str, tmp_path: Path, kind: str
) -> None:
    seed(empty_url, "awkward")
    first = tmp_path / f"first.{kind}"
    assert (
        mofa("session", "export", "awkward", "-o", str(first), "-f", kind, url=empty_url).exit_code
        == 0
    )
    delete(empty_url, "awkward")
    result = mofa("session", "import", str(first), url=empty_url)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == (
        "→ Importing 1 file\n  ✓ awkward: imported, 5 messages\n✓ 1 session imported (5 messages)\n"
    )
    second = tmp_path / f"second.{kind}"
    assert (
        mofa("session", "export", "awkward", "-o", str(second), "-f", kind, url=empty_url).exit_code
        == 0
    )
    assert second.read_bytes() == first.read_bytes()


def test_a_tenant_backup_and_restore_in_two_commands(empty_url: str, tmp_path: Path) -> None:
    seed(empty_url, "acme-1", "acme-2", tenant_id="acme")
    seed(empty_url, "globex-1", tenant_id="globex")
    backup = tmp_path / "acme.jsonl"
    before = {sid: exported(empty_url, sid) for sid in ("acme-1", "acme-2")}
    result = mofa(
        "session", "export", "--tenant", "acme", "-o", str(backup), "-f", "jsonl", url=empty_url
    )
    assert result.exit_code == 0, result.output
    assert "  ✓ Exported 2 sessions, 10 messages\n" in result.stderr
    delete(empty_url, "acme-1", "acme-2")
    restored = mofa("session", "import", str(backup), url=empty_url)
    assert restored.exit_code == 0, restored.output
    assert session_ids(empty_url) == ["acme-1", "acme-2", "globex-1"]
    assert {sid: exported(empty_url, sid) for sid in before} == before
    # skip: running it again changes nothing
    again = mofa("session", "import", str(backup), "--on-conflict", "skip", url=empty_url)
    assert again.exit_code == 0, again.output
    assert "2 skipped" in again.stderr
    assert {sid: exported(empty_url, sid) for sid in before} == before


def test_a_conflict_fails_unless_skipped_or_replaced(empty_url: str, tmp_path: Path) -> None:
    seed(empty_url, "awkward")
    file = tmp_path / "a.json"
    file.write_bytes(exported(empty_url, "awkward"))
    result = mofa("session", "import", str(file), url=empty_url)
    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert one_error_line(result) == (
        "Error: 0 sessions imported (0 messages); 1 failed, and nothing of it was written."
    )
    replaced = mofa("session", "import", str(file), "--on-conflict", "replace", url=empty_url)
    assert replaced.exit_code == 0, replaced.output
    assert "  ✓ awkward: replaced, 5 messages\n" in replaced.stderr
    assert exported(empty_url, "awkward") == file.read_bytes()


def test_session_id_imports_a_copy_and_stdin_is_read(empty_url: str, tmp_path: Path) -> None:
    seed(empty_url, "awkward")
    data = exported(empty_url, "awkward", "jsonl")
    result = mofa(
        "session", "import", "-", "--session-id", "copy", url=empty_url, input=data.decode()
    )
    assert result.exit_code == 0, result.output
    assert session_ids(empty_url) == ["awkward", "copy"]
    copy = json.loads(exported(empty_url, "copy"))
    original = json.loads(exported(empty_url, "awkward"))
    assert copy["session_id"] == "copy"
    assert {**copy, "session_id": "awkward"} == original
    two = mofa("session", "import", "a", "b", "--session-id", "x", url=empty_url)
    assert two.exit_code == 2
    assert "--session-id names one session" in two.stderr


def test_several_files_each_succeed_or_fail_on_their_own(empty_url: str, tmp_path: Path) -> None:
    seed(empty_url, "good", "bad")
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(exported(empty_url, "good"))
    bad.write_bytes(exported(empty_url, "bad").replace(b'"closed"', b'"open"', 0) + b"trailing")
    delete(empty_url, "good", "bad")
    result = mofa(
        "session", "import", str(bad), str(good), str(tmp_path / "missing.json"), url=empty_url
    )
    assert result.exit_code == 1
    assert f"  ✗ {bad}:" in result.stderr
    assert "  ✓ good: imported, 5 messages\n" in result.stderr
    assert f"  ✗ {tmp_path / 'missing.json'}: No such file or directory\n" in result.stderr
    assert one_error_line(result).startswith("Error: 1 session imported (5 messages); 2 failed")
    assert session_ids(empty_url) == ["good"]


def test_the_installed_command_pipes_an_export_into_an_import(
    empty_url: str, tmp_path: Path
) -> None:
    seed(empty_url, "awkward")
    export = subprocess.run(
        [
            str(MOFA),
            "--database-url",
            empty_url,
            "session",
            "export",
            "awkward",
            "-o",
            "-",
            "-f",
            "jsonl",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    imported = subprocess.run(
        [str(MOFA), "--database-url", empty_url, "session", "import", "-", "--session-id", "piped"],
        input=export.stdout,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    assert session_ids(empty_url) == ["awkward", "piped"]


# -------------------------------------------------------------------- hostile files


def _json(edit: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        document = json.loads(data)
        edit(document)
        return json.dumps(document).encode()

    return change


def _set(path: tuple[object, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.pop(key)


HOSTILE: list[tuple[str, str, Callable[[bytes], bytes], str]] = [
    ("truncated-json", "json", lambda d: d[: len(d) // 2], r"bad\.json:\d+:\d+: not valid JSON"),
    (
        "truncated-jsonl-mid-line",
        "jsonl",
        lambda d: d[:-40],
        r"bad\.jsonl:8: the line is cut short",
    ),
    (
        "truncated-jsonl-at-a-line",
        "jsonl",
        lambda d: b"\n".join(d.split(b"\n")[:-3]) + b"\n",
        r"bad\.jsonl: the end of session 'victim': the file holds 3 of its messages, "
        r"its header says 5",
    ),
    (
        "unknown-version",
        "json",
        _json(_set(("format",), "mofa-session/2")),
        r"\$: format 'mofa-session/2' is not supported",
    ),
    (
        "newer-minor",
        "json",
        _json(_set(("format",), "mofa-session/1.7")),
        r"upgrade mofa-sdk to import it",
    ),
    (
        "no-format",
        "json",
        _json(_delete("format")),
        r'not a mofa-session/1 export: it has no "format" key',
    ),
    (
        "integrity",
        "json",
        lambda d: d.replace(b"You are terse.", b"You are TERSE."),
        r"the integrity check failed",
    ),
    ("missing-key", "json", _json(_delete("status")), r"\$: the required key 'status' is missing"),
    (
        "wrong-type",
        "json",
        _json(_set(("messages", 1, "seq"), "2")),
        r"\$\.messages\[1\]: seq must be an integer, not a string",
    ),
    (
        "unknown-role",
        "json",
        _json(_set(("messages", 2, "role"), "boss")),
        r"\$\.messages\[2\]: unknown role 'boss'",
    ),
    (
        "nul",
        "json",
        _json(_set(("messages", 0, "content"), "a\x00b")),
        r"\$\.messages\[0\]: The content of message 1 contains a NUL",
    ),
    (
        "surrogate",
        "jsonl",
        lambda d: d.replace(b"You are terse.", b"\\ud800"),
        r"bad\.jsonl:\d+: .*lone surrogate|bad\.jsonl:\d+: not valid JSON",
    ),
    (
        "seq-backwards",
        "json",
        _json(_set(("messages", 3, "seq"), 2)),
        r"\$\.messages\[3\]: message seq 2 follows message seq 3",
    ),
    (
        "seq-twice",
        "json",
        _json(_set(("messages", 3, "seq"), 3)),
        r"\$\.messages\[3\]: message seq 3 appears twice",
    ),
    (
        "not-utf8",
        "jsonl",
        lambda d: d.replace(b"terse", b"ters\xff"),
        r"bad\.jsonl:\d+: not UTF-8 text \(byte 0xff\)",
    ),
    (
        "yaml-alias",
        "yaml",
        lambda d: d.replace(b"status: closed", b"status: &a closed\nextra: *a"),
        r"a YAML alias; an export has none",
    ),
    ("not-an-export", "json", lambda d: b'{"hello": "world"}', r'it has no "format" key'),
]


@pytest.mark.parametrize(
    ("kind", "damage", "error"),
    [pytest.param(kind, damage, error, id=name) for name, kind, damage, error in HOSTILE],
)
def test_a_damaged_file_writes_nothing_and_says_where(
    empty_url: str, tmp_path: Path, kind: str, damage: Callable[[bytes], bytes], error: str
) -> None:
    seed(empty_url, "victim", "bystander")
    data = exported(empty_url, "victim", kind)
    before = exported(empty_url, "bystander")
    delete(empty_url, "victim")
    bad = tmp_path / f"bad.{kind}"
    bad.write_bytes(damage(data))
    result = mofa("session", "import", str(bad), url=empty_url)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    failure = [line for line in result.stderr.splitlines() if line.startswith("  ✗ ")]
    assert len(failure) == 1, result.stderr
    assert re.search(error, failure[0]), failure[0]
    assert one_error_line(result).startswith("Error: 0 sessions imported")
    assert session_ids(empty_url) == ["bystander"]
    assert exported(empty_url, "bystander") == before


@pytest.mark.parametrize("backend", _params(["postgres", "mysql"]), indirect=True)
def test_secrets_in_the_url_are_never_printed(backend: str, empty_url: str, tmp_path: Path) -> None:
    scheme, rest = empty_url.split("://", 1)
    user_host = rest.split("@", 1)[-1]
    user = "postgres" if backend == "postgres" else "root"
    secret_url = f"{scheme}://{user}:s3cret-pw@{user_host}"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    for args in (
        ["session", "import", str(bad)],
        ["session", "export", "nope", "-o", "-", "-f", "json"],
    ):
        result = mofa(*args, url=secret_url)
        assert result.exit_code == 1
        assert "s3cret-pw" not in result.output
