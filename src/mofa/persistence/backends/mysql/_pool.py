"""asyncmy and its pool: the lazy import, what every connection is, opening the pool."""

from __future__ import annotations

import ssl
from typing import Any, Final

from mofa.persistence._url import DatabaseURL
from mofa.persistence.backends.mysql._connect import (
    DRIVER_TIMEOUT_LIMIT,
    Target,
    ssl_context,
    within_connect_timeout,
)
from mofa.persistence.backends.mysql._errors import translate
from mofa.persistence.errors import MissingDependencyError

__all__ = ["abandon", "import_driver", "open_pool"]

_FOUND_ROWS: Final = 1 << 1  # CLIENT_FOUND_ROWS: UPDATE reports matched, not changed, rows


def import_driver() -> Any:
    """asyncmy, imported only when a store connects (the package imports no driver)."""
    try:
        import asyncmy
    except ImportError as exc:
        raise MissingDependencyError("MySQL", "asyncmy", "mysql") from exc
    return asyncmy


async def open_pool(driver: Any, target: Target, url: DatabaseURL, pool_size: int) -> Any:
    """Open the pool and its first connection, within ``target.connect_timeout``."""
    kwargs: dict[str, Any] = {
        "user": target.user,
        "password": target.password,
        "database": target.database,
        "charset": "utf8mb4",
        "autocommit": True,
        "init_command": "SET time_zone = '+00:00'",
        # The TCP connect only; within_connect_timeout bounds the whole opening.
        "connect_timeout": min(target.connect_timeout, DRIVER_TIMEOUT_LIMIT),
        "client_flag": _FOUND_ROWS,
        # Server-side prepared statements for the parameterised reads (binary protocol);
        # multi-statements cannot be prepared and go through the text protocol.
        "stmt_cache_size": 64,
    }
    if target.socket:
        kwargs["unix_socket"] = target.socket
    else:
        kwargs["host"] = target.host
        kwargs["port"] = target.port
    context = ssl_context(target, url)
    if context is not None:
        kwargs["ssl"] = context
    return await within_connect_timeout(_create_pool(driver, target, kwargs, pool_size), target)


async def _create_pool(driver: Any, target: Target, kwargs: dict[str, Any], pool_size: int) -> Any:
    try:
        return await driver.create_pool(minsize=1, maxsize=pool_size, **kwargs)
    except Exception as exc:
        tls_refused = isinstance(exc.__cause__, ssl.SSLError) or isinstance(exc, ssl.SSLError)
        if tls_refused and target.ssl_mode == "PREFERRED":
            # PREFERRED means TLS when the server offers it, plain otherwise.
            kwargs.pop("ssl", None)
            target.ssl_mode = "DISABLED"
            return await _create_pool(driver, target, kwargs, pool_size)
        raise translate(exc, target) from exc


async def abandon(connection: Any) -> None:
    """Leave no transaction open on a connection that goes back to the pool."""
    if not getattr(connection, "connected", False):
        return
    if connection.server_status & 1:  # SERVER_STATUS_IN_TRANS
        try:
            await connection.rollback()
        except Exception:
            connection.close()
