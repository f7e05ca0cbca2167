"""Where and how the MySQL store connects: the URL's target, its TLS files, the timeout.

The store (:mod:`mofa.persistence.backends.mysql`) runs the statements; this module turns a
``mysql://`` / ``mariadb://`` URL into the place to connect to, the account, and the TLS
settings, checks the TLS files before any connection is tried, and bounds the opening.

The connect timeout (the ``connect_timeout`` option, else ``?connect_timeout=`` in the URL,
else 10 seconds) covers the whole opening of the pool's first connection: the TCP connect,
the server's greeting, TLS, the login and the session settings. asyncmy's own timeout stops
at the TCP connect, so a server that accepts a connection and never sends its greeting (a
hung server, another service on the port) would otherwise be waited for forever.

Host ``localhost`` is read as the ``mysql`` client reads it: the server's unix socket, the
first of ``$MYSQL_UNIX_PORT``, ``/run/mysqld/mysqld.sock``, ``/var/run/mysqld/mysqld.sock``
and ``/tmp/mysql.sock`` that is a socket (the port is then unused), so an account created as
``'user'@'localhost'`` logs in as written (over TCP the server may see ``127.0.0.1`` instead,
and with ``skip_name_resolve`` never ``localhost``). ``?protocol=tcp`` keeps ``localhost`` on
TCP; ``?protocol=socket`` uses the socket whatever the host; ``?socket=PATH`` always wins.
When no socket is found, ``localhost`` is reached over TCP. A refused login names these
parameters in its error.
"""

from __future__ import annotations

import asyncio
import math
import os
import ssl
import stat
from collections.abc import Awaitable
from typing import Final, TypeVar

from mofa.persistence._url import DatabaseURL
from mofa.persistence.errors import InvalidInputError, InvalidURLError, StoreConnectionError

__all__ = [
    "DRIVER_TIMEOUT_LIMIT",
    "SOCKET_PATHS",
    "Target",
    "find_socket",
    "ssl_context",
    "within_connect_timeout",
]

_DEFAULT_PORT: Final = 3306
_DEFAULT_CONNECT_TIMEOUT: Final = 10.0
#: The longest TCP connect timeout asyncmy accepts (a year); the deadline here bounds it anyway.
DRIVER_TIMEOUT_LIMIT: Final = 31_536_000.0
_SSL_MODES: Final = ("DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
_QUERY_PARAMETERS: Final = (
    "socket",
    "password",
    "connect_timeout",
    "protocol",
    "ssl-mode",
    "ssl-ca",
    "ssl-cert",
    "ssl-key",
)
_PROTOCOLS: Final = ("TCP", "SOCKET")
#: Where MySQL and MariaDB packages put the server's socket, probed in this order after
#: $MYSQL_UNIX_PORT (the mysql client's own variable).
SOCKET_PATHS: tuple[str, ...] = (
    "/run/mysqld/mysqld.sock",
    "/var/run/mysqld/mysqld.sock",
    "/tmp/mysql.sock",  # MySQL's own builds
)

T = TypeVar("T")


class _EncryptedKey(Exception):
    """Raised by :func:`_no_passphrase`: the key file asks for a passphrase."""


def _no_passphrase() -> str:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key's passphrase.
    raise _EncryptedKey


def _unreadable(path: str) -> str | None:
    """Why ``path`` cannot be read as a file (the end of an error sentence), or ``None``."""
    try:
        with open(path, "rb") as file:
            file.read(1)
    except FileNotFoundError:
        return "does not exist"
    except IsADirectoryError:
        return "is a directory, not a file"
    except PermissionError:
        return "cannot be read by this process (permission denied)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except ValueError:  # a NUL character (%00) in the path
        return "is not a valid path"
    return None


def ssl_context(target: Target, url: DatabaseURL) -> ssl.SSLContext | None:
    """The TLS settings for ``target.ssl_mode``, with the URL's ssl-ca / ssl-cert / ssl-key.

    The files are read here, before any connection is tried: a missing, unreadable or
    non-PEM one is an :class:`InvalidURLError` naming the parameter, the path and the reason.
    """
    if target.ssl_mode == "DISABLED":
        return None
    ca, cert, key = (url.query.get(name) or None for name in ("ssl-ca", "ssl-cert", "ssl-key"))
    if key and not cert:
        raise InvalidURLError(
            f"The {target.label} URL {url.masked!r} has ssl-key but no ssl-cert; add "
            "ssl-cert=/path/client-cert.pem (the certificate of that key), or remove ssl-key."
        )
    for name, path in (("ssl-ca", ca), ("ssl-cert", cert), ("ssl-key", key)):
        if path and (problem := _unreadable(path)):
            raise _file_error(
                url, name, path, problem, "give the path of a PEM file this process can read"
            )
    verify = target.ssl_mode in ("VERIFY_CA", "VERIFY_IDENTITY")
    try:
        context = ssl.create_default_context(cafile=ca)
    except (ssl.SSLError, OSError, ValueError):
        raise _file_error(
            url,
            "ssl-ca",
            ca or "",
            _NOT_A_CERTIFICATE,
            "give the certificate of the CA that signed the server's certificate, in PEM form",
        ) from None
    context.check_hostname = target.ssl_mode == "VERIFY_IDENTITY"
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    if cert:
        try:
            context.load_cert_chain(cert, keyfile=key, password=_no_passphrase)
        except _EncryptedKey:
            raise _file_error(
                url,
                "ssl-key" if key else "ssl-cert",
                key or cert,
                "holds a private key protected by a passphrase, which a URL cannot supply",
                "give an unencrypted copy of the key (openssl pkey -in KEY -out PLAIN_KEY)",
            ) from None
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise _cert_chain_error(exc, url, cert, key) from None
    return context


_NOT_A_CERTIFICATE: Final = (
    "is not a PEM certificate (no -----BEGIN CERTIFICATE----- block was found)"
)


def _file_error(url: DatabaseURL, name: str, path: str, problem: str, fix: str) -> InvalidURLError:
    """The URL parameter ``name`` names a file that cannot serve: what is wrong and the fix."""
    return InvalidURLError(f"The {name} file {path!r} in {url.masked!r} {problem}; {fix}.")


def _cert_chain_error(
    exc: Exception, url: DatabaseURL, cert: str, key: str | None
) -> InvalidURLError:
    """Which of ssl-cert / ssl-key made ``load_cert_chain`` fail, and why."""
    if isinstance(exc, ssl.SSLError) and exc.reason == "KEY_VALUES_MISMATCH":
        return _file_error(
            url,
            "ssl-key" if key else "ssl-cert",
            key or cert,
            "holds a private key that does not belong to the certificate in ssl-cert",
            "give the key that was issued with that certificate",
        )
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except (ssl.SSLError, OSError, ValueError):
        return _file_error(
            url,
            "ssl-cert",
            cert,
            _NOT_A_CERTIFICATE,
            "give the client certificate in PEM form",
        )
    if key:
        return _file_error(
            url,
            "ssl-key",
            key,
            "is not a PEM private key (no -----BEGIN … PRIVATE KEY----- block was found)",
            "give the client's private key in PEM form",
        )
    return _file_error(
        url,
        "ssl-cert",
        cert,
        "holds a certificate but no private key",
        "add ssl-key=/path/client-key.pem with the key of that certificate",
    )


class Target:
    """Where and as whom to connect: the parts of the URL the driver and messages need.

    ``connect_timeout`` is the option given to ``connect`` (``None``: the URL's
    ``?connect_timeout=``, else 10 seconds).
    """

    def __init__(self, url: DatabaseURL, connect_timeout: float | None = None) -> None:
        self.label = "MariaDB" if url.scheme == "mariadb" else "MySQL"
        unknown = sorted(set(url.query) - set(_QUERY_PARAMETERS))
        if unknown:
            raise InvalidURLError(
                f"Unknown {self.label} URL parameter {unknown[0]!r} in {url.masked!r}; "
                f"use: {', '.join(_QUERY_PARAMETERS)}."
            )
        if not url.database:
            raise InvalidURLError(
                f"The {self.label} URL {url.masked!r} names no database; write "
                f"{url.scheme}://user:password@host:port/database."
            )
        self.database = url.database
        # Checked even when the option wins: a wrong URL is reported, not silently ignored.
        from_url = _url_seconds(url, self.label)
        if connect_timeout is not None and not connect_timeout > 0:  # also refuses NaN
            raise InvalidInputError(
                f"connect_timeout must be a number > 0 (seconds), not {connect_timeout!r}."
            )
        self.connect_timeout: float = connect_timeout or from_url or _DEFAULT_CONNECT_TIMEOUT
        self.user = url.username or "root"
        self.password = url.password or ""
        self.host = url.host or "localhost"
        self.port = url.port or _DEFAULT_PORT
        self.protocol = _protocol(url, self.label)
        given = url.query.get("socket") or None
        self.socket_given = given is not None
        self.socket = given
        local = self.host.lower() == "localhost"
        if given is None and (self.protocol == "SOCKET" or (local and self.protocol is None)):
            self.socket = find_socket()
            if self.socket is None and self.protocol == "SOCKET":
                raise StoreConnectionError(
                    f"Failed to connect to {self.label}: the URL asks for protocol=socket, but "
                    f"no server socket was found at {', '.join(_socket_candidates())}; give "
                    "its path with ?socket=/path/to/mysqld.sock, or use protocol=tcp."
                )
        mode = url.query.get("ssl-mode", "PREFERRED").upper().replace("-", "_")
        if mode not in _SSL_MODES:
            raise InvalidURLError(
                f"Unknown ssl-mode {url.query.get('ssl-mode')!r} in {url.masked!r}; "
                f"use one of: {', '.join(_SSL_MODES)}."
            )
        # TLS over a local socket adds nothing (the mysql client skips it there too).
        self.ssl_mode = "DISABLED" if self.socket and mode == "PREFERRED" else mode
        self.where = f"socket {self.socket}" if self.socket else f"{self.host}:{self.port}"
        #: The account the server matched, as GRANT names it ('user'@'host pattern'), once
        #: connected; the host in an error message is the client's address instead.
        self.account: str | None = None
        self.admin = "mariadb-admin" if url.scheme == "mariadb" else "mysqladmin"

    def ping_hint(self) -> str:
        if self.socket and not self.socket_given:  # chosen here: say how to choose TCP
            return (
                f"{self.admin} --socket={self.socket} ping, or use ?protocol=tcp to connect "
                f"to {self.host}:{self.port} over TCP instead"
            )
        if self.socket:
            return f"{self.admin} --socket={self.socket} ping"
        return f"{self.admin} -h {self.host} -P {self.port} ping"

    def denied_hint(self) -> str:
        """The end of a refused login's message for an account of localhost: how the login
        came and the URL parameters that change it ("" for a TCP login to another host)."""
        account = f"'{self.user}'@'localhost'"
        if self.socket_given:
            return (
                f"; the login came over the socket given by ?socket=, as {account}: remove "
                "?socket= and use ?protocol=tcp to log in over TCP"
            )
        if self.socket:
            return (
                f"; the login came over the server's unix socket, as {account}: use "
                "?protocol=tcp to log in over TCP, or ?socket=/path/to/mysqld.sock for "
                "another socket"
            )
        if self.host.lower() != "localhost":
            return ""
        if self.protocol == "TCP":
            return (
                "; the login came over TCP (?protocol=tcp), where the server may not match "
                f"an account {account} as it does over its unix socket: drop ?protocol=tcp, "
                "or give ?socket=/path/to/mysqld.sock"
            )
        return (
            "; the login came over TCP because no server socket was found at "
            f"{', '.join(_socket_candidates())}, and over TCP the server may not match an "
            f"account {account}: give the socket's path with ?socket=/path/to/mysqld.sock"
        )


def _protocol(url: DatabaseURL, label: str) -> str | None:
    """The URL's ``?protocol=`` (TCP or SOCKET, any case), ``None`` when it has none."""
    text = url.query.get("protocol")
    if text is None:
        return None
    if text.upper() not in _PROTOCOLS:
        raise InvalidURLError(
            f"Unknown {label} protocol {text!r} in {url.masked!r}; use protocol=tcp or "
            "protocol=socket."
        )
    return text.upper()


def _socket_candidates() -> list[str]:
    from_environment = os.environ.get("MYSQL_UNIX_PORT")
    return [from_environment, *SOCKET_PATHS] if from_environment else list(SOCKET_PATHS)


def find_socket() -> str | None:
    """The server socket ``localhost`` means: the first candidate path that is a socket.

    A regular file or a directory at one of the paths is passed over: it is no server.
    """
    for path in _socket_candidates():
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return path
        except (OSError, ValueError):  # missing, unreadable directory, NUL in the variable
            continue
    return None


def _url_seconds(url: DatabaseURL, label: str) -> float | None:
    """The URL's ``?connect_timeout=`` in seconds, ``None`` when it has none."""
    text = url.query.get("connect_timeout")
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidURLError(
            f"The {label} URL {url.masked!r} has connect_timeout={text!r}, which is not a "
            "positive number of seconds; write e.g. connect_timeout=10, or pass "
            "connect_timeout= to open_store()."
        )
    return seconds


async def within_connect_timeout(opening: Awaitable[T], target: Target) -> T:
    """Await ``opening`` (the pool and its first connection), giving up after
    ``target.connect_timeout`` seconds with :class:`StoreConnectionError`.

    The deadline cancels the opening where it waits; asyncmy closes a connection cancelled
    mid-handshake, and the pool that was being made holds no other, so nothing is left open
    and no task is left running.
    """
    deadline = asyncio.timeout(target.connect_timeout)
    try:
        async with deadline:
            return await opening
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        # The cancelled connection's transport closes its socket in a callback: one turn of
        # the loop runs it, so the socket is closed when the caller sees the error.
        await asyncio.sleep(0)
        raise StoreConnectionError(
            f"Failed to connect to {target.label} at {target.where}: the server did not answer "
            f"the handshake within {target.connect_timeout:g} s — is a {target.label} server "
            f"listening there, and is it responding? Check with: {target.ping_hint()}"
        ) from exc
