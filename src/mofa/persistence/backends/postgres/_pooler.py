"""A connection pooler (PgBouncer) between the store and PostgreSQL: what the URL declares and
what the connection shows.

PgBouncer in ``transaction`` (or ``statement``) mode hands a client's next transaction to
whichever server connection is free. Two things that live in a server session then break:

* named prepared statements (asyncpg caches one per statement text and connection): the next
  call may reach a server connection that does not have it ("prepared statement
  ``__asyncpg_stmt_7__`` does not exist"), or one where another client's statement holds the
  same name — the store prepares no named statement there (asyncpg's ``statement_cache_size
  =0``: each call parses an unnamed statement and runs it in the same message sequence);
* session-level locks and settings, which migrations need: they are refused through such a
  pooler, and run on a direct connection instead (``migrate_url=``, ``mofa db init -u``).

How the store knows. The URL may say it: ``?pool_mode=transaction|statement|session``. When it
does not, the store looks: PostgreSQL tells a client the process id of its server backend at
login (the cancel key), and ``pg_backend_pid()`` returns the same number on a direct
connection; a pooler answers the login itself, with a cancel key of its own, so the two
differ. One query when the store connects, sent with the simple protocol, so it leaves no
prepared statement behind. The signal shows that a pooler is there, not its mode: a pooler
found this way is taken to share server connections (the safe assumption) unless the URL
says ``?pool_mode=session``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Pooling", "through_pooler", "unpinned_refusal"]


@dataclass(frozen=True, slots=True)
class Pooling:
    """How the store's connections reach PostgreSQL."""

    #: The URL's ``?pool_mode=`` (``None``: not said).
    declared: str | None
    #: The first connection showed a pooler between the store and the server.
    detected: bool

    @property
    def pins_sessions(self) -> bool:
        """Each client connection keeps one server session (direct, or a session pooler):
        named prepared statements and session-level locks work."""
        if self.declared is not None:
            return self.declared == "session"
        return not self.detected

    def describe(self) -> str:
        """How the URL reaches the server, for messages."""
        if self.declared is not None:
            return f"a connection pooler in {self.declared} mode (the URL's pool_mode)"
        return "a connection pooler (such as PgBouncer)"


async def through_pooler(connection: Any) -> bool:
    """Whether a pooler answers ``connection``'s login in place of PostgreSQL (see above)."""
    login_pid = int(connection.get_server_pid())
    # execute() uses the simple query protocol: no statement is prepared, and its status
    # tag says whether the row matched. The pid is an int, formatted as a literal.
    status = await connection.execute(f"SELECT 1 WHERE pg_backend_pid() = {login_pid}")
    return bool(status != "SELECT 1")


def unpinned_refusal(
    where: str, pooling: Pooling, pending: tuple[int, ...], via: str = "this URL"
) -> str:
    """The message refusing to run ``pending`` migrations through a pooler that does not pin
    sessions (``via``: the URL that goes through it)."""
    versions = ", ".join(str(version) for version in pending)
    hint = (
        ""
        if pooling.declared is not None
        else " If your pooler keeps each client on one server session (PgBouncer's "
        "pool_mode=session), add ?pool_mode=session to the URL."
    )
    return (
        f"The {where} needs schema migration(s) {versions}, and {via} reaches it through "
        f"{pooling.describe()}, which may hand each transaction to another server session: "
        "a migration holds a session-level lock throughout, so it must run on a direct "
        "connection. Pass migrate_url= with a direct URL to PostgreSQL to open_store() or "
        "PostgresStore.connect(), or run `mofa db init -t postgres -u DIRECT_URL` once before "
        f"starting the application.{hint}"
    )
