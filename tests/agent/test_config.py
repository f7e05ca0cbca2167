"""agent.yml builds the same agent; expired sessions are not resumed and list as expired."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from mofa.agent import LLMAgentBuilder, OfflineProvider, OpenAIProvider, SessionExpiredError
from mofa.config import ConfigError
from mofa.persistence import BaseStore, open_store
from mofa.persistence._entities import utc_now
from tests._cli import run_mofa
from tests.agent.conftest import child_env
from tests.agent.llm_server import LLMServer

SEEDS_CONFIG = """\
agent:
  id: my-agent
  name: My Agent

# Database configuration
persistence:
  enabled: {enabled}
  {database}

# Session persistence
session:
  persist: {persist}
  ttl_seconds: 86400  # 24 hours
"""

SQLITE_PATH = """database:
    type: sqlite
    path: ~/.local/share/mofa/mofa.db"""
DATABASE_URL = """database:
    type: sqlite
    url: ${DATABASE_URL}"""


def write_config(
    tmp_path: Path,
    *,
    database: str = SQLITE_PATH,
    enabled: str = "true",
    persist: str = "true",
    extra: str = "",
) -> Path:
    path = tmp_path / "agent.yml"
    path.write_text(
        SEEDS_CONFIG.format(enabled=enabled, database=database, persist=persist) + extra
    )
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "MOFA_MODEL"):
        monkeypatch.delenv(name, raising=False)
    # No endpoint here: the offline provider, asked for as a deployment would.
    monkeypatch.setenv("MOFA_LLM_PROVIDER", "offline")
    return home


@pytest.mark.sqlite
async def test_the_seeds_agent_yml_builds_a_persistent_agent(tmp_path: Path, home: Path) -> None:
    config = write_config(tmp_path)
    agent = await LLMAgentBuilder.from_config(config).build_async()
    assert (agent.id, agent.name) == ("my-agent", "My Agent")
    assert isinstance(agent.provider, OfflineProvider)
    database = home / ".local/share/mofa/mofa.db"
    assert agent.plugin.store.url.path == str(database)
    await agent.chat("Remember me")
    session_id = agent.session_id
    session = agent.session
    assert session is not None
    assert session.expires_at is not None
    lifetime = session.expires_at - session.created_at
    assert timedelta(hours=23) < lifetime <= timedelta(hours=24)
    await agent.close()
    assert isinstance(agent.plugin.store, BaseStore)
    assert agent.plugin.store.closed  # the builder opened it, the agent closed it

    again = await LLMAgentBuilder.from_config(config).with_session_id(session_id).build_async()
    assert again.resumed
    assert 'began with "Remember me"' in await again.chat("Still there?")
    await again.close()

    async with await open_store(f"sqlite://{database}") as store:
        record = await store.get_agent("my-agent")
        assert record is not None
        assert (record.name, record.state) == ("My Agent", "stopped")
        assert await store.count_messages(session_id) == 4


@pytest.mark.sqlite
async def test_database_url_comes_from_the_environment(tmp_path: Path, home: Path) -> None:
    config = write_config(tmp_path, database=DATABASE_URL)
    url = f"sqlite://{tmp_path / 'from-env.db'}"
    environ = {"DATABASE_URL": url, "MOFA_LLM_PROVIDER": "offline"}
    agent = await LLMAgentBuilder.from_config(config, environ=environ).build_async()
    assert agent.plugin.store.url.path == str(tmp_path / "from-env.db")
    await agent.close()
    with pytest.raises(ConfigError, match=r"\$\{DATABASE_URL\}, which is not set"):
        LLMAgentBuilder.from_config(config, environ={})


@pytest.mark.parametrize(("enabled", "persist"), [("false", "true"), ("true", "false")])
async def test_persistence_off_keeps_the_agent_in_memory(
    tmp_path: Path, home: Path, enabled: str, persist: str
) -> None:
    config = write_config(tmp_path, enabled=enabled, persist=persist)
    async with await LLMAgentBuilder.from_config(config).build_async() as agent:
        assert isinstance(agent.plugin.store, BaseStore)
        assert agent.plugin.store.backend == "memory"
        await agent.chat("hi")
    assert not (home / ".local/share/mofa/mofa.db").exists()


async def test_the_llm_section_configures_the_provider(
    tmp_path: Path, home: Path, llm: LLMServer
) -> None:
    config = write_config(
        tmp_path,
        enabled="false",
        extra=(
            "llm:\n  model: local-model\n  base_url: ${LLM_URL}\n  api_key: sk-from-yml\n"
            "  temperature: 0.5\n  system_prompt: You are terse.\n  history_limit: 10\n"
        ),
    )
    agent = await LLMAgentBuilder.from_config(
        config, environ={"LLM_URL": llm.base_url}
    ).build_async()
    assert isinstance(agent.provider, OpenAIProvider)
    await agent.chat("hello")
    await agent.close()
    request = llm.requests[-1]
    assert request.headers["authorization"] == "Bearer sk-from-yml"
    assert request.body["model"] == "local-model"
    assert request.body["temperature"] == 0.5
    assert request.messages[0] == {"role": "system", "content": "You are terse."}
    assert agent.history_limit == 10


def test_an_unknown_provider_is_one_sentence(tmp_path: Path, home: Path) -> None:
    config = write_config(tmp_path, extra="llm:\n  provider: skynet\n")
    with pytest.raises(ConfigError, match=r"llm\.provider .skynet. is unknown; use openai or"):
        LLMAgentBuilder.from_config(config)


@pytest.mark.sqlite
async def test_an_expired_session_is_not_resumed(tmp_path: Path, home: Path) -> None:
    config = write_config(tmp_path)
    first = await LLMAgentBuilder.from_config(config).build_async()
    await first.chat("an old conversation")
    old = first.session_id
    await first.close()
    url = f"sqlite://{home / '.local/share/mofa/mofa.db'}"
    async with await open_store(url) as store:  # the ttl passes
        await store.update_session(old, expires_at=utc_now() - timedelta(seconds=1))

    agent = await LLMAgentBuilder.from_config(config).with_session_id(old).build_async()
    assert agent.session_id != old
    assert agent.expired_session_id == old
    assert not agent.resumed
    assert agent.history == ()
    assert "first turn" in await agent.chat("a new conversation")
    with pytest.raises(SessionExpiredError, match="has expired; start a new one"):
        await agent.switch_session(old)
    with pytest.raises(SessionExpiredError):
        await agent.chat("sneak in", session_id=old)
    await agent.close()

    async with await open_store(url) as store:
        expired = await store.get_session(old)
        assert expired is not None
        assert expired.status == "expired"
        assert expired.message_count == 2  # kept for reading, never continued

    listed = run_mofa(
        "--database-url", url, "session", "list", "--output-format", "json", env=child_env()
    )
    assert listed.returncode == 0, listed.stderr
    statuses = {row["session_id"]: row["status"] for row in json.loads(listed.stdout)}
    assert statuses == {old: "expired", agent.session_id: "active"}


@pytest.mark.parametrize(
    ("llm_section", "variable"),
    [
        ("  base_url: ${LOCAL_LLM_URL}\n", "LOCAL_LLM_URL"),
        ("  api_key: ${MY_KEY}\n", "MY_KEY"),
        ("  model: ${MODEL_NAME}\n", "MODEL_NAME"),
    ],
)
def test_an_unset_variable_under_llm_is_one_sentence(
    tmp_path: Path, home: Path, llm_section: str, variable: str
) -> None:
    config = write_config(tmp_path, enabled="false", extra="llm:\n" + llm_section)
    with pytest.raises(ConfigError) as caught:
        LLMAgentBuilder.from_config(config, environ={})
    assert f"uses ${{{variable}}}, which is not set" in str(caught.value)
    # ${VAR:-} makes it optional: the environment (here: only the provider) decides.
    optional = write_config(
        tmp_path, enabled="false", extra="llm:\n" + llm_section.replace("}", ":-}")
    )
    environ = {"MOFA_LLM_PROVIDER": "offline"}
    provider, _ = LLMAgentBuilder.from_config(optional, environ=environ)._make_provider()
    assert isinstance(provider, OfflineProvider)


def test_an_unset_variable_under_agent_is_one_sentence(tmp_path: Path, home: Path) -> None:
    config = tmp_path / "agent.yml"
    config.write_text("agent:\n  id: ${AGENT_ID}\npersistence:\n  enabled: false\n")
    with pytest.raises(ConfigError, match=r"agent\.id uses \$\{AGENT_ID\}, which is not set"):
        LLMAgentBuilder.from_config(config, environ={})


@pytest.mark.parametrize(
    ("llm_section", "fragment"),
    [
        ("  timeout_seconds: 0\n", "llm.timeout_seconds must be a positive number, not 0"),
        ("  history_limit: 0\n", "llm.history_limit must be a positive number, not 0"),
        ("  history_limit: 2.5\n", "llm.history_limit must be a whole number"),
        ("  system_prompt: 42\n", "llm.system_prompt must be text, not 42"),
    ],
)
def test_unusable_llm_values_are_one_sentence(
    tmp_path: Path, home: Path, llm_section: str, fragment: str
) -> None:
    config = write_config(tmp_path, enabled="false", extra="llm:\n" + llm_section)
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        LLMAgentBuilder.from_config(config, environ={})


async def test_persistence_without_a_database_uses_the_clis_default_store(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "mofa-data"
    monkeypatch.setenv("MOFA_DATA_DIR", str(data))
    config = tmp_path / "agent.yml"
    config.write_text(
        "agent:\n  id: my-agent\npersistence:\n  enabled: true\nsession:\n  persist: true\n"
    )
    async with await LLMAgentBuilder.from_config(config).build_async() as agent:
        assert isinstance(agent.plugin.store, BaseStore)
        assert agent.plugin.store.backend == "files"
        await agent.chat("Remember me")
        session_id = agent.session_id
    env = {**child_env(), "MOFA_DATA_DIR": str(data)}
    listed = run_mofa("session", "list", "--output-format", "json", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [row["session_id"] for row in json.loads(listed.stdout)] == [session_id]
