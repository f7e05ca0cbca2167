"""MoFA persistence demo: a conversation that survives a restart.

    make demo          # or: .venv/bin/python examples/demo.py

1. This process opens the embedded store (a SQLite file under ./.demo/, no server), builds an
   agent exactly as the MoFA persistence guide shows (``PersistencePlugin`` +
   ``LLMAgentBuilder.from_env()``), chats two turns and saves the agent's state.
2. A second OS process builds the same agent from ``examples/agent.yml`` with the same session
   id, finds the history and state in the database, and continues the conversation.
3. ``mofa session list`` and ``mofa session show <id>`` show what was stored.

With ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set (in the environment or ./.env) the demo
talks to that model. With neither, it asks for the deterministic offline provider
(``MOFA_LLM_PROVIDER=offline``) and says so on stderr: the library never falls back to it
by itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mofa.agent import AgentError, LLMAgent, LLMAgentBuilder
from mofa.config import ConfigError, environment
from mofa.persistence import PersistenceError, PersistencePlugin, new_session_id, open_store

ROOT = Path(__file__).resolve().parent.parent
# MOFA_DEMO_DIR moves the demo's database elsewhere (the tests use a temporary directory).
DEMO_DIR = Path(os.environ.get("MOFA_DEMO_DIR") or ROOT / ".demo").resolve()
DATABASE_URL = (
    "sqlite://./.demo/mofa.db"  # relative to the project root (the demo's cwd)
    if DEMO_DIR == ROOT / ".demo"
    else f"sqlite://{DEMO_DIR / 'mofa.db'}"
)
CONFIG = ROOT / "examples" / "agent.yml"
PROVIDER_VARIABLE = "MOFA_LLM_PROVIDER"  # openai or offline, read by LLMAgentBuilder
USER_ID, TENANT_ID, AGENT_ID = "demo-user", "demo-tenant", "demo-agent"

FIRST_TURNS = (
    "Hi! My name is Ada and I love green tea.",
    "Which snack goes well with it?",
)
RESUMED_TURN = "What is my name, and what do I like to drink?"


def describe(agent: LLMAgent) -> str:
    if agent.provider.name == "offline":
        return (
            f"offline ({agent.model}); set OPENAI_API_KEY or OPENAI_BASE_URL "
            "to talk to a real model"
        )
    base_url = getattr(agent.provider, "shown_base_url", "")  # a password in it masked
    return f"{agent.provider.name} ({agent.model} at {base_url})"


async def first_process(session_id: str) -> None:
    store = await open_store(DATABASE_URL)
    persistence = PersistencePlugin("persistence", store, USER_ID, TENANT_ID, AGENT_ID, session_id)
    agent = await (
        LLMAgentBuilder.from_env()
        .with_persistence_plugin(persistence)
        .with_session_id(session_id)
        .build_async()
    )
    async with store, agent:
        print(f"  provider: {describe(agent)}")
        print(f"\n[process 1, pid {os.getpid()}] new session {agent.session_id}")
        print(f"  you:   {FIRST_TURNS[0]}")
        print(f"  agent: {await agent.chat(FIRST_TURNS[0])}")
        print(f"  you:   {FIRST_TURNS[1]}")
        print("  agent: ", end="", flush=True)
        async for chunk in agent.chat_stream(FIRST_TURNS[1]):  # streamed as it arrives
            print(chunk, end="", flush=True)
        print()
        version = await agent.save_state({"user_name": "Ada", "topic": "tea", "turns": 2})
        print(f"  saved agent state v{version}: {agent.state}")
    print("  process 1 exits; everything it said is in the database.")


async def second_process(session_id: str) -> None:
    """Same agent, rebuilt from agent.yml in a new process."""
    # The database process 1 wrote, whatever DATABASE_URL the shell exports.
    os.environ["DATABASE_URL"] = DATABASE_URL
    agent = await (
        LLMAgentBuilder.from_config(CONFIG)
        .with_user_id(USER_ID)
        .with_tenant_id(TENANT_ID)
        .with_session_id(session_id)
        .build_async()
    )
    async with agent:
        print(
            f"\n[process 2, pid {os.getpid()}] built from {CONFIG.relative_to(ROOT)}; "
            f"resumed session {agent.session_id}"
        )
        print(f"  loaded {len(agent.history)} earlier messages and state {agent.state}")
        print(f"  you:   {RESUMED_TURN}")
        print(f"  agent: {await agent.chat(RESUMED_TURN)}")
        await agent.save_state({**agent.state, "turns": agent.state.get("turns", 0) + 1})
        if not agent.resumed:
            raise SystemExit("The second process did not resume the session.")


def mofa(*args: str) -> None:
    """Run the mofa CLI as a user would, and show its output."""
    script = Path(sys.executable).parent / "mofa"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "mofa"]
    print(f"\n$ mofa {' '.join(args)}", flush=True)
    finished = subprocess.run([*command, *args], cwd=ROOT, check=False)
    if finished.returncode != 0:
        raise SystemExit(
            f"mofa {args[2] if len(args) > 2 else ''} failed (exit {finished.returncode})."
        )


def use_offline_unless_a_model_is_configured() -> None:
    """No endpoint configured: ask for the offline provider by name (the second process and
    the agent.yml it reads inherit the choice), and say so."""
    settings = environment(CONFIG, settings_only=True)
    if settings.get("OPENAI_API_KEY") or settings.get("OPENAI_BASE_URL"):
        return
    if settings.get(PROVIDER_VARIABLE):
        return  # the caller chose
    os.environ[PROVIDER_VARIABLE] = "offline"
    print(
        f"demo: neither OPENAI_API_KEY nor OPENAI_BASE_URL is set; using the offline echo "
        f"provider ({PROVIDER_VARIABLE}=offline).",
        file=sys.stderr,
    )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--resume":
        asyncio.run(second_process(sys.argv[2]))
        return
    os.chdir(ROOT)
    use_offline_unless_a_model_is_configured()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)  # every run starts from an empty database
    DEMO_DIR.mkdir()
    session_id = new_session_id()
    print("MoFA persistence demo: a conversation that survives a restart")
    print(f"  store:    {DATABASE_URL} (embedded SQLite, no server)")
    asyncio.run(first_process(session_id))
    resumed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--resume", session_id],
        cwd=ROOT,
        check=False,
    )
    if resumed.returncode != 0:
        raise SystemExit(f"The second process failed (exit {resumed.returncode}).")
    mofa("--database-url", DATABASE_URL, "session", "list")
    mofa("--database-url", DATABASE_URL, "session", "show", session_id)


if __name__ == "__main__":
    try:
        main()
    except (AgentError, PersistenceError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
