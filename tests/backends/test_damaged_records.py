"""A stored value the store cannot read back (edited by hand, or by another program) makes
the call that reads it raise one DamagedRecordError naming the record and the field — never a
raw ValueError, KeyError or OverflowError — and leaves every other record readable.

Each backend is damaged where a bad value can be stored at all: SQLite's text, the file
store's JSON, PostgreSQL's TIMESTAMPTZ beyond year 9999 or before year 1 and JSONB that is no
object, MariaDB's zero dates (which the driver reads as no value) and JSON numbers out of range.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mofa.persistence import BaseStore, DamagedRecordError, NewMessage, PersistenceError, open_store
from tests.servers import server_rows

T0 = datetime(2024, 2, 28, 10, 30, tzinfo=UTC)

#: Per damage: per backend, the statement that stores the bad value (files: see _damage_files)
#: and the field the error names. "bad" is the damaged session; "good" is left alone.
SQL: dict[str, dict[str, tuple[str, str]]] = {
    "session-time": {
        "sqlite": (
            "UPDATE sessions SET expires_at = 'garbage' WHERE session_id = 'bad'",
            "expires_at",
        ),
        "postgres": (
            "UPDATE sessions SET expires_at = '10000-01-01 00:00:00+00' WHERE session_id = 'bad'",
            "expires_at",
        ),
        # A zero date in expires_at reads as NULL (asyncmy gives None): not damage one can see.
        "mysql": (
            "UPDATE sessions SET created_at = '0000-00-00 00:00:00' WHERE session_id = 'bad'",
            "created_at",
        ),
    },
    "session-metadata": {
        "sqlite": ("UPDATE sessions SET metadata = '[1]' WHERE session_id = 'bad'", "metadata"),
        "postgres": ("UPDATE sessions SET metadata = '[1]' WHERE session_id = 'bad'", "metadata"),
        "mysql": (
            "UPDATE sessions SET metadata = '{\"n\": 1e400}' WHERE session_id = 'bad'",
            "metadata",
        ),
    },
    "message-time": {
        "sqlite": (
            "UPDATE messages SET timestamp = 'garbage' WHERE session_id = 'bad' AND seq = 2",
            "timestamp",
        ),
        "postgres": (
            "UPDATE messages SET timestamp = '0001-01-01 00:00:00+00 BC' "
            "WHERE session_id = 'bad' AND seq = 2",
            "timestamp",
        ),
        "mysql": (
            "UPDATE messages SET timestamp = '0000-00-00 00:00:00' "
            "WHERE session_id = 'bad' AND seq = 2",
            "timestamp",
        ),
    },
    "message-role": {
        name: ("UPDATE messages SET role = 'robot' WHERE session_id = 'bad' AND seq = 2", "role")
        for name in ("sqlite", "postgres", "mysql")
    },
    "state-time": {
        "sqlite": (
            "UPDATE agent_state SET created_at = 'garbage' WHERE session_id = 'bad'",
            "created_at",
        ),
        "postgres": (
            "UPDATE agent_state SET created_at = '20000-01-01 00:00:00+00' "
            "WHERE session_id = 'bad'",
            "created_at",
        ),
        "mysql": (
            "UPDATE agent_state SET created_at = '0000-00-00 00:00:00' WHERE session_id = 'bad'",
            "created_at",
        ),
    },
    "agent-time": {
        "sqlite": ("UPDATE agents SET started_at = 'garbage'", "started_at"),
        "postgres": ("UPDATE agents SET started_at = '10000-01-01 00:00:00+00'", "started_at"),
        "mysql": ("UPDATE agents SET started_at = '0000-00-00 00:00:00'", "started_at"),
    },
}
#: What the file store's damage of each kind names.
FILE_FIELDS = {
    "session-time": "expires_at",
    "session-metadata": "metadata",
    "message-time": "timestamp",
    "message-role": "role",
    "state-time": "created_at",
    "agent-time": "started_at",
}

Call = Callable[[BaseStore], Awaitable[object]]
#: Per damage: the calls that read the damaged record, and the record they must name.
READS: dict[str, tuple[list[Call], str]] = {
    "session-time": (
        [lambda s: s.list_sessions(), lambda s: s.get_session("bad")],
        "session 'bad'",
    ),
    "session-metadata": (
        [lambda s: s.list_sessions(agent_id="agent-1"), lambda s: s.get_session("bad")],
        "session 'bad'",
    ),
    "message-time": (
        [lambda s: s.list_messages("bad"), lambda s: s.list_recent_messages("bad", limit=5)],
        "message 2 of session 'bad'",
    ),
    "message-role": (
        [lambda s: s.list_messages("bad", after_seq=1), lambda s: s.list_messages("bad")],
        "message 2 of session 'bad'",
    ),
    "state-time": (
        [lambda s: s.get_state("bad"), lambda s: s.list_states("bad")],
        "state version 1 of session 'bad'",
    ),
    "agent-time": (
        [lambda s: s.get_agent("agent-1"), lambda s: s.list_agents()],
        "agent 'agent-1'",
    ),
}


async def seed_two_sessions(url: str) -> None:
    """Sessions 'good' and 'bad' of agent 'agent-1', each with 3 messages and a state."""
    async with await open_store(url) as store:
        for session_id in ("good", "bad"):
            await store.create_session(session_id, agent_id="agent-1", expires_at=T0)
            await store.append_messages(
                session_id, [NewMessage("user", f"m{n}", timestamp=T0) for n in (1, 2, 3)]
            )
            await store.save_state(session_id, {"step": 1})


def _replace_in_line(path: Path, line_start: str, pattern: str, new: str) -> None:
    """Rewrite one line of a log, keeping its length (the summary stays valid)."""
    lines = path.read_text().splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.startswith(line_start):
            changed = re.sub(pattern, new, line, count=1)
            assert len(changed) == len(line)
            assert changed != line
            lines[index] = changed
    path.write_text("".join(lines))


def _damage_files(url: str, damage: str) -> None:
    data = Path(urlsplit(url).path)
    session = data / "sessions" / "agent-1"
    header_path = session / "bad.json"
    if damage.startswith("session"):
        header = json.loads(header_path.read_text())
        if damage == "session-time":
            header["expires_at"] = "garbage"
        else:
            header["metadata"] = [1]
        header_path.write_text(json.dumps(header) + "\n")
    elif damage == "message-time":
        _replace_in_line(
            session / "bad.messages.jsonl", '{"seq":2,', r'"ts":"[^"]*"', '"ts":"' + "x" * 26 + '"'
        )
    elif damage == "message-role":
        _replace_in_line(
            session / "bad.messages.jsonl", '{"seq":2,', r'"role":"user"', '"role":"robt"'
        )
    elif damage == "state-time":
        _replace_in_line(
            session / "bad.states.jsonl",
            '{"version":1,',
            r'"at":"[^"]*"',
            '"at":"' + "x" * 26 + '"',
        )
    else:
        agent_path = data / "agents" / "agent-1.json"
        agent = json.loads(agent_path.read_text())
        agent["started_at"] = "garbage"
        agent_path.write_text(json.dumps(agent) + "\n")


async def store_bad_value(backend: str, url: str, damage: str) -> str:
    """Store the bad value of ``damage`` (a key of READS) as a hand edit would; return the
    field the error must name."""
    if backend == "files":
        _damage_files(url, damage)
        return FILE_FIELDS[damage]
    statement, field = SQL[damage][backend]
    if backend == "sqlite":
        with sqlite3.connect(urlsplit(url).path) as connection:
            connection.execute(statement)
        connection.close()
    else:
        await server_rows(backend, url, statement)
    return field


@pytest.mark.parametrize("damage", list(READS))
async def test_an_unreadable_stored_value_is_one_error_naming_record_and_field(
    durable_backend: str, durable_url: str, damage: str
) -> None:
    await seed_two_sessions(durable_url)
    field = await store_bad_value(durable_backend, durable_url, damage)
    calls, record = READS[damage]
    async with await open_store(durable_url) as store:
        for call in calls:
            with pytest.raises(DamagedRecordError) as caught:
                await call(store)
            error = caught.value
            assert error.record == record
            assert error.field == field
            assert error.session_id == (None if damage == "agent-time" else "bad")
            message = str(error)
            assert message.startswith(f"The stored {record} has an unreadable {field} (")
            assert message.count(". ") == 0
            assert message.endswith("backup.")
        # Nothing else is affected: the other session reads whole.
        good = await store.get_session("good")
        assert good is not None
        assert good.expires_at == T0
        assert [m.content for m in await store.list_messages("good")] == ["m1", "m2", "m3"]
        state = await store.get_state("good")
        assert state is not None
        assert state.state == {"step": 1}
        # And the damaged session can still be deleted.
        assert await store.delete_session("bad")
        if damage != "agent-time":
            assert [s.session_id for s in await store.list_sessions()] == ["good"]


def test_the_error_is_a_persistence_error_that_quotes_a_short_value() -> None:
    error = DamagedRecordError("session 'x'", "metadata", "{" + "a" * 500 + "}", session_id="x")
    assert isinstance(error, PersistenceError)
    assert len(str(error)) < 200
    assert "'{aaaa" in str(error)
    assert "no value" in str(DamagedRecordError("agent 'a'", "created_at", None))
