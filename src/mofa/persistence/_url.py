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
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

from mofa.persistence._registry import ACCEPTED_FORMS, scheme_backend
from mofa.persistence.errors import InvalidURLError

__all__ = [
    "ACCEPTED_FORMS",
    "SHOWN_PARAMETERS",
    "DatabaseURL",
    "mask_url",
    "parse_url",
    "scrub",
    "url_secrets",
]

_MASK = "****"
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_SCHEME_SLASHES_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/+")

#: Query parameters whose values are shown in messages and ``repr()``: where and how to
#: connect, never a secret. Every other parameter's value (``?password=``, ``?sslpassword=``,
#: a server setting…) is shown as ``****``, and so is a URL's fragment (``#…``).
SHOWN_PARAMETERS = frozenset(
    {
        # PostgreSQL (libpq names) and the store's own
        "application_name",
        "connect_timeout",
        "dbname",
        "host",
        "hostaddr",
        "pool_mode",
        "port",
        "search_path",
        "sslcert",
        "sslkey",
        "sslmode",
        "sslrootcert",
        "target_session_attrs",
        "user",
        # MySQL / MariaDB
        "protocol",
        "socket",
        "ssl-ca",
        "ssl-cert",
        "ssl-key",
        "ssl-mode",
        # OpenAI-compatible base URLs (Azure's API version)
        "api-version",
    }
)

#: Shortest secret that ``scrub`` replaces inside free text: shorter ones would also
#: replace ordinary words and numbers of the message (the URL itself is always masked).
_SHORTEST_SCRUBBED = 3


def _userinfo_secret(url: str) -> tuple[int, int, int] | None:
    """Where the password of ``url``'s user info is, as (start, end, end of the user info),
    or ``None`` when it has none. Works on malformed URLs too."""
    query_start = min((p for p in (url.find("?"), url.find("#")) if p >= 0), default=len(url))
    scheme_end = url.find("://")
    if scheme_end < 0 or scheme_end >= query_start:
        # Not scheme://…, a typing mistake such as "postgresql:/u:pw@h", "postgresql//u:pw@h"
        # or "u:pw@h": everything between the first ':' after any "scheme:/" and the last '@'
        # is secret, whatever it holds ('/', '?' and '#' included). Over-masking a malformed
        # URL (a scheme-less "scheme:user:pw@") is the safe side.
        at = url.rfind("@")
        prefix = _SCHEME_SLASHES_RE.match(url)
        first_colon = url.find(":", prefix.end() if prefix else 0, max(at, 0))
        return None if first_colon < 0 else (first_colon + 1, at, at)
    start = scheme_end + 3
    # The user info ends at the last '@' before the query: a password may hold a raw '@' or
    # '/', and masking must cover all of it even when the URL is otherwise malformed.
    at = url.rfind("@", start, query_start)
    if at < 0:
        # A raw '?' or '#' inside the password: mask up to the last '@' rather than leak.
        at = url.rfind("@", start)
    if at < 0:
        return None
    user, colon, _password = url[start:at].partition(":")
    if not colon or any(c in user for c in "/?#"):
        return None
    return start + len(user) + 1, at, at


def _segments(url: str) -> list[tuple[str, bool]]:
    """``url`` cut into (text, is_secret) pieces whose texts, joined, give ``url`` back.

    Secret: the user info's password, the value of every query parameter not in
    :data:`SHOWN_PARAMETERS` (and a bare ``?item`` not named there), and the fragment.
    """
    pieces: list[tuple[str, bool]] = []
    rest_start = 0
    userinfo = _userinfo_secret(url)
    if userinfo is not None:
        secret_start, secret_end, rest_start = userinfo
        pieces += [(url[:secret_start], False), (url[secret_start:secret_end], True)]
    rest = url[rest_start:]
    marks = [p for p in (rest.find("?"), rest.find("#")) if p >= 0]
    cut = min(marks, default=len(rest))
    pieces.append((rest[:cut], False))
    rest = rest[cut:]
    if rest.startswith("?"):
        query, hash_mark, fragment = rest[1:].partition("#")
        pieces.append(("?", False))
        for index, item in enumerate(query.split("&")):
            if index:
                pieces.append(("&", False))
            name, equals, value = item.partition("=")
            shown = unquote_plus(name).strip().lower() in SHOWN_PARAMETERS
            if equals:
                pieces += [(name + equals, False), (value, not shown)]
            else:
                pieces.append((item, not shown))
        rest = hash_mark + fragment
    if rest:
        pieces += [("#", False), (rest[1:], True)]
    return [(text, secret) for text, secret in pieces if text]


def mask_url(url: str) -> str:
    """Return ``url`` with its password, the values of query parameters that are not plain
    connection settings (see :data:`SHOWN_PARAMETERS`) and its fragment shown as ``****``.

    Works on malformed URLs too, so it is safe to use in every error message.
    """
    return "".join(_MASK if secret else text for text, secret in _segments(url))


def url_secrets(url: str) -> tuple[str, ...]:
    """What :func:`mask_url` hides in ``url``, as written and percent-decoded, longest first."""
    found: set[str] = set()
    for text, secret in _segments(url):
        if secret:
            found.update((text, unquote(text), unquote_plus(text)))
    return tuple(sorted(found, key=len, reverse=True))


def scrub(text: str, url: str) -> str:
    """``text`` with ``url`` masked and every secret of ``url`` replaced by ``****``.

    For messages that quote a driver or a server, which may repeat a value of the URL.
    """
    text = text.replace(url, mask_url(url))
    for secret in url_secrets(url):
        if len(secret) >= _SHORTEST_SCRUBBED:
            text = text.replace(secret, _MASK)
    return text


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A parsed database URL. ``str()`` and ``repr()`` show it masked (see :func:`mask_url`)."""

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
        """The URL as written, with its password and other secrets replaced by ``****``."""
        return mask_url(self.raw)


def parse_url(url: object) -> DatabaseURL:
    """Parse a database URL; raise :class:`InvalidURLError` naming the accepted forms."""
    if not isinstance(url, str):
        raise InvalidURLError(
            f"The database URL must be a string such as 'sqlite://./mofa.db', not "
            f"{'None' if url is None else type(url).__name__}; use one of: {ACCEPTED_FORMS}."
        )
    if not url.strip():
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
    what = "SQLite" if backend == "sqlite" else "file store"
    if "#" in path_part:
        # Everywhere else a '#' starts a fragment, which is masked as a secret: a path
        # holding one would be printed in the clear, and the URL would mean two things.
        raise InvalidURLError(
            f"The {what} URL {shown!r} holds a '#'; write a '#' in a path as %23."
        )
    authority = path_part.split("/", 1)[0]
    if ":" in authority.rpartition("@")[0]:
        raise InvalidURLError(
            f"The {what} URL {shown!r} holds a user name and password, which {scheme}: URLs "
            f"do not take; write {scheme}:///absolute/path (a '@' in a path as %40)."
        )
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
