"""``LLMAgentBuilder``: configure an :class:`LLMAgent` from code, the environment or agent.yml.

From the environment (the MoFA guide's ``LLMAgentBuilder::from_env()``)::

    agent = await (
        LLMAgentBuilder.from_env()
        .with_persistence_plugin(persistence)
        .with_session_id(session_id)
        .build_async()
    )

Environment variables (or ``./.env``): ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` (default
``https://api.openai.com/v1``), ``OPENAI_MODEL`` or ``MOFA_MODEL`` (default ``gpt-4o-mini``)
and ``MOFA_LLM_PROVIDER`` (``openai`` or ``offline``). With neither a key nor a base URL,
building fails with one :class:`~mofa.agent.AgentError` unless the offline echo provider
(:class:`~mofa.agent.OfflineProvider`, no network) is asked for: ``MOFA_LLM_PROVIDER=offline``,
``llm.provider: offline`` in agent.yml, or :meth:`LLMAgentBuilder.with_offline_provider` —
never by surprise, so a deployment that lost its key does not store echoes as answers.

From ``agent.yml`` (:func:`mofa.config.load_config`): ``agent.id`` / ``name`` /
``description``; the store from ``persistence`` (``database.url`` or sqlite ``path``; with
persistence enabled but no ``database``, the local file store the ``mofa`` CLI reads by
default, so ``mofa session list`` shows the agent's sessions; ``enabled: false`` or
``session.persist: false`` means in memory); ``session.ttl_seconds``; and an optional ``llm``
section, each key falling back to the environment above when it is absent:

.. code-block:: yaml

    llm:
      provider: openai        # or "offline" (default: $MOFA_LLM_PROVIDER, else openai)
      model: gpt-4o-mini
      base_url: ${OPENAI_BASE_URL}      # an unset variable is an error; ${VAR:-} if optional
      api_key: ${OPENAI_API_KEY:-}
      temperature: 0.7
      max_tokens: 512
      timeout_seconds: 60     # the deadline of a call (see OpenAIProvider)
      system_prompt: You are a helpful assistant.
      history_limit: 100      # messages of the session sent to the model

A value that uses an unset ``${VAR}`` is an error naming the variable, never silently a
different endpoint or the offline provider. Invalid settings (a base URL with a bad port, an
API key with a control or non-ASCII character, a timeout that is not positive) are refused
with one :class:`~mofa.agent.AgentError` sentence before anything is opened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

from mofa.agent._agent import DEFAULT_HISTORY_LIMIT, LLMAgent
from mofa.agent._errors import AgentError
from mofa.agent.providers import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    LLMProvider,
    OfflineProvider,
    OpenAIProvider,
    check_timeout,
)
from mofa.config import (
    DEFAULT_CONFIG_NAME,
    ConfigError,
    MofaConfig,
    _optional_str,
    default_store_url,
    environment,
    load_config,
)
from mofa.persistence._registry import open_store
from mofa.persistence.plugin import PersistencePlugin

__all__ = ["DEFAULT_AGENT_ID", "PROVIDER_VARIABLE", "LLMAgentBuilder"]

DEFAULT_AGENT_ID = "llm-agent"
#: Names the provider (openai or offline) when neither the builder nor agent.yml does.
PROVIDER_VARIABLE = "MOFA_LLM_PROVIDER"
_PROVIDERS = ("openai", "offline")

_Number = TypeVar("_Number", int, float)


class LLMAgentBuilder:
    """Collects settings; :meth:`build_async` opens what is needed and returns the agent."""

    def __init__(self) -> None:
        self._agent_id: str | None = None
        self._name: str | None = None
        self._description: str | None = None
        self._provider: LLMProvider | None = None
        self._provider_kind: str | None = None
        self._api_key: str | None = None
        self._base_url: str | None = None
        self._model: str | None = None
        self._temperature: float | None = None
        self._max_tokens: int | None = None
        self._timeout = 60.0
        self._system_prompt: str | None = None
        self._history_limit = DEFAULT_HISTORY_LIMIT
        self._plugin: PersistencePlugin | None = None
        self._database_url: str | None = None
        self._session_id: str | None = None
        self._user_id: str | None = None
        self._tenant_id: str | None = None
        self._ttl_seconds: int | None = None

    # --------------------------------------------------------------- sources

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Provider settings from ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_MODEL``…

        Read from the process environment, then ``./.env``; a mapping given as ``environ``
        is read alone.
        """
        if environ is None:
            environ = environment(settings_only=True)
        return cls()._read_env(environ)

    @classmethod
    def from_config(
        cls, path: str | Path = DEFAULT_CONFIG_NAME, *, environ: Mapping[str, str] | None = None
    ) -> Self:
        """Everything ``agent.yml`` describes (see the module docstring); the environment
        (``environ``, default the process's, over ``./.env`` over the ``.env`` beside the
        file) fills the gaps."""
        config = load_config(path, environ=environ)
        env = environment(config.path, environ, settings_only=True)
        builder = cls()._read_env(env)
        for key in ("id", "name", "description"):
            config.check_set("agent", key)
        builder._agent_id = config.agent.id
        builder._name = config.agent.name
        builder._description = config.agent.description
        if config.session.persist and config.persistence.enabled:
            # No database named: the local file store, which the CLI reads by default.
            builder._database_url = config.persistence.database_url() or default_store_url(env)
        builder._ttl_seconds = config.session.ttl_seconds
        builder._read_llm_section(config)
        return builder

    def _read_env(self, environ: Mapping[str, str]) -> Self:
        self._api_key = environ.get("OPENAI_API_KEY") or None
        self._base_url = environ.get("OPENAI_BASE_URL") or None
        self._model = environ.get("OPENAI_MODEL") or environ.get("MOFA_MODEL") or None
        kind = (environ.get(PROVIDER_VARIABLE) or "").strip()
        if kind:
            if kind.lower() not in _PROVIDERS:
                raise AgentError(
                    f"{PROVIDER_VARIABLE}={kind!r} is not a provider; use openai or offline."
                )
            self._provider_kind = kind.lower()
        return self

    def _read_llm_section(self, config: MofaConfig) -> None:
        llm: Mapping[str, Any] = config.llm
        path: Path | None = config.path

        def text(key: str) -> str | None:
            config.check_set("llm", key)
            return _optional_str(llm, key, "llm", path)

        def number(key: str, kind: type[_Number], *, zero: bool = False) -> _Number | None:
            config.check_set("llm", key)
            value = llm.get(key)
            if value is None or value == "":
                return None
            try:
                result = kind(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{path}: llm.{key} must be a number, not {value!r}.") from None
            if isinstance(value, bool) or result < 0 or (result == 0 and not zero):
                least = "zero or more" if zero else "a positive number"
                raise ConfigError(f"{path}: llm.{key} must be {least}, not {value!r}.")
            if kind is int and result != value and not isinstance(value, str):
                raise ConfigError(f"{path}: llm.{key} must be a whole number, not {value!r}.")
            return result

        prompt = llm.get("system_prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise ConfigError(f"{path}: llm.system_prompt must be text, not {prompt!r}.")

        kind = text("provider")
        if kind is not None:
            if kind.lower() not in _PROVIDERS:
                raise ConfigError(
                    f"{path}: llm.provider {kind!r} is unknown; use openai or offline."
                )
            self._provider_kind = kind.lower()
        self._api_key = text("api_key") or self._api_key
        self._base_url = text("base_url") or self._base_url
        self._model = text("model") or self._model
        self._system_prompt = text("system_prompt") or self._system_prompt
        temperature = number("temperature", float, zero=True)
        if temperature is not None:
            self._temperature = temperature
        max_tokens = number("max_tokens", int)
        if max_tokens is not None:
            self._max_tokens = max_tokens
        timeout = number("timeout_seconds", float)
        if timeout is not None:
            self._timeout = timeout
        history_limit = number("history_limit", int)
        if history_limit is not None:
            self._history_limit = history_limit

    # -------------------------------------------------------------- settings

    def with_id(self, agent_id: str) -> Self:
        self._agent_id = str(agent_id)
        return self

    def with_name(self, name: str) -> Self:
        self._name = name
        return self

    def with_description(self, description: str) -> Self:
        self._description = description
        return self

    def with_provider(self, provider: LLMProvider) -> Self:
        """Use this provider (the caller closes it)."""
        self._provider = provider
        return self

    def with_offline_provider(self) -> Self:
        """Answer with the deterministic offline echo provider (tests, demos; no network)."""
        self._provider_kind = "offline"
        return self

    def with_api_key(self, api_key: str) -> Self:
        self._api_key = api_key
        return self

    def with_base_url(self, base_url: str) -> Self:
        self._base_url = base_url
        return self

    def with_model(self, model: str) -> Self:
        self._model = model
        return self

    def with_temperature(self, temperature: float) -> Self:
        self._temperature = temperature
        return self

    def with_max_tokens(self, max_tokens: int) -> Self:
        self._max_tokens = max_tokens
        return self

    def with_timeout(self, seconds: float) -> Self:
        """The deadline of a model call (see :class:`~mofa.agent.OpenAIProvider`)."""
        check_timeout(seconds)
        self._timeout = seconds
        return self

    def with_system_prompt(self, system_prompt: str) -> Self:
        self._system_prompt = system_prompt
        return self

    def with_history_limit(self, messages: int) -> Self:
        """How many of the session's latest messages are sent to the model."""
        if messages < 1:
            raise AgentError("The history limit must be at least 1 message.")
        self._history_limit = messages
        return self

    def with_persistence_plugin(self, plugin: PersistencePlugin) -> Self:
        self._plugin = plugin
        return self

    def with_database_url(self, url: str) -> Self:
        """Open this store at build time (closed with the agent); ignored with a plugin."""
        self._database_url = url
        return self

    def with_session_id(self, session_id: object) -> Self:
        self._session_id = None if session_id is None else str(session_id)
        return self

    def with_user_id(self, user_id: object) -> Self:
        """The user of a store opened from a URL or config (a plugin brings its own)."""
        self._user_id = None if user_id is None else str(user_id)
        return self

    def with_tenant_id(self, tenant_id: object) -> Self:
        self._tenant_id = None if tenant_id is None else str(tenant_id)
        return self

    def with_session_ttl(self, seconds: int | None) -> Self:
        """Sessions expire ``seconds`` after their last turn (``None``: never)."""
        if seconds is not None and seconds <= 0:
            raise AgentError("The session ttl must be a positive number of seconds.")
        self._ttl_seconds = seconds
        return self

    # ------------------------------------------------------------------ build

    def _make_provider(self) -> tuple[LLMProvider, bool]:
        if self._provider is not None:
            return self._provider, False
        api_key = (self._api_key or "").strip() or None
        kind = self._provider_kind
        if kind is None:
            if not (api_key or self._base_url):
                # A deployment that lost its key must not store echoes as answers.
                raise AgentError(
                    "No model endpoint is configured: set OPENAI_API_KEY (api.openai.com) or "
                    "OPENAI_BASE_URL (any OpenAI-compatible server), or ask for the offline "
                    f"echo provider with {PROVIDER_VARIABLE}=offline, llm.provider: offline in "
                    "agent.yml or with_offline_provider()."
                )
            kind = "openai"
        if kind == "offline":
            # A configured model name belongs to the real provider; offline keeps its own.
            return OfflineProvider(), True
        return OpenAIProvider(
            api_key=api_key,
            base_url=self._base_url or DEFAULT_BASE_URL,
            model=self._model or DEFAULT_MODEL,
            temperature=self._temperature,
            max_tokens=self._max_tokens,
            timeout=self._timeout,
        ), True

    async def build_async(self) -> LLMAgent:
        """Open the store (if a URL was configured), register the agent, open its session.

        The provider is made first, so a setting that can never work is reported before a
        store is opened.
        """
        provider, owns_provider = self._make_provider()
        try:
            plugin = await self._make_plugin()
        except BaseException:
            if owns_provider:
                with contextlib.suppress(Exception):
                    await provider.aclose()
            raise
        agent_id = plugin.agent_id or self._agent_id or DEFAULT_AGENT_ID
        agent = LLMAgent(
            agent_id=agent_id,
            name=self._name or agent_id,
            description=self._description,
            provider=provider,
            plugin=plugin,
            system_prompt=self._system_prompt,
            history_limit=self._history_limit,
            ttl_seconds=self._ttl_seconds,
            owns_provider=owns_provider,
        )
        try:
            await agent._start(self._session_id or plugin.session_id)
        except BaseException:
            # Release what build opened; the first error is the one to report.
            with contextlib.suppress(Exception):
                await agent.close()
            raise
        return agent

    async def _make_plugin(self) -> PersistencePlugin:
        plugin = self._plugin
        if plugin is None:
            if self._database_url is not None:
                store = await open_store(self._database_url)
            else:
                store = await open_store("memory://")
            plugin = PersistencePlugin(
                "persistence",
                store,
                self._user_id,
                self._tenant_id,
                self._agent_id,
                self._session_id,
                owns_store=True,
            )
        return plugin
