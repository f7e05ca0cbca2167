"""Schema version 4: every primary and unique key of sessions, messages and agent_state includes
session_id on PostgreSQL and MySQL/MariaDB, so the three tables can be partitioned or
distributed (Citus) by session. A version-3 database gets the new key in place, rows kept;
the migration run again changes nothing; and on PostgreSQL the tables hash-partitioned by
session_id (which a version-3 schema cannot be) hold what the store writes. (The whole
conformance suite runs on that partitioned schema too: its ``partitioned`` backend.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mofa.persistence import open_store, schema
from tests.conftest import _params
from tests.partitioned import TABLES, partition, partitioned_tables
from tests.servers import (
    mysql_connection,
    postgres_rows,
    server_database,
    server_rows,
    statements_through,
)

#: (table, key name, its columns in order) of every primary and unique key of the three tables.
_PG_KEYS = (
    "SELECT t.relname::text, i.relname::text, "
    "array_agg(a.attname::text ORDER BY k.ordinality) "
    "FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid "
    "CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ordinality) "
    "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
    "WHERE x.indisunique AND t.relname = ANY($1::text[]) "
    "AND t.relnamespace = current_schema()::regnamespace GROUP BY t.relname, i.relname"
)
_MYSQL_KEYS = (
    "SELECT table_name, index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index) "
    "FROM information_schema.statistics WHERE table_schema = DATABASE() AND non_unique = 0 "
    "AND table_name IN ('sessions', 'messages', 'agent_state') GROUP BY table_name, index_name"
)

_EXPECTED = {
    "postgres": {
        ("agent_state", "agent_state_pkey", ("session_id", "version")),
        ("messages", "messages_pkey", ("session_id", "seq")),
        ("sessions", "sessions_pkey", ("session_id",)),
    },
    "mysql": {
        ("agent_state", "PRIMARY", ("session_id", "version")),
        ("messages", "PRIMARY", ("session_id", "seq")),
        ("sessions", "PRIMARY", ("session_id",)),
    },
}


@pytest.fixture(params=_params(["postgres", "mysql"]))
def server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(server: str) -> Iterator[str]:
    with server_database(server, "mofa_keys") as url:
        yield url


async def _execute(server: str, url: str, statements: list[str]) -> None:
    if server == "postgres":
        for statement in statements:
            await postgres_rows(url, statement)
        return
    async with mysql_connection(url) as connection, connection.cursor() as cursor:
        for statement in statements:
            await cursor.execute(statement)


async def _keys(server: str, url: str) -> set[tuple[str, str, tuple[str, ...]]]:
    if server == "postgres":
        rows = await postgres_rows(url, _PG_KEYS, list(TABLES))
        return {(table, name, tuple(columns)) for table, name, columns in rows}
    rows = await server_rows(server, url, _MYSQL_KEYS)
    return {(_text(table), _text(name), tuple(_text(c).split(","))) for table, name, c in rows}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: A session with three messages and a state, as version 3 stored them.
_VERSION_3_ROWS = {
    "postgres": [
        "INSERT INTO sessions (session_id, metadata, message_count, created_at, updated_at) "
        "VALUES ('old', '{}', 3, now(), now())",
        "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) "
        "SELECT 'old', n, 'user', 'message ' || n, '{}', now() FROM generate_series(1, 3) n",
        "INSERT INTO agent_state (session_id, version, state, created_at) "
        "VALUES ('old', 1, '{\"step\": 1}', now())",
    ],
    "mysql": [
        "INSERT INTO sessions (session_id, metadata, message_count, created_at, updated_at) "
        "VALUES ('old', '{}', 3, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        "INSERT INTO messages (session_id, seq, role, content, metadata, timestamp) VALUES "
        "('old', 1, 'user', 'message 1', '{}', UTC_TIMESTAMP(6)), "
        "('old', 2, 'user', 'message 2', '{}', UTC_TIMESTAMP(6)), "
        "('old', 3, 'user', 'message 3', '{}', UTC_TIMESTAMP(6))",
        "INSERT INTO agent_state (session_id, version, state, created_at) "
        "VALUES ('old', 1, '{\"step\": 1}', UTC_TIMESTAMP(6))",
    ],
}


async def test_a_new_database_has_every_key_on_session_id(server: str, database: str) -> None:
    async with await open_store(database) as store:
        assert 4 in store.applied_migrations
    assert await _keys(server, database) == _EXPECTED[server]


async def test_a_version_3_database_gets_the_keys_in_place(server: str, database: str) -> None:
    await _execute(server, database, statements_through(server, 3) + _VERSION_3_ROWS[server])
    async with await open_store(database) as store:
        assert store.applied_migrations == tuple(range(4, schema.latest_version(server) + 1))
        assert [m.content for m in await store.list_messages("old")] == [
            "message 1",
            "message 2",
            "message 3",
        ]
        appended = await store.append_message("old", "assistant", "after the upgrade")
        assert appended.seq == 4
        state = await store.get_state("old")
        assert state is not None
        assert state.state == {"step": 1}
    assert await _keys(server, database) == _EXPECTED[server]


async def test_migration_4_run_again_changes_nothing(server: str, database: str) -> None:
    """A run killed after the key change but before the version was recorded runs the
    migration's steps again: they must find the work done."""
    await (await open_store(database)).close()
    fourth = schema.migrations(server)[3]
    await _execute(server, database, fourth.statements)
    assert await _keys(server, database) == _EXPECTED[server]


@pytest.mark.postgres
async def test_version_3_tables_cannot_be_partitioned_by_session() -> None:
    """Why version 4 exists: a unique key without session_id (messages' id) is refused by a
    table partitioned by session_id, as by Citus."""
    import asyncpg

    with server_database("postgres", "mofa_keys") as url:
        await _execute("postgres", url, statements_through("postgres", 3))
        with pytest.raises(asyncpg.PostgresError, match="must include all partitioning columns"):
            await partition(url)
        assert await partitioned_tables(url) == {}


@pytest.mark.postgres
async def test_the_partitioned_tables_hold_what_the_store_writes() -> None:
    with server_database("postgres", "mofa_keys") as url:
        await (await open_store(url)).close()
        await partition(url)
        assert await partitioned_tables(url) == dict.fromkeys(TABLES, 4)
        async with await open_store(url) as store:
            for number in range(20):
                await store.create_session(f"s{number}")
                await store.append_message(f"s{number}", "user", "hello")
                await store.save_state(f"s{number}", {"n": number})
        spread = await postgres_rows(
            url, "SELECT tableoid::regclass::text, count(*) FROM messages GROUP BY 1 ORDER BY 1"
        )
        assert [name for name, _count in spread] == [f"messages_p{n}" for n in range(4)]
        async with await open_store(url) as store:
            assert await store.delete_session("s3")
        rows = await postgres_rows(url, "SELECT count(*) FROM messages WHERE session_id = 's3'")
        assert rows == [(0,)]
