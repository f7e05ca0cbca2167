"""Schema upgrades in place, and the indexes they add, on SQLite and the real servers.

A database created by version 1 of the schema (before the session-listing indexes) is
upgraded by ``mofa db init -u`` or by opening a store on it, keeps its rows, and ends with
exactly the catalog of a database created new. Then every combination of the
session-listing filters is checked to be served by one index: all its filters in the index
condition, and no sort (a listing reads only the rows it returns).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mofa.persistence import open_store, schema
from mofa.persistence.backends._sql import EQUAL, IS_NULL, FilterKey
from mofa.persistence.backends._sql._statements import _FILTER_COLUMNS
from mofa.persistence.backends.mysql import _statements as mysql_statements
from mofa.persistence.backends.postgres import _statements as postgres_statements
from mofa.persistence.backends.sqlite import _statements as sqlite_statements
from tests._cli import mofa
from tests.cli.test_db import _open_and_close, sqlite_catalog
from tests.cli.test_db_existing_tables import (
    ALL_TYPES,
    BY_HAND_SESSION,
    empty_database,
    execute,
)
from tests.cli.test_db_servers import catalog
from tests.servers import mysql_connection


def version_1(dialect: str) -> list[str]:
    """The statements that made a database before version 2 existed, as that release ran them."""
    first = schema.migrations(dialect)[0]
    return [
        *first.statements,
        schema.bootstrap_statement(dialect),
        schema.record_statement(dialect, first),
    ]


def schema_catalog(dialect: str, url: str) -> dict[str, Any]:
    if dialect == "sqlite":
        return sqlite_catalog(Path(url.removeprefix("sqlite://")))
    return catalog(dialect, url)


async def _session_ids(url: str) -> list[str]:
    async with await open_store(url) as store:
        return [session.session_id for session in await store.list_sessions()]


@pytest.mark.parametrize("dialect", ALL_TYPES)
def test_db_init_upgrades_a_version_1_database_in_place(dialect: str, tmp_path: Path) -> None:
    with empty_database(dialect, tmp_path) as old, empty_database(dialect, tmp_path) as new:
        execute(dialect, old, [*version_1(dialect), BY_HAND_SESSION])

        result = mofa("db", "init", "-t", dialect, "-u", old)

        assert result.exit_code == 0, result.output
        later = schema.migrations(dialect)[1:]
        assert result.stderr.splitlines()[2:] == [
            *(f"  ✓ Applied migration {m.version:04d}_{m.name}" for m in later),
            "✓ Database tables initialized successfully!",
        ]
        assert [m.name for m in later][:2] == ["session_listing_indexes", "agent_tenant"]
        latest = schema.latest_version(dialect)
        assert asyncio.run(_open_and_close(new)) == tuple(range(1, latest + 1))
        assert schema_catalog(dialect, old) == schema_catalog(dialect, new)
        assert asyncio.run(_session_ids(old)) == ["by-hand"]
        again = mofa("db", "init", "-t", dialect, "-u", old)
        assert again.stderr.splitlines()[-1] == (
            f"✓ Database schema is already up to date (version {latest}); nothing changed."
        )


@pytest.mark.parametrize("dialect", ALL_TYPES)
def test_an_upgrade_that_stopped_part_way_completes_on_the_next_open(
    dialect: str, tmp_path: Path
) -> None:
    """MySQL commits each CREATE INDEX on its own: a process killed after the first one left
    the index without the version row. The next open must finish the job, not fail on it."""
    second = schema.migrations(dialect)[1]
    first_index = 3 if dialect == "mysql" else 1  # MySQL: SET, PREPARE, EXECUTE
    with empty_database(dialect, tmp_path) as old, empty_database(dialect, tmp_path) as new:
        execute(dialect, old, [*version_1(dialect), *second.statements[:first_index]])

        latest = schema.latest_version(dialect)
        assert asyncio.run(_open_and_close(old)) == tuple(range(2, latest + 1))
        asyncio.run(_open_and_close(new))
        assert schema_catalog(dialect, old) == schema_catalog(dialect, new)


# ------------------------------------------------------------------ the listing plans

#: Each combination of filters given or not, as the stores key their listing statements. An
#: owner scope with a ``None`` field lists through ``IS NULL``; those plans are left to each
#: server's planner (PostgreSQL's generic plan does not always pick the exact index).
_COMBINATIONS = [key for key in sqlite_statements.READS.list_sessions if IS_NULL not in key]


def _sessions(count: int) -> list[tuple[str, str, str, str, str]]:
    """Sessions one second apart, spread over 5 agents, 37 users and 3 tenants (so no one of
    them decides another)."""
    return [
        (
            f"s{n:05d}",
            f"a{n % 5}",
            f"u{n % 37}",
            f"t{n % 3}",
            f"2026-01-01 {n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000000",
        )
        for n in range(count)
    ]


def _fill(dialect: str) -> list[str]:
    agents = [
        "INSERT INTO agents (id, name, state, started_at, created_at, updated_at) VALUES "
        + ", ".join(
            f"('a{n}', 'a{n}', 'running', '2026-01-01 00:00:00.000000', "
            "'2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')"
            for n in range(5)
        )
    ]
    rows = _sessions(3000)
    inserts = [
        "INSERT INTO sessions (session_id, agent_id, user_id, tenant_id, status, metadata, "
        "message_count, created_at, updated_at) VALUES "
        + ", ".join(
            f"('{s}', '{a}', '{u}', '{t}', 'active', '{{}}', 0, '{c}', '{c}')"
            for s, a, u, t, c in rows[start : start + 500]
        )
        for start in range(0, len(rows), 500)
    ]
    analyze = {
        "sqlite": "ANALYZE",
        "postgres": "ANALYZE sessions",
        "mysql": "ANALYZE TABLE sessions",
    }
    return [*agents, *inserts, analyze[dialect]]


def _values(key: FilterKey) -> list[str]:
    """The listing's filter values for ``key``, as the stores bind them (``IS NULL`` takes
    none)."""
    return [value for value, how in zip(("a1", "u11", "t2"), key, strict=True) if how == EQUAL]


async def _plans(dialect: str, url: str) -> dict[FilterKey, str]:
    """The plan of the store's own listing statement for each filter combination, LIMIT 10."""
    plans: dict[FilterKey, str] = {}
    if dialect == "sqlite":
        connection = sqlite3.connect(url.removeprefix("sqlite://"))
        try:
            for key in _COMBINATIONS:
                statement = sqlite_statements.READS.list_sessions[key]
                rows = connection.execute(
                    f"EXPLAIN QUERY PLAN {statement}", (*_values(key), 10, 0)
                ).fetchall()
                plans[key] = "\n".join(row[-1] for row in rows)
        finally:
            connection.close()
    elif dialect == "postgres":
        import asyncpg

        connection = await asyncpg.connect(url)
        try:
            # The store's statements are prepared, and PostgreSQL may switch a prepared
            # statement to one plan for all values: check that plan.
            await connection.execute("SET plan_cache_mode = force_generic_plan")
            for n, key in enumerate(_COMBINATIONS):
                statement = postgres_statements.READS.list_sessions[key]
                await connection.execute(f"PREPARE listing{n} AS {statement}")
                arguments = ", ".join(f"'{value}'" for value in _values(key))
                call = f"listing{n}({arguments}{', ' if arguments else ''}10, 0)"
                rows = await connection.fetch(f"EXPLAIN EXECUTE {call}")
                plans[key] = "\n".join(row[0] for row in rows)
        finally:
            await connection.close()
    else:
        async with mysql_connection(url) as connection, connection.cursor() as cursor:
            for key in _COMBINATIONS:
                statement = mysql_statements.READS.list_sessions[key]
                await cursor.execute(f"EXPLAIN {statement}", (*_values(key), 10, 0))
                columns = [column[0] for column in cursor.description]
                rows = await cursor.fetchall()
                plans[key] = "\n".join(str(dict(zip(columns, row, strict=True))) for row in rows)
    return plans


def _index_for(key: FilterKey) -> str:
    """The index made for a filter combination: idx_sessions_ + its filters, in index order."""
    agent, user, tenant = key
    parts = [
        name for name, given in (("agent", agent), ("tenant", tenant), ("user", user)) if given
    ]
    return "idx_sessions_" + ("_".join(parts) or "created")


def _served_by_its_index(dialect: str, key: FilterKey, plan: str) -> bool:
    """Read through the combination's own index, every filter in the index condition and the
    order taken from the index (no sort), so the listing reads the rows it returns."""
    index = _index_for(key)
    filters = [name for name, given in zip(_FILTER_COLUMNS, key, strict=True) if given]
    if dialect == "sqlite":
        return (
            plan.startswith(("SEARCH", "SCAN"))
            and f"USING INDEX {index} " in f"{plan} "
            and "TEMP B-TREE" not in plan
            and all(f"{name}=?" in plan for name in filters)
        )
    if dialect == "postgres":
        return (
            f"Index Scan Backward using {index} on" in plan
            and "Sort" not in plan
            and "Filter" not in plan
            and all(name in plan.partition("Index Cond")[2] for name in filters)
        )
    # MySQL: InnoDB's 3,072-byte key limit leaves session_id out of the agent, tenant and user
    # index, and MariaDB sorts the rows of that exact (agent, tenant, user) to break ties.
    return (
        len(plan.splitlines()) == 1
        and f"'key': '{index}'" in plan
        and ("filesort" not in plan or all(key))
    )


@pytest.mark.parametrize("dialect", ALL_TYPES)
def test_every_session_listing_is_served_by_one_index(dialect: str, tmp_path: Path) -> None:
    with empty_database(dialect, tmp_path) as url:
        asyncio.run(_open_and_close(url))
        execute(dialect, url, _fill(dialect))
        plans = asyncio.run(_plans(dialect, url))
    unserved = {
        key: plan for key, plan in plans.items() if not _served_by_its_index(dialect, key, plan)
    }
    assert not unserved, unserved


def test_version_1_left_the_agent_with_a_user_to_a_filter(tmp_path: Path) -> None:
    """The check above fails on a version-1 database: it can tell."""
    url = f"sqlite://{tmp_path / 'v1.db'}"
    execute("sqlite", url, [*version_1("sqlite"), *_fill("sqlite")])
    plans = asyncio.run(_plans("sqlite", url))
    assert not _served_by_its_index("sqlite", (True, True, False), plans[True, True, False])
    assert not _served_by_its_index("sqlite", (True, True, True), plans[True, True, True])
