"""The PostgreSQL store: asyncpg with a connection pool.

Usage::

    from mofa.persistence import PostgresStore

    async with await PostgresStore.connect("postgres://user:pass@localhost/mofa") as store:
        session = await store.create_session(agent_id="my-agent", user_id="u1")
        await store.append_message(session.session_id, "user", "Hello")
        history = await store.list_recent_messages(session.session_id, limit=20)

URLs are libpq's (asyncpg parses them): ``postgresql://user:password@host:port/database``,
percent-encoded passwords, ``?sslmode=disable|prefer|require|verify-full``, a unix socket
(``postgresql:///mofa?host=/var/run/postgresql``), ``?password=``, ``?port=``,
``?connect_timeout=`` (seconds; the ``connect_timeout`` option wins over it); other parameters
are sent to the server as settings (``?application_name=…``). ``?pool_mode=transaction|
statement|session`` says how a pooler in front of the server shares its connections (see
below). Tuning goes on :meth:`PostgresStore.connect` (``pool_min_size``, ``pool_max_size``,
``connect_timeout``, ``migrate_url``…).

Behind PgBouncer in transaction mode (found on connect, or said by ``?pool_mode=``) the store
prepares no named statement, and refuses to migrate the schema there: migrations run on
``migrate_url=`` (a direct URL, opened only when one is due) or ``mofa db init -u`` (see
:mod:`._pooler`)::

    store = await PostgresStore.connect(
        "postgresql://app@pgbouncer:6432/mofa", migrate_url="postgresql://app@db:5432/mofa"
    )

How it stays close to the raw driver:

* one pooled connection per call, with asyncpg's per-release reset switched off (see
  :func:`_keep_session_state`), and asyncpg's per-connection prepared-statement cache;
* an append is ONE statement (a CTE that bumps ``sessions.message_count`` and inserts the
  row), a batch is ONE statement over ``unnest()`` arrays; the session row lock the ``UPDATE``
  takes serializes concurrent appends, so ``seq`` is gap-free;
* JSON travels as text and is decoded once with orjson; nothing checks the schema per call
  (the schema is created or upgraded once, on connect, under a session-level advisory
  lock, by the online runner of ``_sql._online``);
* an owner scope (``owner=``) is a condition inside the call's one statement, never a
  separate check: each scoped statement is a constant of its own, and a call without an
  owner runs the unscoped statement unchanged.

Needs the ``postgres`` extra: ``pip install 'mofa-sdk[postgres]'``.
"""

from __future__ import annotations

from mofa.persistence.backends.postgres._store import PostgresStore

__all__ = ["PostgresStore"]
