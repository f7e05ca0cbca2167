"""Times as text, in SQLite and the file store: one fixed-width UTC form, so text order is
time order for every year from 1 to 9999, and what older versions wrote still reads."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mofa.persistence import FileStore, NewMessage, SqliteStore
from mofa.persistence._codec import format_time, parse_time

#: In time order; each a year where a text form that does not pad would sort wrongly.
MOMENTS = [
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9, 5, 1, 12, tzinfo=UTC),
    datetime(99, 1, 1, tzinfo=UTC),
    datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1000, 1, 1, tzinfo=UTC),
    datetime(2024, 2, 28, 10, 30, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


def test_the_text_form_is_fixed_width_and_sorts_as_time() -> None:
    texts = [format_time(moment) for moment in MOMENTS]
    assert texts[0] == "0001-01-01 00:00:00.000000"
    assert texts[3] == "0999-12-31 23:59:59.999999"
    assert {len(text) for text in texts} == {26}
    assert sorted(texts) == texts
    assert [parse_time(text) for text in texts] == MOMENTS


def test_years_written_without_padding_by_older_versions_still_read() -> None:
    # strftime("%Y") on glibc wrote year 999 as "999"; such a row is still that time.
    assert parse_time("999-01-01 00:00:00.000000") == datetime(999, 1, 1, tzinfo=UTC)
    assert parse_time("5-06-07 08:09:10.000011") == datetime(5, 6, 7, 8, 9, 10, 11, tzinfo=UTC)
    for text in ("99999-01-01 00:00:00", "garbage", "", "0999-13-01 00:00:00"):
        with pytest.raises(ValueError, match=r"isoformat|month"):
            parse_time(text)


@pytest.mark.sqlite
async def test_sqlite_stores_every_year_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with await SqliteStore.connect(f"sqlite://{path}") as store:
        await store.create_session("s", expires_at=MOMENTS[3])
        # Appended out of time order: the stored text must still sort as the times do.
        shuffled = MOMENTS[3:] + MOMENTS[:3]
        await store.append_messages("s", [NewMessage("user", "x", timestamp=m) for m in shuffled])
    with sqlite3.connect(path) as connection:
        by_seq = connection.execute("SELECT timestamp FROM messages ORDER BY seq")
        texts = [row[0] for row in by_seq]
        by_text = connection.execute("SELECT timestamp FROM messages ORDER BY timestamp")
        ordered = [row[0] for row in by_text]
        expiry = connection.execute("SELECT expires_at FROM sessions").fetchone()[0]
        assert texts == [format_time(m) for m in shuffled]
        assert ordered == [format_time(m) for m in MOMENTS]
        assert expiry == "0999-12-31 23:59:59.999999"
        # A row an older version wrote for year 999 reads back as year 999.
        connection.execute("UPDATE sessions SET expires_at = '999-01-01 00:00:00.000000'")
    async with await SqliteStore.connect(f"sqlite://{path}") as store:
        [session] = await store.list_sessions()
        assert session.expires_at == datetime(999, 1, 1, tzinfo=UTC)


@pytest.mark.files
async def test_the_file_store_writes_four_digit_years(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await FileStore.connect(f"file://{data}") as store:
        await store.create_session("s", agent_id="a", expires_at=MOMENTS[1])
        await store.append_message("s", "user", "x", timestamp=MOMENTS[3])
        await store.upsert_agent("a", started_at=MOMENTS[0])
    header_path = data / "sessions" / "a" / "s.json"
    header = json.loads(header_path.read_text())
    assert header["expires_at"] == "0009-05-01 12:00:00.000000"
    line = json.loads((data / "sessions" / "a" / "s.messages.jsonl").read_text())
    assert line["ts"] == "0999-12-31 23:59:59.999999"
    agent = json.loads((data / "agents" / "a.json").read_text())
    assert agent["started_at"] == "0001-01-01 00:00:00.000000"
    # A header an older version wrote for year 9 reads back as year 9.
    header["expires_at"] = "9-05-01 12:00:00.000000"
    header_path.write_text(json.dumps(header))
    async with await FileStore.connect(f"file://{data}") as store:
        [session] = await store.list_sessions()
        assert session.expires_at == MOMENTS[1]
