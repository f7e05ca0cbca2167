"""The local file store: sessions, messages and agent state as plain files in one directory.

Usage::

    from mofa.persistence.backends.files import FileStore, default_data_dir

    async with await FileStore.connect(f"file://{default_data_dir()}") as store:
        session = await store.create_session("session-123", agent_id="agent-001")
        await store.append_message(session.session_id, "user", "Hello")
        history = await store.list_recent_messages("session-123", limit=20)

``FileStore.connect()`` with no URL opens :func:`default_data_dir` (``$MOFA_DATA_DIR``, else
``$XDG_DATA_HOME/mofa``, else ``~/.local/share/mofa``); so does ``open_store("file:///dir")``
for any other directory. No database and no driver: the standard library only.

On-disk layout, every ``<agent>`` and ``<session>`` being an *encoded* id (see below)::

    <data dir>/
      mofa-store.json                       format marker: {"format": 2}
      session-list.jsonl                    every session's keys in creation order (the listing)
      agents/<agent>.json                   one agent record, with its tenant (replaced atomically)
      sessions/<agent>/<session>.json       the session header: ids, status, metadata, times
      sessions/<agent>/<session>.messages.jsonl   the messages, one JSON line each, append-only
      sessions/<agent>/<session>.states.jsonl     agent-state snapshots, append-only
      sessions/<agent>/<session>.summary    message count and last append (derived, checked)
      sessions/@none/…                      sessions that have no agent
      index/<session>.json                  session id -> agent, so a lookup is one read
      locks/<session>.lock                  flock() target that serializes a session's writers
      locks/@session-list.lock              serializes additions to the session list
      restoring/<random>                    a restore in progress (locked): its hidden logs

How it stays correct:

* **Appends never rewrite.** A message is one JSON line added to ``*.messages.jsonl`` with
  a single ``write()`` on an ``O_APPEND`` descriptor, then ``fdatasync`` before the call
  returns. A batch is one write; every line of it names the batch's last ``seq`` (``end``), so
  a batch cut short by a crash is recognised as incomplete and ignored as a whole. The first
  writer that finds such a torn tail truncates it (under the lock) before appending.
  Appends that arrive while one is being written go out together in the next write
  (group commit: one write, one ``fdatasync``), each acknowledged once its bytes are synced.
* **Every other write is atomic**: a temporary file in the same directory, ``fsync``,
  ``os.replace``, ``fsync`` of the directory. A crash leaves the old or the new file.
* **Writers are serialized** per session by an ``asyncio.Lock`` in the process and
  ``flock()`` on the session's lock file across processes; the next ``seq`` is derived under
  the lock from the log itself (its size, checked against the summary, else its last line).
* **The header is the commit point.** A session exists when its header does. Creation writes
  the index entry and the empty logs first and the header last; deletion removes the header
  first; a crash in between leaves files nobody sees, which the next creation of that id
  clears. ``message_count`` and ``updated_at`` come from the small summary file, which is
  trusted only when its checksum holds and it describes the log's current size.
* **Listing reads only what it returns.** ``session-list.jsonl`` gets one line per created
  session (its creation time and its agent, user and tenant ids, which never change), in
  creation order: a session's ``created_at`` is taken no earlier than the last line's, under
  the list's lock. Listing reads the list backwards from its end and opens the header (and
  summary) of each session it returns, so the 10 newest sessions cost the same among 10 or
  100,000; a filter is matched on the list's lines, not on headers. A line whose session has
  no header, or a header of another creation time, is skipped: the session was deleted, is
  being created, or was created again later (the newer line is the one that counts). A
  listing that passes 1,000 such lines has the list rewritten without them, in the background.
  Format 1 stores (no list) are upgraded on their first writable open; opened read-only they
  are listed by reading every header, as format 1 did.
* **An owner scope is checked on the read the call already does** (``owner=``, see
  :class:`~mofa.persistence.Owner`): on the session header read under the session's lock
  by a write (update, delete, save_state, and each batch of a group-committed append,
  which reads the header instead of only checking that it exists), so a session deleted and
  created again by another owner between two calls never gets the first owner's writes; on
  the header a read opens after opening the log (then the log must still be linked); on the
  list's lines for a listing (an owner's ``None`` id matches a line holding ``null``).
  Without an owner nothing more is read. An agent record keeps the tenant that registered
  it (a record without one has none); an upsert through an owner of another tenant is
  refused under the record's lock, one without an owner keeps the recorded tenant.
* **Ids cannot escape or collide.** Every character outside ``[a-z0-9_-]`` (upper case
  included, so ``Case`` and ``case`` differ on case-insensitive file systems) becomes
  ``%XX`` per UTF-8 byte; a Windows device name (``con``, ``nul``…) gets its first letter
  escaped; a name longer than 100 bytes keeps a readable prefix plus ``~`` and a SHA-256
  digest. The real id is stored inside the files and checked on every read.
* **No link is followed below the directory** (the directory itself may be one): every path
  is walked from the directory's descriptor one component at a time with ``O_NOFOLLOW``
  (see :mod:`._tree`), so a link planted as a log, a header or a directory is refused
  with :class:`ConflictError`, and nothing is written through it.
* Files are created ``0600`` and directories ``0700``. File work runs in a worker thread,
  one hop per operation.
"""

from mofa.persistence.backends.files._layout import encode_name
from mofa.persistence.backends.files._store import FileStore
from mofa.persistence.locations import (
    STORE_MARKER,
    default_data_dir,
    default_store_url,
    directory_url,
)

__all__ = [
    "STORE_MARKER",
    "FileStore",
    "default_data_dir",
    "default_store_url",
    "directory_url",
    "encode_name",
]
