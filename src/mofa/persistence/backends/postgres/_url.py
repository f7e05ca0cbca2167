"""The PostgreSQL URL: where it points (for messages) and what asyncpg is given."""

from __future__ import annotations

import getpass
import math
import os
from typing import Final
from urllib.parse import quote, unquote_plus, urlsplit

from mofa.persistence._url import DatabaseURL
from mofa.persistence.errors import InvalidURLError

__all__ = [
    "DEFAULT_PORT",
    "POOL_MODES",
    "DriverURL",
    "Target",
]

DEFAULT_PORT: Final = 5432


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (e.g. a bare container uid)
        return "(the operating-system user)"


class Target:
    """Where the URL points, for error messages (never holds the password)."""

    __slots__ = ("database", "host", "port", "schema", "user")

    def __init__(self, url: DatabaseURL) -> None:
        query = url.query
        host = url.host or query.get("host") or os.environ.get("PGHOST") or "localhost"
        # A list of hosts ("a,b") or a socket directory: show the first, as libpq would try it.
        self.host = host.split(",")[0]
        # libpq's order: ?port= overrides the authority's port, PGPORT is the fallback (a
        # list of ports, one per host: show the first).
        ports = (query.get("port"), url.port, os.environ.get("PGPORT"))
        port_text = next((str(port) for port in ports if port), "").split(",")[0]
        self.port = _port_number(port_text) or DEFAULT_PORT
        # libpq's default user: PGUSER, else the operating-system user.
        self.user = url.username or query.get("user") or os.environ.get("PGUSER") or _os_user()
        self.database = url.database or query.get("dbname") or self.user
        # Where the tables are: the first schema of ?search_path= (as the store sets it).
        first = (query.get("search_path") or "").split(",")[0].strip().strip('"')
        self.schema = first if first and first != "$user" else "public"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def client_flags(self) -> str:
        """``-h HOST -p PORT`` for pg_isready / createdb, as the URL would need them."""
        return f"-h {self.host} -p {self.port}"


def _port_number(text: str) -> int | None:
    """``text`` as a TCP port (1-65535), or ``None``."""
    digits = text.lstrip("0")  # bounded before int(): a 5000-digit string is a ValueError
    if text.isascii() and text.isdigit() and 0 < len(digits) <= 5 and int(digits) <= 65535:
        return int(digits)
    return None


def _encode_userinfo(url: DatabaseURL) -> str:
    """``url.raw`` with an unencoded ``@`` in the user name or password percent-encoded.

    Ours and MySQL's parsing split the authority at its last ``@`` (as browsers do), asyncpg
    at its first, which would take the rest of the password for the host name.
    """
    netloc = urlsplit(url.raw).netloc
    userinfo, at, _host = netloc.rpartition("@")
    if not at or "@" not in userinfo:
        return url.raw
    encoded = quote(url.username or "", safe="")
    if url.password is not None and ":" in userinfo:
        encoded += ":" + quote(url.password, safe="")
    return url.raw.replace(netloc, encoded + netloc[len(userinfo) :], 1)


#: The values of ``?pool_mode=``: PgBouncer's names for how it shares server connections.
POOL_MODES: Final = ("session", "transaction", "statement")
#: Parameters the store reads itself; asyncpg would send them to the server as settings.
_STORE_PARAMETERS: Final = frozenset({"connect_timeout", "pool_mode"})


class DriverURL:
    """The URL as asyncpg is given it, with the libpq parameters asyncpg gets wrong handled here.

    * ``?port=`` must be integers 1–65535 (asyncpg would fail with an OverflowError, or
      ignore the parameter when the URL names a host); the ports go to asyncpg explicitly
      and, as in libpq, override a port in the authority;
    * ``?connect_timeout=`` (seconds) is taken out of the DSN, as asyncpg would send it to the
      server as a setting, and becomes the connect timeout;
    * ``?pool_mode=session|transaction|statement`` (the store's own: how the pooler the URL
      goes through shares server connections, see :mod:`._pooler`) is taken out too.
    """

    __slots__ = ("connect_timeout", "dsn", "pool_mode", "ports")

    def __init__(self, url: DatabaseURL) -> None:
        query = url.query
        self.ports: list[int] | None = None
        if "port" in query:
            ports = [_port_number(part) for part in query["port"].split(",")]
            if None in ports:
                raise InvalidURLError(
                    f"The PostgreSQL URL {url.masked!r} has port={query['port']!r}, which is not "
                    "a port number; write an integer from 1 to 65535 (or one per host, "
                    "comma-separated), e.g. port=5432."
                )
            self.ports = [port for port in ports if port is not None]
        self.connect_timeout: float | None = None
        self.dsn = _encode_userinfo(url)
        if "connect_timeout" in query:
            try:
                seconds = float(query["connect_timeout"])
            except ValueError:
                seconds = math.nan
            if not (math.isfinite(seconds) and seconds > 0):
                raise InvalidURLError(
                    f"The PostgreSQL URL {url.masked!r} has connect_timeout="
                    f"{query['connect_timeout']!r}, which is not a positive number of seconds; "
                    "write e.g. connect_timeout=10, or pass connect_timeout= to open_store()."
                )
            self.connect_timeout = seconds
        self.pool_mode: str | None = query.get("pool_mode")
        if self.pool_mode is not None and self.pool_mode not in POOL_MODES:
            raise InvalidURLError(
                f"The PostgreSQL URL {url.masked!r} has pool_mode={self.pool_mode!r}; write "
                "pool_mode=transaction (or statement) for a PgBouncer that shares server "
                "connections between transactions, pool_mode=session for one that pins them."
            )
        if _STORE_PARAMETERS.intersection(query):
            self.dsn = _without_parameters(self.dsn, _STORE_PARAMETERS)


def _without_parameters(dsn: str, names: frozenset[str]) -> str:
    """``dsn`` without the query parameters ``names`` (the rest kept as written)."""
    # The query starts at the first '?' (a '#' before it would leave no query at all).
    base, _, rest = dsn.partition("?")
    query_text, hash_mark, fragment = rest.partition("#")
    kept = [
        item for item in query_text.split("&") if unquote_plus(item.partition("=")[0]) not in names
    ]
    return base + ("?" + "&".join(kept) if kept else "") + hash_mark + fragment
