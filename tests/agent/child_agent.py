"""An agent in its own OS process, for the restart tests.

    python -m tests.agent.child_agent DATABASE_URL SESSION_ID [--stream] TEXT...
    python -m tests.agent.child_agent DATABASE_URL SESSION_ID --forever

Prints ``ACK <n> <reply>`` after each acknowledged turn (flushed), so a parent can kill it
between turns. ``--forever`` chats "message 1", "message 2", … until it is killed.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

from mofa.agent import LLMAgentBuilder
from mofa.persistence import PersistencePlugin, open_store

USER_ID, TENANT_ID, AGENT_ID = "user-1", "tenant-1", "agent-1"


async def main(argv: list[str]) -> None:
    url, session_id, *rest = argv
    stream = "--stream" in rest
    forever = "--forever" in rest
    texts = [text for text in rest if not text.startswith("--")]
    store = await open_store(url)
    persistence = PersistencePlugin("persistence", store, USER_ID, TENANT_ID, AGENT_ID, session_id)
    agent = await (
        LLMAgentBuilder.from_env()
        .with_persistence_plugin(persistence)
        .with_session_id(session_id)
        .build_async()
    )
    print(f"RESUMED {agent.resumed} {len(agent.history)} {agent.state}", flush=True)
    turns = (f"message {n}" for n in itertools.count(1)) if forever else iter(texts)
    async with agent:
        for number, text in enumerate(turns, start=1):
            if stream:
                reply = "".join([chunk async for chunk in agent.chat_stream(text)])
            else:
                reply = await agent.chat(text)
            await agent.save_state({"turns": agent.state.get("turns", 0) + 1})
            print(f"ACK {number} {reply}", flush=True)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
