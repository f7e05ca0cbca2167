"""asyncpg and its pool: the lazy import, the connect options, opening the pool."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from mofa.persistence._url import DatabaseURL
from mofa.persistence.backends._toolkit import check_flag, check_option, reject_unknown_options
from mofa.persistence.backends.postgres._errors import CONNECT, translate
from mofa.persistence.backends.postgres._url import DriverURL
from mofa.persistence.errors import InvalidInputError, MissingDependencyError

__all__ = ["open_connections", "open_pool"]

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


async def open_pool(
    url: DatabaseURL,
    *,
    pool_min_size: int,
    pool_max_size: int | None,
    connect_timeout: float | None,
    command_timeout: float | None,
    statement_cache_size: int,
    max_inactive_connection_lifetime: float,
    create_schema: bool,
    options: dict[str, Any],
) -> Any:
    """Check :meth:`PostgresStore.connect`'s options (documented there), then open the pool."""
    max_size_name = "pool_max_size"
    if "pool_size" in options:
        if pool_max_size is not None:
            raise InvalidInputError(
                "pool_size and pool_max_size are two names for one option; pass one."
            )
        # Checked under its own name: the user did not write pool_max_size.
        max_size_name = "pool_size"
        pool_max_size = options.pop("pool_size")
        check_option("pool_size", pool_max_size, integer=True, minimum=1)
    if pool_max_size is None:
        pool_max_size = _DEFAULT_POOL_SIZE
    reject_unknown_options("PostgresStore", options, _OPTIONS)
    check_option("pool_min_size", pool_min_size, integer=True)
    check_flag("create_schema", create_schema)
    check_option("pool_max_size", pool_max_size, integer=True)
    check_option("statement_cache_size", statement_cache_size, integer=True)
    if connect_timeout is not None:
        check_option("connect_timeout", connect_timeout)
    check_option("max_inactive_connection_lifetime", max_inactive_connection_lifetime)
    if command_timeout is not None:
        check_option("command_timeout", command_timeout, minimum=0.001)
    if pool_max_size < max(pool_min_size, 1):
        raise InvalidInputError(
            f"{max_size_name} ({pool_max_size}) must be at least 1 and at least "
            f"pool_min_size ({pool_min_size})."
        )
    driver_url = DriverURL(url)
    if connect_timeout is None:
        connect_timeout = driver_url.connect_timeout or _DEFAULT_CONNECT_TIMEOUT
    asyncpg = _import_asyncpg()
    try:
        return await asyncpg.create_pool(
            dsn=driver_url.dsn,
            port=driver_url.ports,
            # No floor for asyncpg to keep: newer asyncpg restores one in a background task
            # that logs a WARNING with a traceback for every failed attempt, which an
            # application that configured no logging prints to stderr all through an
            # outage. The store opens pool_min_size connections itself (open_connections),
            # and a call that finds none open opens one.
            min_size=0,
            max_size=pool_max_size,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            statement_cache_size=statement_cache_size,
            max_inactive_connection_lifetime=max_inactive_connection_lifetime,
            reset=_keep_session_state,
        )
    except Exception as exc:
        raise translate(exc, url, stage=CONNECT, write=False) from exc


async def open_connections(pool: Any, url: DatabaseURL, count: int) -> None:
    """Have ``count`` connections open in the pool (one is, after the schema check)."""
    if count <= 1:
        return
    acquired = await asyncio.gather(*(pool.acquire() for _ in range(count)), return_exceptions=True)
    for connection in acquired:
        if not isinstance(connection, BaseException):
            await pool.release(connection)
    for failure in acquired:
        if isinstance(failure, BaseException):
            raise translate(failure, url, stage=CONNECT, write=False) from failure
