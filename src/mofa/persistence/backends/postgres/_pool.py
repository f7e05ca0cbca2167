"""asyncpg and its pool: the lazy import, the connect options, the per-release reset."""

from __future__ import annotations

from typing import Any, Final

from mofa.persistence.errors import MissingDependencyError

_DEFAULT_CONNECT_TIMEOUT: Final = 10.0
_DEFAULT_POOL_SIZE: Final = 10
#: The keyword options of PostgresStore.connect (pool_size: another name for pool_max_size).
_OPTIONS: Final = (
    "pool_min_size",
    "pool_max_size",
    "pool_size",
    "connect_timeout",
    "command_timeout",
    "statement_cache_size",
    "max_inactive_connection_lifetime",
    "create_schema",
)


def _import_asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError as exc:
        raise MissingDependencyError("PostgreSQL", "asyncpg", "postgres") from exc
    return asyncpg


async def _keep_session_state(connection: Any) -> None:
    """The pool's per-release reset, replaced by nothing.

    By default an asyncpg pool sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL;`` every time a connection goes back to the pool: a whole extra
    round trip after every call, which roughly halves the append rate. This store never
    changes session state (no SET, LISTEN, cursors or session-level advisory locks: the
    schema lock is transaction-scoped), so there is nothing to reset. Passing this no-op as
    ``create_pool(reset=...)`` (asyncpg >= 0.30) keeps the one thing that matters, which the
    pool still does itself before calling it: rolling back a transaction left open.
    """
