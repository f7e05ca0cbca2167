"""PostgreSQL through PgBouncer in transaction mode, for the benchmarks: ``--backends pgbouncer``.

The benchmark starts a private PgBouncer (``tests/pgbouncer.py``: the distribution's
``pgbouncer``, a free port, transaction mode, 10 server connections per database) in front of
the server ``raw_postgres`` uses, the first time it needs one, and stops it when the run ends.
Each database is created, with the mofa schema, on the direct URL (migrations are refused
through a transaction pooler); the store and the raw side then both reach it through
PgBouncer. The raw side is ``raw_postgres``'s, with the one change transaction pooling asks of
any asyncpg client: no named prepared statements (``statement_cache_size=0``). Run it beside
``postgres`` to see what the pooler costs: ``--backends postgres,pgbouncer``.
"""

from __future__ import annotations

import atexit
import contextlib
from typing import Any

import asyncpg
from tests.pgbouncer import PgBouncer, pgbouncer, pgbouncer_binary

from benchmarks import raw_postgres
from mofa.persistence import open_store

NAME = "pgbouncer"

_running: list[PgBouncer] = []
_stack = contextlib.ExitStack()
atexit.register(_stack.close)


def _bouncer() -> PgBouncer:
    if not _running:
        if pgbouncer_binary() is None:
            raise OSError("pgbouncer is not installed (apt-get install pgbouncer)")
        _running.append(_stack.enter_context(pgbouncer(pool_mode="transaction", pool_size=10)))
    return _running[0]


async def create_database() -> str:
    """A new database with the mofa schema (made on the direct URL); its URL via PgBouncer."""
    direct = await raw_postgres.create_database()
    await (await open_store(direct)).close()
    return _bouncer().url(direct)


async def drop_database(url: str) -> None:
    """Drop it on the server (by name, as raw_postgres does: PgBouncer's server connections
    to it are ended with it)."""
    await raw_postgres.drop_database(url)


class Raw(raw_postgres.Raw):
    """``raw_postgres.Raw`` through PgBouncer, without named prepared statements."""

    @classmethod
    async def open(cls, url: str | None = None) -> Raw:
        owned = url is None
        if url is None:
            url = await create_database()  # the schema is made there already
        pool: Any = await asyncpg.create_pool(
            url, min_size=1, max_size=10, reset=raw_postgres._no_reset, statement_cache_size=0
        )
        return cls(url, pool, owned)
