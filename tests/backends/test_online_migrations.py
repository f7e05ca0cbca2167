"""The online migration runner (``backends/_sql/_online.py``) on the real servers.

An index build a kill left invalid is found and built again, a valid one is not built twice;
an online statement that needs a strong lock gives way to writers instead of queueing them
behind it; an upgrade stopped between any two steps finishes when a store opens again; and
processes that upgrade one database at once do it once.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from mofa.persistence import open_store, schema
from mofa.persistence.backends._sql import _online
from mofa.persistence.backends._sql._online import run_online, run_steps
from mofa.persistence.backends.mysql import _schema as mysql_schema
from mofa.persistence.backends.postgres import _schema as postgres_schema
from tests.backends.test_distributable_keys import _EXPECTED, _VERSION_3_ROWS, _execute, _keys
from tests.conftest import _params
from tests.servers import (
    mysql_connection,
    postgres_database,
    server_database,
    statements_through,
)


@pytest.fixture
def database() -> Iterator[str]:
    with postgres_database("mofa_online") as url:
        yield url


async def _index_state(connection: Any, name: str) -> tuple[int, bool] | None:
    row = await connection.fetchrow(
        "SELECT indexrelid::int, indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
        name,
    )
    return None if row is None else (row[0], row[1])


_BUILD = "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_t_code ON t (code)"


@pytest.mark.postgres
async def test_an_index_left_invalid_is_dropped_and_built_again(database: str) -> None:
    connection = await asyncpg.connect(database)
    try:
        steps = postgres_schema._Session(connection, "test")
        await connection.execute(
            "CREATE TABLE t (id int PRIMARY KEY, code int);"
            "INSERT INTO t SELECT n, n % 1000 FROM generate_series(1, 5000) n"
        )
        # A concurrent build that fails half-way (here: duplicates) leaves an invalid index,
        # exactly as a kill during the build does.
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(_BUILD)
        invalid = await _index_state(connection, "idx_t_code")
        assert invalid is not None
        assert invalid[1] is False
        # IF NOT EXISTS alone would take the invalid index for a built one.
        await connection.execute("UPDATE t SET code = id")
        await run_online(steps, _BUILD)
        rebuilt = await _index_state(connection, "idx_t_code")
        assert rebuilt is not None
        assert rebuilt[1] is True
        assert rebuilt[0] != invalid[0]  # a new index, not the invalid one marked valid
        await run_online(steps, _BUILD)  # done: not built again
        assert await _index_state(connection, "idx_t_code") == rebuilt
    finally:
        await connection.close()


@pytest.mark.postgres
async def test_a_key_change_gives_way_to_writers_and_retries(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ALTER TABLE queued for its lock behind a long transaction would make every writer
    queue behind it; the runner's attempt gives up after LOCK_WAIT_SECONDS, lets the
    writers through, and tries again until the long transaction ends."""
    monkeypatch.setattr(_online, "LOCK_WAIT_SECONDS", 0.2)
    setup = await asyncpg.connect(database)
    await setup.execute("CREATE TABLE t (id serial PRIMARY KEY, note text)")
    long_reader = await asyncpg.connect(database)
    writer = await asyncpg.connect(database)
    migrator = await asyncpg.connect(database)
    try:
        reader_transaction = long_reader.transaction()
        await reader_transaction.start()
        await long_reader.execute("SELECT count(*) FROM t")  # holds ACCESS SHARE on t
        alter = asyncio.create_task(
            run_online(
                postgres_schema._Session(migrator, "test"), "ALTER TABLE t ADD COLUMN extra int"
            )
        )
        longest = 0.0
        finish = time.monotonic() + 1.5
        while time.monotonic() < finish:
            started = time.monotonic()
            # Queued behind the ALTER's lock request, this would wait for the reader.
            await asyncio.wait_for(writer.execute("INSERT INTO t (note) VALUES ('w')"), 5)
            longest = max(longest, time.monotonic() - started)
        assert not alter.done()  # still trying: the long transaction holds its lock
        await reader_transaction.rollback()
        await asyncio.wait_for(alter, timeout=10)
        columns = await setup.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass"
        )
        assert "extra" in {row[0] for row in columns}
        # A writer waited at most about one attempt's lock wait, never the 1.5 s.
        assert longest < 0.6, longest
    finally:
        for connection in (setup, long_reader, writer, migrator):
            await connection.close()


@pytest.fixture(params=_params(["postgres", "mysql"]))
def server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _run_first_steps(server: str, url: str, count: int) -> None:
    """Run the first ``count`` steps of the upgrade from version 3, as a run killed after
    them would have."""
    steps = schema.pending_steps(server, 3)[:count]
    if server == "postgres":
        connection = await asyncpg.connect(url)
        try:
            await run_steps(postgres_schema._Session(connection, "test"), steps)
        finally:
            await connection.close()
        return
    async with mysql_connection(url) as connection, connection.cursor() as cursor:
        await run_steps(mysql_schema._Session(cursor, "test"), steps)


async def test_an_upgrade_stopped_between_any_two_steps_is_finished(server: str) -> None:
    steps = schema.pending_steps(server, 3)
    assert any(step.online for step in steps)
    for count in range(len(steps) + 1):
        with server_database(server, "mofa_online") as url:
            await _execute(server, url, statements_through(server, 3) + _VERSION_3_ROWS[server])
            await _run_first_steps(server, url, count)
            async with await open_store(url) as store:
                assert store.applied_migrations == (() if count == len(steps) else (4,))
                assert len(await store.list_messages("old")) == 3
                assert (await store.append_message("old", "user", "next")).seq == 4
            assert await _keys(server, url) == _EXPECTED[server]


_OPEN = textwrap.dedent(
    """
    import asyncio, sys
    from mofa.persistence import open_store

    async def main(url):
        async with await open_store(url) as store:
            print(",".join(map(str, store.applied_migrations)), flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_processes_upgrading_at_once_do_it_once(server: str) -> None:
    with server_database(server, "mofa_online") as url:
        await _execute(server, url, statements_through(server, 3) + _VERSION_3_ROWS[server])
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN, url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outputs = []
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            outputs.append(out.strip())
        assert sorted(outputs) == ["", "", "", "4"]
        assert await _keys(server, url) == _EXPECTED[server]
