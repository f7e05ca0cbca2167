"""``mofa db doctor``: check the store the CLI resolves, and say how to fix what is wrong.

Checks, each printed as one ``✓``/``✗`` line on stdout (a problem with its fix on the next):
the store opens at the current schema version; every index of the schema is present; SQLite
runs in WAL mode with a busy timeout and foreign keys; no orphaned rows (messages, state or
sessions whose parent is gone) and no session whose kept message count disagrees with its
messages; every stored record decodes (skipped with ``--quick``); the database file or store
directory is readable by its owner only; agent.yml holds no password. Exit 0 when healthy,
1 when a problem was found.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import click

from mofa.cli._errors import CommandError, run
from mofa.cli._progress import Progress, say
from mofa.cli._store import StoreChoice, open_existing_store, store_choice
from mofa.persistence import BaseStore, DamagedRecordError

__all__ = ["doctor"]

#: A URL with a password written out (``scheme://user:secret@``), not a ``${VAR}``.
_WRITTEN_PASSWORD = re.compile(r"://[^:/@\s'\"]*:(?!\$\{)[^@\s'\"]+@")
_PASSWORD_KEY = re.compile(r"^\s*password\s*:\s*(?!\$\{)['\"]?[^\s'\"#]", re.IGNORECASE)
_PAGE = 500


@dataclass
class Report:
    """The checks' lines, and whether any found a problem."""

    lines: list[str] = field(default_factory=list)
    problems: int = 0

    def ok(self, text: str) -> None:
        self.lines.append(f"✓ {text}")

    def problem(self, text: str, fix: str) -> None:
        self.problems += 1
        self.lines.append(f"✗ {text}")
        self.lines.append(f"  fix: {fix}")


@click.command(
    "doctor", short_help="Check the store: schema, indexes, rows, permissions; each fix."
)
@click.option("--quick", is_flag=True, help="Skip reading every record back (the slow check).")
@click.pass_context
def doctor(ctx: click.Context, quick: bool) -> None:
    """Check the store the CLI uses: schema, indexes, settings, orphaned and undecodable rows,
    file permissions, and passwords written in agent.yml. Each problem comes with its fix.

    Exit codes: 0 healthy, 1 problems found (or the store could not be opened).

    \b
    Examples:
      mofa db doctor
      mofa --database-url postgresql://user@localhost/mofa db doctor --quick
    """
    choice = store_choice(ctx)
    report = Report()
    report.ok(f"store: {choice.masked} (from {choice.source})")
    _check_config(ctx, report)
    _check_permissions(choice, report)

    async def examine() -> None:
        async with await open_existing_store(choice) as store:
            await _check_store(store, choice, report, quick)

    try:
        run(examine, url=choice.url)
    except CommandError as exc:
        report.problem(f"the store does not open: {exc.message}", _open_fix(choice))
    for line in report.lines:
        click.echo(line)
    if report.problems:
        plural = "s" if report.problems != 1 else ""
        raise CommandError(f"{report.problems} problem{plural} found; see the fixes above.")
    say("✓ No problems found")


def _open_fix(choice: StoreChoice) -> str:
    if choice.url.startswith("file:"):
        return "check the directory and its permissions (the error says which)"
    return (
        'for a database without the mofa schema or with an older one, run `mofa db init -u "URL"`; '
        "otherwise check the URL, the server and its permissions (the error says which)"
    )


async def _check_store(store: BaseStore, choice: StoreChoice, report: Report, quick: bool) -> None:
    from mofa.persistence import schema
    from mofa.persistence._health import expected_indexes

    dialect = store.backend
    if dialect in schema.DIALECTS:
        report.ok(f"schema version {schema.latest_version(dialect)} (current)")
    facts = await store.get_health()
    if facts.indexes is not None:
        missing = sorted(expected_indexes(dialect) - facts.indexes)
        for name in missing:
            report.problem(
                f"index {name} is missing (listings and reads get slow)",
                f"run its CREATE INDEX statement from `mofa db schema -t {dialect}`",
            )
        if not missing:
            report.ok(f"all {len(expected_indexes(dialect))} indexes present")
    _check_settings(dialect, facts.settings, report)
    orphan_fixes = {
        "messages": "DELETE FROM messages WHERE session_id NOT IN "
        "(SELECT session_id FROM sessions)",
        "agent_state": "DELETE FROM agent_state WHERE session_id NOT IN "
        "(SELECT session_id FROM sessions)",
        "sessions": "INSERT the missing agents, or UPDATE sessions SET agent_id = NULL for them",
    }
    for table, count in facts.orphans.items():
        if count:
            report.problem(
                f"{count} {table} rows point at a parent that is gone (written with foreign "
                "keys off)",
                orphan_fixes[table],
            )
    if facts.miscounted:
        report.problem(
            f"{facts.miscounted} sessions have a message_count that disagrees with their messages",
            "UPDATE sessions SET message_count = (SELECT COUNT(*) FROM messages WHERE "
            "messages.session_id = sessions.session_id)",
        )
    if facts.indexes is not None and not any(facts.orphans.values()) and not facts.miscounted:
        report.ok("no orphaned rows; message counts agree")
    if quick:
        report.ok("records not read back (--quick)")
        return
    await _check_records(store, report)


def _check_settings(dialect: str, settings: Mapping[str, str], report: Report) -> None:
    if dialect != "sqlite":
        return
    wanted = {"journal_mode": "wal", "foreign_keys": "1"}
    for name, value in wanted.items():
        if settings.get(name, "").lower() != value:
            report.problem(
                f"SQLite {name} is {settings.get(name)!r}, not {value!r}",
                "put the database on a local file system (WAL needs shared memory) and "
                "open it through mofa",
            )
    timeout = int(settings.get("busy_timeout", "0") or 0)
    if timeout <= 0:
        report.problem("SQLite has no busy timeout", "open the database through mofa")
    if settings.get("journal_mode", "").lower() == "wal" and timeout > 0:
        report.ok(f"SQLite: WAL, busy timeout {timeout} ms, foreign keys on")


async def _check_records(store: BaseStore, report: Report) -> None:
    """Read every session, message and state back; report the first damaged record."""
    damaged: list[str] = []
    sessions = 0
    size = _PAGE
    until: datetime | None = None
    at_boundary: set[str] = set()  # ids already read whose created_at is ``until``'s
    progress = Progress("Reading records", unit="sessions")
    while True:
        bound = None if until is None else until + timedelta(microseconds=1)
        try:
            page = await store.list_sessions(limit=size, until=bound)
        except DamagedRecordError as exc:
            damaged.append(str(exc) + " (sessions older than it were not read)")
            break
        fresh = [found for found in page if found.session_id not in at_boundary]
        for found in fresh:
            sessions += 1
            try:
                async for _message in store.iter_messages(found.session_id):
                    pass
                await store.list_states(found.session_id)
            except DamagedRecordError as exc:
                damaged.append(str(exc))
        progress.advance(len(fresh))
        if len(page) < size:
            break
        if not fresh:
            size *= 2  # a page of one instant, all read: read further past it
            continue
        oldest = page[-1].created_at
        if oldest != until:
            at_boundary = set()
        until = oldest
        at_boundary.update(found.session_id for found in page if found.created_at == oldest)
    progress.finish()
    try:
        await store.list_agents()
    except DamagedRecordError as exc:
        damaged.append(str(exc))
    for message in damaged:
        report.problem(
            f"a record does not decode: {message}",
            "correct or delete it (delete_session removes a damaged session)",
        )
    if not damaged:
        report.ok(f"every record of {sessions} sessions reads back")


def _check_permissions(choice: StoreChoice, report: Report) -> None:
    from mofa.cli.info import store_paths

    paths = store_paths(choice)
    path = paths.get("database_file") or paths.get("directory")
    if path is None or not os.path.exists(path):
        return
    exposed = list(_exposed(Path(path)))
    if exposed:
        shown = ", ".join(str(item) for item in exposed[:3])
        more = f" and {len(exposed) - 3} more" if len(exposed) > 3 else ""
        report.problem(
            f"readable by other users: {shown}{more}",
            f"chmod -R go-rwx {path}"
            + ("*" if "database_file" in paths else "")
            + " (conversations are private)",
        )
    else:
        report.ok(f"{path}: readable by its owner only")


def _exposed(path: Path) -> Iterator[Path]:
    """Files and directories at or under ``path`` (a SQLite file: with its -wal and -shm)
    that others may read or write."""
    if path.is_file():
        candidates = [path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm"))]
    else:
        candidates = [path]
        for root, directories, files in os.walk(path):
            candidates.extend(Path(root, name) for name in (*directories, *files))
    for candidate in candidates:
        try:
            mode = candidate.lstat().st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISLNK(mode) and mode & 0o077:
            yield candidate


def _check_config(ctx: click.Context, report: Report) -> None:
    from mofa.config import DEFAULT_CONFIG_NAME

    given = getattr(ctx.find_root().obj, "config_path", None)
    path = Path(given) if given else Path.cwd() / DEFAULT_CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    lines = [
        number
        for number, line in enumerate(text.splitlines(), 1)
        if _WRITTEN_PASSWORD.search(line) or _PASSWORD_KEY.search(line)
    ]
    if lines:
        where = ", ".join(f"{path}:{number}" for number in lines)
        report.problem(
            f"a database password is written in the configuration ({where})",
            "write url: ${DATABASE_URL} and set DATABASE_URL in the environment or a .env "
            "file kept out of version control",
        )
    else:
        report.ok(f"{path}: no password written in it")
