"""Database URLs: parsing, and a printable form that never shows a password.

Accepted forms::

    postgres://user:pass@host:5432/db?sslmode=require   postgresql:///db?host=/var/run/postgresql
    mysql://user:pass@host:3306/db?ssl-mode=REQUIRED    mariadb://user:pass@localhost/db?socket=/x.sock
    sqlite://./relative.db   sqlite:///absolute.db   sqlite://name.db   sqlite::memory:
    memory://                file:///absolute/dir    file://./relative/dir

``sqlite:`` and ``file:`` URLs take no parameters: a query string is an error (ignoring
``?mode=ro`` would open the file read-write); options go to ``open_store(url, **options)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from mofa.persistence.errors import InvalidURLError

__all__ = ["ACCEPTED_FORMS", "DatabaseURL", "mask_url", "parse_url"]

ACCEPTED_FORMS = (
    "postgres://, postgresql://, mysql://, mariadb://, sqlite://PATH, sqlite:///ABS_PATH, "
    "sqlite::memory:, memory://, file:///DIR"
)

#: URL scheme -> backend name.
_SCHEMES = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "memory": "memory",
    "file": "files",
}


def scheme_backend(scheme: str) -> str | None:
    """The backend a URL scheme (or agent.yml's ``type``) names, ``None`` for an unknown one."""
    return _SCHEMES.get(scheme.lower())


_MASK = "****"
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_SCHEME_SLASHES_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/+")
_PASSWORD_PARAM_RE = re.compile(r"([?&](?:password|pass|pwd)=)([^&#]*)", re.IGNORECASE)


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``****``.

    Works on malformed URLs too, so it is safe to use in every error message.
    """
    masked = _PASSWORD_PARAM_RE.sub(lambda m: m.group(1) + _MASK, url)
    query_start = min(
        (p for p in (masked.find("?"), masked.find("#")) if p >= 0), default=len(masked)
    )
    scheme_end = masked.find("://")
    if scheme_end >= 0 and scheme_end < query_start:
        start = scheme_end + 3
        # The user info ends at the last '@' before the query: a password may hold a raw '@'
        # or '/', and masking must cover all of it even when the URL is otherwise malformed.
        at = masked.rfind("@", start, query_start)
        if at < 0:
            # A raw '?' or '#' inside the password: mask up to the last '@' rather than leak.
            at = masked.rfind("@", start)
    else:
        # Not scheme://…, a typing mistake such as "postgresql:/u:pw@h", "postgresql//u:pw@h"
        # or "u:pw@h": everything between the first ':' after any "scheme:/" and the last '@'
        # is masked, whatever it holds ('/', '?' and '#' included). Over-masking a malformed
        # URL (a scheme-less "scheme:user:pw@") is the safe side.
        at = masked.rfind("@")
        prefix = _SCHEME_SLASHES_RE.match(masked)
        first_colon = masked.find(":", prefix.end() if prefix else 0, max(at, 0))
        if first_colon < 0:
            return masked
        return f"{masked[: first_colon + 1]}{_MASK}{masked[at:]}"
    if at < 0:
        return masked
    user, colon, _password = masked[start:at].partition(":")
    if not colon or any(c in user for c in "/?#"):
        return masked
    return f"{masked[:start]}{user}:{_MASK}{masked[at:]}"


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A parsed database URL. ``str()`` and ``repr()`` show it with the password masked."""

    raw: str = field(repr=False)
    scheme: str
    backend: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    path: str | None = None
    query: dict[str, str] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        return mask_url(self.raw)

    def __repr__(self) -> str:
        return f"DatabaseURL({mask_url(self.raw)!r})"

    @property
    def masked(self) -> str:
        """The URL as written, with any password replaced by ``****``."""
        return mask_url(self.raw)


def parse_url(url: str) -> DatabaseURL:
    """Parse a database URL; raise :class:`InvalidURLError` naming the accepted forms."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidURLError(f"The database URL is empty; use one of: {ACCEPTED_FORMS}.")
    url = url.strip()
    shown = mask_url(url)
    match = _SCHEME_RE.match(url)
    if match is None:
        raise InvalidURLError(
            f"The database URL {shown!r} has no scheme; use one of: {ACCEPTED_FORMS}."
        )
    scheme = match.group(1).lower()
    backend = scheme_backend(scheme)
    if backend is None:
        raise InvalidURLError(
            f"Unsupported database URL scheme {scheme!r} in {shown!r}; "
            f"use one of: {ACCEPTED_FORMS}."
        )
    rest = url[match.end() :]
    if backend == "memory":
        if rest.strip("/"):
            raise InvalidURLError(
                f"The in-memory store takes no host, path or options ({shown!r}); write memory://."
            )
        return DatabaseURL(raw=url, scheme=scheme, backend=backend)
    if backend in ("sqlite", "files"):
        return _parse_path_url(url, scheme, backend, rest, shown)
    return _parse_server_url(url, scheme, backend, shown)


def _parse_path_url(url: str, scheme: str, backend: str, rest: str, shown: str) -> DatabaseURL:
    if backend == "sqlite" and rest in (":memory:", "//:memory:"):
        return DatabaseURL(raw=url, scheme=scheme, backend=backend, path=":memory:")
    if not rest.startswith("//"):
        raise InvalidURLError(
            f"The database URL {shown!r} is malformed; write {scheme}://./relative/path, "
            f"{scheme}:///absolute/path" + (" or sqlite::memory:." if backend == "sqlite" else ".")
        )
    path_part, question, query_text = rest[2:].partition("?")
    if question:
        raise InvalidURLError(_no_parameters(scheme, backend, query_text, shown))
    if path_part.startswith("localhost/"):
        path_part = path_part[len("localhost") :]
    path = unquote(path_part)
    if not path:
        raise InvalidURLError(f"The database URL {shown!r} names no path.")
    if "\x00" in path:
        raise InvalidURLError(f"The database URL {shown!r} contains a NUL character.")
    return DatabaseURL(raw=url, scheme=scheme, backend=backend, path=path)


def _no_parameters(scheme: str, backend: str, query_text: str, shown: str) -> str:
    """The error for a query string on a sqlite: or file: URL, which take no parameters
    (ignoring one silently would, e.g., open ``?mode=ro`` read-write)."""
    pairs = parse_qsl(query_text, keep_blank_values=True)
    names = list(dict.fromkeys(name for name, _ in pairs))
    if not names:
        has = "an empty query string ('?')"
    elif len(names) == 1:
        has = f"the parameter {names[0]!r}"
    else:
        has = f"the parameters {', '.join(repr(name) for name in names)}"
    if backend == "sqlite":
        read_only = " and read-only opening is not supported" if ("mode", "ro") in pairs else ""
        return (
            f"The SQLite URL {shown!r} has {has}, but {scheme}: URLs take no parameters"
            f"{read_only}; remove the query string (busy_timeout and lock_timeout are keyword "
            "options of open_store() and SqliteStore.connect(), not URL parameters; write a '?' "
            "in a file name as %3F)."
        )
    return (
        f"The file store URL {shown!r} has {has}, but {scheme}: URLs take no parameters; remove "
        "the query string (max_workers is a keyword option of open_store() and "
        "FileStore.connect(), not a URL parameter; write a '?' in a directory name as %3F)."
    )


def _parse_server_url(url: str, scheme: str, backend: str, shown: str) -> DatabaseURL:
    if not url[len(scheme) + 1 :].startswith("//"):
        raise InvalidURLError(
            f"The database URL {shown!r} is malformed; write "
            f"{scheme}://user:password@host:port/database."
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURLError(
            f"The database URL {shown!r} is malformed ({_describe(exc)}); write "
            f"{scheme}://user:password@host:port/database."
        ) from None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    database = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and "password" in query:
        password = query["password"]
    return DatabaseURL(
        raw=url,
        scheme=scheme,
        backend=backend,
        username=unquote(parts.username) if parts.username else None,
        password=password,
        host=unquote(parts.hostname) if parts.hostname else None,
        port=port,
        database=database or None,
        query=query,
    )


def _describe(exc: ValueError) -> str:
    text = str(exc)
    if "Port" in text or "port" in text:
        return (
            "the port is not a number between 0 and 65535; if a password holds '/', '?', '#' "
            "or '@', percent-encode it (%2F, %3F, %23, %40)"
        )
    return "it cannot be parsed"
