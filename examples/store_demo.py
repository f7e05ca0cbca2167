"""Store demo: write a conversation to SQLite, then read it back from a second process.

Run it with ``python examples/store_demo.py`` (no network, no server). It

1. opens (creating) the SQLite store ``./.demo/store_demo.db``,
2. upserts an agent, creates a session, appends a short conversation and saves an
   agent-state snapshot,
3. starts a second Python process that reopens the store and prints the history back —
   proof that the data is on disk, not in this process's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

from mofa.persistence import NewMessage, SqliteStore

DATABASE = Path(".demo") / "store_demo.db"
AGENT_ID = "demo-agent"

CONVERSATION = [
    NewMessage("system", "You are a concise travel assistant."),
    NewMessage("user", "I have one day in Kyoto. Where should I start?"),
    NewMessage(
        "assistant",
        "Start early at Fushimi Inari before the crowds, then walk Higashiyama to Kiyomizu-dera.",
        metadata={"model": "offline-demo", "usage": {"prompt_tokens": 23, "completion_tokens": 21}},
    ),
    NewMessage("user", "And in the evening? 晚上呢？"),
    NewMessage(
        "assistant",
        "Stroll Gion at dusk and eat along Pontochō. 🏮",
        metadata={"model": "offline-demo", "usage": {"prompt_tokens": 58, "completion_tokens": 12}},
    ),
]


async def write(database: Path) -> str:
    """Part one: write everything, return the new session's id."""
    async with await SqliteStore.connect(f"sqlite://{database}") as store:
        if store.applied_migrations:
            print(f"created the schema (version {store.applied_migrations[-1]}) in {database}")
        agent = await store.upsert_agent(
            AGENT_ID, name="Demo travel agent", provider="offline", model="offline-demo"
        )
        session = await store.create_session(
            agent_id=agent.id, user_id="alice", tenant_id="demo", metadata={"topic": "kyoto"}
        )
        stored = await store.append_messages(session.session_id, CONVERSATION)
        state = await store.save_state(
            session.session_id, {"step": "itinerary", "city": "Kyoto", "days": 1}
        )
        print(
            f"process 1: wrote session {session.session_id} for agent {agent.id!r}: "
            f"{len(stored)} messages (seq {stored[0].seq}–{stored[-1].seq}), "
            f"state snapshot v{state.version}"
        )
        return session.session_id


async def show(database: Path, session_id: str) -> None:
    """Part two (the second process): reopen the store and print the history."""
    async with await SqliteStore.connect(f"sqlite://{database}") as store:
        session = await store.get_session(session_id)
        if session is None:
            raise SystemExit(f"Session {session_id} is not in {database}.")
        print(
            f"process 2: reopened {database}: session {session.session_id} "
            f"(agent {session.agent_id}, user {session.user_id}, "
            f"{session.message_count} messages)"
        )
        for message in await store.list_messages(session_id):
            when = message.timestamp.strftime("%H:%M:%S")
            print(f"  {message.seq}. [{when}] {message.role.value:>9}: {message.content}")
        state = await store.get_state(session_id)
        if state is not None:
            print(f"  latest state v{state.version}: {state.state}")
        sessions = await store.list_sessions(agent_id=AGENT_ID)
        print(f"  {len(sessions)} session(s) of {AGENT_ID} in this database so far")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=Path, default=DATABASE)
    parser.add_argument("--show", metavar="SESSION_ID", help="only print a stored session")
    args = parser.parse_args()
    if args.show:
        asyncio.run(show(args.database, args.show))
        return
    session_id = asyncio.run(write(args.database))
    # A fresh interpreter: nothing is shared with this process but the database file.
    subprocess.run(
        [sys.executable, __file__, "--database", str(args.database), "--show", session_id],
        check=True,
    )


if __name__ == "__main__":
    main()
