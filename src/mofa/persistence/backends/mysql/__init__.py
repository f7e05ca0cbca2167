"""The MySQL / MariaDB store (asyncmy, a connection pool, InnoDB).

Usage::

    from mofa.persistence import MySqlStore

    async with await MySqlStore.connect("mysql://mofa_user:secret@localhost:3306/mofa") as store:
        session = await store.create_session(agent_id="my-agent", user_id="u1")
        await store.append_message(session.session_id, "user", "Hello")
        history = await store.list_recent_messages(session.session_id, limit=20)

URL forms: ``mysql://`` or ``mariadb://user:password@host:port/database`` (percent-encode a
password holding ``@ / ? #``, or pass ``?password=``), ``?ssl-mode=DISABLED|PREFERRED|REQUIRED|
VERIFY_CA|VERIFY_IDENTITY`` (with ``&ssl-ca=/path/ca.pem`` to verify; default PREFERRED, like the
``mysql`` client), ``&ssl-cert=/path/cert.pem&ssl-key=/path/key.pem`` for a client certificate
(PEM files, checked before connecting), ``?socket=/run/mysqld/mysqld.sock`` for a Unix socket,
``?connect_timeout=5`` (seconds). Host ``localhost`` means the server's Unix socket, as for the
``mysql`` client (the first of ``$MYSQL_UNIX_PORT``, ``/run/mysqld/mysqld.sock``,
``/var/run/mysqld/mysqld.sock``, ``/tmp/mysql.sock`` that exists; TCP when none does), so an
account ``'user'@'localhost'`` logs in as written; ``?protocol=tcp`` keeps ``localhost`` on
TCP, ``?protocol=socket`` takes the socket for any host, and ``?socket=`` always wins.
Options: ``pool_size`` (default 10), ``connect_timeout`` (seconds; default the URL's, else 10;
it bounds the whole opening, the server's handshake and the login included),
``schema_lock_timeout`` (seconds, default 60). Needs ``pip install 'mofa-sdk[mysql]'``.

How it stays fast and correct (MariaDB 10.11 and MySQL 8 alike):

* every connection speaks utf8mb4 and sets ``time_zone = '+00:00'``; times are ``DATETIME(6)``
  holding naive UTC, turned into aware UTC datetimes here;
* reads run as server-side prepared statements (asyncmy's statement cache, binary protocol);
* an append is ONE round trip and ONE transaction: a multi-statement ``START TRANSACTION;
  UPDATE sessions … LAST_INSERT_ID(message_count + n); INSERT INTO messages …; COMMIT``.
  The UPDATE takes the session's row lock, so concurrent appends serialize and seqs stay
  gap-free; its OK packet carries the new count, the INSERT's carries the message id. A missing
  session fails the INSERT's foreign key, and the transaction is rolled back;
* deadlocks (1213) and lock-wait timeouts (1205) are retried inside the store;
* the pool does no per-call reset or ping, and nothing checks the schema per call.
"""

from __future__ import annotations

from mofa.persistence.backends.mysql._store import MySqlStore

__all__ = ["MySqlStore"]
