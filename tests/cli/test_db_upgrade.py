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
_COMBINATIONS = [
    key for key in sqlite_statements.READS.list_sessions if IS_NULL not in key and not any(key[3:])
]


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


def _values(key: FilterKey, dialect: str = "sqlite") -> list[str]:
    """The listing's filter values for ``key``, as the stores bind them (``IS NULL`` takes
    none)."""
    ids = [value for value, how in zip(("a1", "u11", "t2"), key[:3], strict=True) if how == EQUAL]
    extras = ("active", _SINCE[dialect], _UNTIL[dialect])
    return ids + [value for value, given in zip(extras, key[3:], strict=True) if given]


#: ``since`` and ``until`` of the plans' listings, as each dialect binds them (an hour of the
#: 3,000 seconds the fill spans).
_SINCE = {
    "sqlite": "2026-01-01 00:10:00.000000",
    "postgres": "2026-01-01 00:10:00+00",
    "mysql": "2026-01-01 00:10:00.000000",
}
_UNTIL = {
    "sqlite": "2026-01-01 00:20:00.000000",
    "postgres": "2026-01-01 00:20:00+00",
    "mysql": "2026-01-01 00:20:00.000000",
}


async def _plans(
    dialect: str, url: str, combinations: list[FilterKey] | None = None
) -> dict[FilterKey, str]:
    """The plan of the store's own listing statement for each filter combination, LIMIT 10."""
    plans: dict[FilterKey, str] = {}
    combinations = _COMBINATIONS if combinations is None else combinations
    if dialect == "sqlite":
        connection = sqlite3.connect(url.removeprefix("sqlite://"))
        try:
            for key in combinations:
                statement = sqlite_statements.READS.list_sessions[key]
                rows = connection.execute(
                    f"EXPLAIN QUERY PLAN {statement}", (*_values(key, dialect), 10, 0)
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
            for n, key in enumerate(combinations):
                statement = postgres_statements.READS.list_sessions[key]
                await connection.execute(f"PREPARE listing{n} AS {statement}")
                arguments = ", ".join(f"'{value}'" for value in _values(key, dialect))
                call = f"listing{n}({arguments}{', ' if arguments else ''}10, 0)"
                rows = await connection.fetch(f"EXPLAIN EXECUTE {call}")
                plans[key] = "\n".join(row[0] for row in rows)
        finally:
            await connection.close()
    else:
        async with mysql_connection(url) as connection, connection.cursor() as cursor:
            for key in combinations:
                statement = mysql_statements.READS.list_sessions[key]
                await cursor.execute(f"EXPLAIN {statement}", (*_values(key, dialect), 10, 0))
                columns = [column[0] for column in cursor.description]
                rows = await cursor.fetchall()
                plans[key] = "\n".join(str(dict(zip(columns, row, strict=True))) for row in rows)
    return plans


def _index_for(key: FilterKey) -> str:
    """The index made for a filter combination: idx_sessions_ + its filters, in index order."""
    agent, user, tenant = key[:3]
    parts = [
        name for name, given in (("agent", agent), ("tenant", tenant), ("user", user)) if given
    ]
    return "idx_sessions_" + ("_".join(parts) or "created")


def _served_by_its_index(dialect: str, key: FilterKey, plan: str) -> bool:
    """Read through the combination's own index, every filter in the index condition and the
    order taken from the index (no sort), so the listing reads the rows it returns."""
    index = _index_for(key)
    filters = [name for name, given in zip(_FILTER_COLUMNS, key[:3], strict=True) if given]
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
        and ("filesort" not in plan or all(key[:3]))
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
    two: FilterKey = (True, True, False, False, False, False)
    three: FilterKey = (True, True, True, False, False, False)
    assert not _served_by_its_index("sqlite", two, plans[two])
    assert not _served_by_its_index("sqlite", three, plans[three])


#: A status, a creation-time range, and both, on top of each combination of id filters.
_EXTRAS = [(True, False, False), (False, True, True), (True, True, True)]


def _served_in_index_order(dialect: str, key: FilterKey, plan: str) -> bool:
    """A listing with a status or time condition: still read through an index of its id
    filters in the index's order (no sort), the time range in the index condition, the
    status checked on the rows read. (With a time range the planner may prefer the index of
    the most selective id filter to the combination's own: either reads in order.)"""
    timed = key[4] or key[5]
    if dialect == "sqlite":
        return (
            "USING INDEX idx_sessions_" in plan
            and "TEMP B-TREE" not in plan
            and (not timed or ("created_at>?" in plan and "created_at<?" in plan))
        )
    if dialect == "postgres":
        condition = plan.partition("Index Cond")[2].partition("Filter")[0]
        return (
            "Index Scan Backward using idx_sessions_" in plan
            and "Sort" not in plan
            and (not timed or "created_at" in condition)
        )
    return (
        len(plan.splitlines()) == 1
        and "'key': 'idx_sessions_" in plan
        and ("filesort" not in plan or all(key[:3]))
    )


@pytest.mark.parametrize("dialect", ALL_TYPES)
def test_status_and_time_filters_read_in_the_index_order(dialect: str, tmp_path: Path) -> None:
    combinations: list[FilterKey] = [
        (*key[:3], *extra) for key in _COMBINATIONS for extra in _EXTRAS
    ]
    with empty_database(dialect, tmp_path) as url:
        asyncio.run(_open_and_close(url))
        execute(dialect, url, _fill(dialect))
        plans = asyncio.run(_plans(dialect, url, combinations))
    unserved = {
        key: plan for key, plan in plans.items() if not _served_in_index_order(dialect, key, plan)
    }
    assert not unserved, "\n\n".join(f"{key}:\n{plan}" for key, plan in unserved.items())


@pytest.mark.postgres
def test_a_selective_agent_filter_bounds_the_rows_a_status_filter_reads(tmp_path: Path) -> None:
    """One agent holds 600 of the 3,000 sessions; asking it for a status no session has reads
    those 600 index entries and no more (without the index it would be all 3,000)."""
    key: FilterKey = (EQUAL, 0, 0, True, False, False)

    async def analyze(url: str) -> str:
        import asyncpg

        connection = await asyncpg.connect(url)
        try:
            await connection.execute("SET plan_cache_mode = force_generic_plan")
            statement = postgres_statements.READS.list_sessions[key]
            await connection.execute(f"PREPARE listing AS {statement}")
            rows = await connection.fetch(
                "EXPLAIN (ANALYZE, TIMING OFF) EXECUTE listing('a1', 'archived', 10, 0)"
            )
            return "\n".join(row[0] for row in rows)
        finally:
            await connection.close()

    with empty_database("postgres", tmp_path) as url:
        asyncio.run(_open_and_close(url))
        execute("postgres", url, _fill("postgres"))
        plan = asyncio.run(analyze(url))
    assert "Index Scan Backward using idx_sessions_agent on" in plan, plan
    assert "Sort" not in plan, plan
    assert "Rows Removed by Filter: 600" in plan, plan
