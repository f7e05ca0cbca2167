"""The SQLite store: the standard library's ``sqlite3`` on a dedicated worker thread.

Usage::

    from mofa.persistence import SqliteStore

    async with await SqliteStore.connect("sqlite://./mofa.db") as store:
        session = await store.create_session(agent_id="my-agent", user_id="u1")
        await store.append_message(session.session_id, "user", "Hello")
        history = await store.list_recent_messages(session.session_id, limit=20)

URLs: ``sqlite://./relative.db``, ``sqlite://name.db``, ``sqlite:///absolute.db``,
``sqlite://~/in/home.db`` and ``sqlite::memory:``. A missing file (and its missing parent
directories) is created, readable by its owner only; the schema is created or upgraded on
connect.

How it works: one thread owns the one connection. Every call ships a whole transaction (all
its statements) to that thread in one hop and the event loop waits on a future, so it never
blocks on disk. The database runs in WAL mode with ``synchronous=FULL`` (an acknowledged write
survives a crash or a power cut) and foreign keys on. Writes start with ``BEGIN IMMEDIATE``,
so several processes on one file take turns instead of failing halfway through; when the file
stays locked past ``busy_timeout`` the store backs off and retries (nothing has been written
yet) until ``lock_timeout``. Writes that queue up behind each other (concurrent tasks) share
one commit, each in its own savepoint, so they cost one fsync and still fail alone. A call is
acknowledged only after its commit; cancelling a call stops the wait, not a transaction that
was already handed to the thread. A store opened with ``create_schema=False`` leaves the
file's journal mode as it is (a rollback journal stays one).
"""

from __future__ import annotations

from mofa.persistence.backends.sqlite._store import SqliteStore

__all__ = ["SqliteStore"]
