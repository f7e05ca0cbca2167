"""The PostgreSQL store behind PgBouncer: what the conformance suite cannot say.

The whole conformance suite also runs through PgBouncer in transaction mode (the
``pgbouncer`` backend of ``tests/conformance``); these tests pin how the store finds the
pooler, what it turns off there, and where migrations run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mofa.persistence import (
    InvalidInputError,
    InvalidURLError,
    QueryError,
    SchemaError,
    open_store,
    schema,
)
from mofa.persistence.backends.postgres import PostgresStore
from tests._cli import assert_one_error_line, mofa
from tests.conftest import all_versions
from tests.pgbouncer import PgBouncer, pgbouncer
from tests.reliability._harness import free_port
from tests.servers import postgres_database, postgres_rows

pytestmark = [pytest.mark.postgres, pytest.mark.pgbouncer]


@pytest.fixture
def direct_url() -> Iterator[str]:
    """A fresh, empty database on the PostgreSQL server, by its direct URL."""
    with postgres_database("mofa_pgb") as url:
        yield url


@pytest.fixture(scope="module")
def narrow_bouncer() -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode with two server connections per database: concurrent
    calls of two pools keep changing server connection."""
    with pgbouncer(pool_mode="transaction", pool_size=2) as bouncer:
        yield bouncer


async def _tables(direct_url: str) -> set[str]:
    rows = await postgres_rows(
        direct_url, "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'"
    )
    return {row[0] for row in rows}


async def _create_schema(direct_url: str) -> None:
    await (await open_store(direct_url)).close()


async def _busy_calls(url: str) -> list[int]:
    """Two stores (two pools, so two sets of server-side statement names) each run four
    tasks of appends and reads at once; returns each session's message count."""
    stores = [await PostgresStore.connect(url, pool_max_size=4) for _ in range(2)]
    try:
        for index, store in enumerate(stores):
            await store.create_session(f"busy-{index}")

        async def task(index: int, number: int) -> None:
            store = stores[index]
            for step in range(25):
                await store.append_message(f"busy-{index}", "user", f"{number}:{step}")
                await store.list_recent_messages(f"busy-{index}", limit=5)
                await store.get_session(f"busy-{index}")

        await asyncio.gather(*(task(index, n) for index in range(2) for n in range(4)))
        return [await store.count_messages(f"busy-{i}") for i, store in enumerate(stores)]
    finally:
        for store in stores:
            await store.close()


async def test_found_pooler_gets_no_named_prepared_statements(
    narrow_bouncer: PgBouncer, direct_url: str
) -> None:
    await _create_schema(direct_url)
    assert await _busy_calls(narrow_bouncer.url(direct_url)) == [100, 100]


async def test_named_prepared_statements_fail_through_a_transaction_pooler(
    narrow_bouncer: PgBouncer, direct_url: str
) -> None:
    """The control for the test above: told (wrongly) that the pooler pins sessions, the
    store prepares named statements, and the same calls fail."""
    await _create_schema(direct_url)
    with pytest.raises(QueryError, match="prepared statement"):
        await _busy_calls(narrow_bouncer.url(direct_url, pool_mode="session"))


async def test_a_migration_through_pgbouncer_is_refused_and_changes_nothing(
    pgbouncer_server: PgBouncer, direct_url: str
) -> None:
    with pytest.raises(SchemaError) as refused:
        await open_store(pgbouncer_server.url(direct_url))
    message = str(refused.value)
    assert "needs schema migration(s) 1, 2, 3" in message
    assert "connection pooler (such as PgBouncer)" in message
    assert "migrate_url=" in message
    assert "mofa db init -t postgres -u DIRECT_URL" in message
    assert "?pool_mode=session" in message
    assert await _tables(direct_url) == set()


async def test_migrate_url_runs_the_migrations_and_the_store_uses_pgbouncer(
    pgbouncer_server: PgBouncer, direct_url: str
) -> None:
    async with await open_store(pgbouncer_server.url(direct_url), migrate_url=direct_url) as store:
        assert store.applied_migrations == all_versions("postgres")
        await store.create_session("s")
        await store.append_message("s", "user", "through the pooler")
    assert await _tables(direct_url) == {*schema.table_names("postgres"), "mofa_schema_migrations"}
    # Up to date: migrate_url is not even opened (it names a port nothing listens on).
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    async with await open_store(pgbouncer_server.url(direct_url), migrate_url=nowhere) as store:
        assert store.applied_migrations == ()
        assert [m.content for m in await store.list_messages("s")] == ["through the pooler"]


async def test_migrate_url_through_pgbouncer_is_refused(
    pgbouncer_server: PgBouncer, direct_url: str
) -> None:
    through = pgbouncer_server.url(direct_url)
    with pytest.raises(SchemaError, match=r"and migrate_url \(postgresql://.*\) reaches it"):
        await open_store(through, migrate_url=through)
    with pytest.raises(SchemaError, match="says pool_mode=transaction"):
        await open_store(through, migrate_url=direct_url + "?pool_mode=transaction")
    assert await _tables(direct_url) == set()


async def test_migrate_url_naming_another_database_is_refused(
    pgbouncer_server: PgBouncer, direct_url: str
) -> None:
    with (
        postgres_database("mofa_pgb_other") as other,
        pytest.raises(SchemaError, match="name different databases"),
    ):
        await open_store(pgbouncer_server.url(direct_url), migrate_url=other)


async def test_pool_mode_session_lets_migrations_run_through_a_session_pooler(
    direct_url: str,
) -> None:
    with pgbouncer(pool_mode="session", pool_size=2) as bouncer:
        url = bouncer.url(direct_url, pool_mode="session")
        async with await open_store(url) as store:
            assert store.applied_migrations == all_versions("postgres")
        # Found but not declared: taken to share connections, so the migration is refused.
        latest = schema.latest_version("postgres")
        await postgres_rows(
            direct_url, f"DELETE FROM mofa_schema_migrations WHERE version = {latest}"
        )
        with pytest.raises(SchemaError, match="needs schema migration"):
            await open_store(bouncer.url(direct_url))


async def test_pool_mode_transaction_on_a_direct_url(direct_url: str) -> None:
    """The URL's word is taken as it is: no named statements, no migrations there."""
    declared = direct_url + "?pool_mode=transaction"
    with pytest.raises(SchemaError, match=r"in transaction mode \(the URL's pool_mode\)"):
        await open_store(declared)
    await _create_schema(direct_url)
    async with await open_store(declared) as store:
        await store.create_session("s")
        assert store.url.masked.endswith("?pool_mode=transaction")  # not a secret
    with pytest.raises(InvalidInputError, match="statement_cache_size=5 asks for named"):
        await open_store(declared, statement_cache_size=5)
    async with await open_store(declared, statement_cache_size=0) as store:
        assert await store.get_session("s") is not None


async def test_an_unknown_pool_mode_is_an_invalid_url() -> None:
    with pytest.raises(InvalidURLError, match="pool_mode='transactions'; write pool_mode="):
        await open_store("postgresql://postgres@127.0.0.1:1/db?pool_mode=transactions")


async def test_migrate_url_must_be_a_postgres_url() -> None:
    with pytest.raises(InvalidURLError, match="migrate_url must be a postgres://"):
        await open_store("postgresql://postgres@127.0.0.1:1/db", migrate_url="sqlite://x.db")


def test_db_init_through_pgbouncer_is_refused_and_direct_works(
    pgbouncer_server: PgBouncer, direct_url: str
) -> None:
    through = pgbouncer_server.url(direct_url)
    line = assert_one_error_line(mofa("db", "init", "-t", "postgres", "-u", through))
    assert "mofa db init -t postgres -u DIRECT_URL" in line
    initialized = mofa("db", "init", "-t", "postgres", "-u", direct_url)
    assert initialized.exit_code == 0, initialized.output
    listed = mofa("session", "list", "--output-format", "json", url=through)
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.strip() == "[]"


async def test_the_store_reaches_the_server_through_pgbouncer(
    pgbouncer_server: PgBouncer, direct_url: str
) -> None:
    """What the pgbouncer backend of the conformance suite relies on: its calls are
    PgBouncer's clients (logged in by it), not the server's."""
    await _create_schema(direct_url)
    through = pgbouncer_server.url(direct_url)
    assert f"127.0.0.1:{pgbouncer_server.port}/" in through
    async with await open_store(through) as store:
        await store.create_session("s")
    database = direct_url.rsplit("/", 1)[1]
    assert f"login attempt: db={database} user=postgres" in pgbouncer_server.log()
