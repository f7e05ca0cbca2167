"""Where and how the MySQL store connects: the URL's target and its TLS files.

The store (:mod:`mofa.persistence.backends.mysql`) runs the statements; this module turns a
``mysql://`` / ``mariadb://`` URL into the place to connect to, the account, and the TLS
settings, and checks the TLS files before any connection is tried.
"""

from __future__ import annotations

import ssl
from typing import Final

from mofa.persistence._url import DatabaseURL
from mofa.persistence.errors import InvalidURLError

__all__ = ["Target", "ssl_context"]

_DEFAULT_PORT: Final = 3306
_SSL_MODES: Final = ("DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
_QUERY_PARAMETERS: Final = ("socket", "password", "ssl-mode", "ssl-ca", "ssl-cert", "ssl-key")


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
    """Where and as whom to connect: the parts of the URL the driver and messages need."""

    def __init__(self, url: DatabaseURL) -> None:
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
        self.user = url.username or "root"
        self.password = url.password or ""
        self.socket = url.query.get("socket") or None
        self.host = url.host or "localhost"
        self.port = url.port or _DEFAULT_PORT
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
        if self.socket:
            return f"{self.admin} --socket={self.socket} ping"
        return f"{self.admin} -h {self.host} -P {self.port} ping"
