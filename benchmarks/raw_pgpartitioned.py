"""PostgreSQL with sessions, messages and agent_state hash-partitioned by session_id (4
partitions each; ``tests/partitioned.py``), for the benchmarks: ``--backends pgpartitioned``.

Each database gets the mofa schema from the store, then its three tables are partitioned;
the store and the raw side (``raw_postgres``'s, unchanged) both use it as it is. W6 on it
(``--backends postgres,pgpartitioned --workloads W6``) shows whether listing 10 sessions and
loading the last 20 messages stay flat from ~1,000 to ~1,000,000 messages once every key
includes session_id: a session's messages are in one partition (found from its id), a
listing of sessions reads each partition's index and merges them.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from tests.partitioned import partition

from benchmarks import raw_postgres
from mofa.persistence import open_store

NAME = "pgpartitioned"


async def create_database() -> str:
    """A new database with the mofa schema, its three session tables partitioned."""
    url = await raw_postgres.create_database()
    await (await open_store(url)).close()
    await partition(url)
    return url


async def drop_database(url: str) -> None:
    await raw_postgres.drop_database(url)


class Raw(raw_postgres.Raw):
    """``raw_postgres.Raw`` on the partitioned schema."""

    @classmethod
    async def open(cls, url: str | None = None) -> Raw:
        owned = url is None
        if url is None:
            url = await create_database()  # the schema is made (and partitioned) there
        pool: Any = await asyncpg.create_pool(
            url, min_size=1, max_size=10, reset=raw_postgres._no_reset
        )
        return cls(url, pool, owned)
