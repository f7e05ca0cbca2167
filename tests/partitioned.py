"""The mofa schema with sessions, messages and agent_state hash-partitioned by session_id.

A partitioned table enforces the rule Citus enforces when it distributes one: every primary
and unique key must include the partition (distribution) column. :func:`partition` turns the
three tables of an empty database at the latest schema version into partitioned ones with the
same columns, defaults, keys, indexes and foreign keys, so the conformance suite and the
benchmarks can run on them (the ``partitioned`` backend of ``tests/conformance``,
``benchmarks/raw_pgpartitioned.py``). On a schema before version 4 it fails: ``messages``'
primary key was ``id`` alone.
"""

from __future__ import annotations

from typing import Final

from tests.servers import postgres_rows

#: Partitions per table (the same modulus for all three: a session's rows share a number).
PARTITIONS: Final = 4
TABLES: Final = ("sessions", "messages", "agent_state")
_FOREIGN_KEYS: Final = {
    "sessions": "FOREIGN KEY (agent_id) REFERENCES agents(id) ON DELETE CASCADE",
    "messages": "FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE CASCADE",
    "agent_state": "FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE CASCADE",
}


#: LIKE … INCLUDING ALL names the new tables' indexes itself: give each the name of the old
#: table's index with the same definition (the old one renamed out of the way), so the
#: partitioned schema has the index names a health check (``mofa db doctor``) expects.
_KEEP_INDEX_NAMES: Final = """DO $$
DECLARE
    old RECORD;
    new_name TEXT;
BEGIN
    FOR old IN
        SELECT indexname, replace(tablename, '_plain', '') AS target,
               regexp_replace(indexdef, ' INDEX \\S+ ON (ONLY )?\\S+', '') AS body
        FROM pg_indexes WHERE schemaname = current_schema()
        AND tablename IN ('sessions_plain', 'messages_plain', 'agent_state_plain')
    LOOP
        SELECT indexname INTO new_name FROM pg_indexes
        WHERE schemaname = current_schema() AND tablename = old.target
        AND regexp_replace(indexdef, ' INDEX \\S+ ON (ONLY )?\\S+', '') = old.body;
        EXECUTE format('ALTER INDEX %I RENAME TO %I', old.indexname, old.indexname || '_plain');
        EXECUTE format('ALTER INDEX %I RENAME TO %I', new_name, old.indexname);
    END LOOP;
END
$$"""


def partition_statements(partitions: int = PARTITIONS) -> list[str]:
    """The statements that replace the three (empty) tables by hash-partitioned ones."""
    statements = [f"ALTER TABLE {table} RENAME TO {table}_plain" for table in TABLES]
    for table in TABLES:
        statements.append(
            f"CREATE TABLE {table} (LIKE {table}_plain INCLUDING ALL) "
            "PARTITION BY HASH (session_id)"
        )
        statements += [
            f"CREATE TABLE {table}_p{number} PARTITION OF {table} "
            f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {number})"
            for number in range(partitions)
        ]
        statements.append(f"ALTER TABLE {table} ADD {_FOREIGN_KEYS[table]}")
    statements.append(_KEEP_INDEX_NAMES)
    # messages.id's sequence belongs to the old table: hand it over before dropping that.
    statements.append("ALTER SEQUENCE messages_id_seq OWNED BY messages.id")
    statements.append("DROP TABLE agent_state_plain, messages_plain, sessions_plain")
    return statements


async def partition(url: str) -> None:
    """Partition the three tables of the (empty, current) database of ``url``, in one
    transaction."""
    await _script(url, "BEGIN; " + "; ".join(partition_statements()) + "; COMMIT")


async def empty_partitioned(url: str, latest: int) -> bool:
    """Empty the three partitioned tables (and agents) of ``url`` when it holds them at
    schema version ``latest``, keeping their structure; False when it does not (the caller
    builds them)."""
    rows = await postgres_rows(
        url,
        "SELECT (SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c "
        "ON c.oid = p.partrelid WHERE c.relname = ANY($1::text[])) = 3 "
        "AND (SELECT max(version) FROM mofa_schema_migrations) = $2 "
        "AND to_regclass('agents') IS NOT NULL",
        list(TABLES),
        latest,
    )
    if not rows[0][0]:
        return False
    # DELETE, not TRUNCATE: the tables hold a test's few rows, and TRUNCATE of 13 relations
    # with their indexes takes a third of a second.
    await _script(
        url,
        "DELETE FROM agent_state; DELETE FROM messages; DELETE FROM sessions; "
        "DELETE FROM agents; SELECT setval('messages_id_seq', 1, false)",
    )
    return True


async def _script(url: str, sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute(sql)  # the simple protocol: several statements, one trip
    finally:
        await connection.close()


async def partitioned_tables(url: str) -> dict[str, int]:
    """Each partitioned table of the database, with its number of partitions."""
    rows = await postgres_rows(
        url,
        "SELECT c.relname::text, count(i.inhrelid)::int FROM pg_partitioned_table p "
        "JOIN pg_class c ON c.oid = p.partrelid LEFT JOIN pg_inherits i ON i.inhparent = c.oid "
        "GROUP BY c.relname",
    )
    return {name: count for name, count in rows}
