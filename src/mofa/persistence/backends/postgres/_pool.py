"""asyncpg and its pool: the lazy import, the connect options, opening the pool (with no
named prepared statements behind a pooler that shares server connections)."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from mofa.persistence._url import DatabaseURL
from mofa.persistence.backends._toolkit import check_flag, check_option, reject_unknown_options
from mofa.persistence.backends.postgres._errors import CONNECT, translate
from mofa.persistence.backends.postgres._pooler import Pooling, through_pooler
from mofa.persistence.backends.postgres._url import DriverURL
from mofa.persistence.errors import InvalidInputError, MissingDependencyError

__all__ = ["import_asyncpg", "open_connections", "open_pool"]

_DEFAULT_CONNECT_TIMEOUT: Final = 10.0
#: Prepared statements asyncpg keeps per connection when the connection pins its session.
_DEFAULT_STATEMENT_CACHE_SIZE: Final = 100
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
    "migrate_url",
)


def import_asyncpg() -> Any:
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
    statement_cache_size: int | None,
    max_inactive_connection_lifetime: float,
    create_schema: bool,
    options: dict[str, Any],
) -> tuple[Any, Pooling]:
    """Check :meth:`PostgresStore.connect`'s options (documented there), then open the pool.

    The first connection looks for a pooler (:mod:`._pooler`). Behind one that shares
    server connections (declared or found) the pool prepares no named statement: when one
    is found only now, the pool is opened again that way before any statement runs.

    Returns:
        The pool, with one connection open, and how its connections reach the server.
    """
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
    if statement_cache_size is not None:
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
    declared = Pooling(driver_url.pool_mode, detected=False)
    if statement_cache_size is None:
        statement_cache_size = _DEFAULT_STATEMENT_CACHE_SIZE if declared.pins_sessions else 0
    elif statement_cache_size > 0 and not declared.pins_sessions:
        raise InvalidInputError(
            f"statement_cache_size={statement_cache_size} asks for named prepared statements, "
            f"which do not work through a pooler in {driver_url.pool_mode} mode (the URL's "
            "pool_mode); leave statement_cache_size out."
        )
    asyncpg = import_asyncpg()

    async def create(cache_size: int) -> Any:
        try:
            return await asyncpg.create_pool(
                dsn=driver_url.dsn,
                port=driver_url.ports,
                # No floor for asyncpg to keep: newer asyncpg restores one in a background
                # task that logs a WARNING with a traceback for every failed attempt, which
                # an application that configured no logging prints to stderr all through an
                # outage. The store opens pool_min_size connections itself
                # (open_connections), and a call that finds none open opens one.
                min_size=0,
                max_size=pool_max_size,
                timeout=connect_timeout,
                command_timeout=command_timeout,
                statement_cache_size=cache_size,
                max_inactive_connection_lifetime=max_inactive_connection_lifetime,
                reset=_keep_session_state,
            )
        except Exception as exc:
            raise translate(exc, url, stage=CONNECT, write=False) from exc

    pool = await create(statement_cache_size)
    try:
        detected = await _detect_pooler(pool, url)
        pooling = Pooling(driver_url.pool_mode, detected)
        if statement_cache_size > 0 and not pooling.pins_sessions:
            await pool.close()  # one connection, no statement run on it but the probe
            pool = await create(0)
            await _detect_pooler(pool, url)  # opens its first connection, as promised
    except BaseException:
        pool.terminate()
        raise
    return pool, pooling


async def _detect_pooler(pool: Any, url: DatabaseURL) -> bool:
    """Open the pool's first connection and look for a pooler on it."""
    try:
        connection = await pool.acquire()
    except Exception as exc:
        raise translate(exc, url, stage=CONNECT, write=False) from exc
    try:
        return await through_pooler(connection)
    except Exception as exc:
        raise translate(exc, url, stage=CONNECT, write=False) from exc
    finally:
        await pool.release(connection)


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
