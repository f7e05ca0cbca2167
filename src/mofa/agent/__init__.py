"""An LLM agent whose conversations survive restarts.

::

    from mofa.agent import LLMAgentBuilder
    from mofa.persistence import PersistencePlugin, open_store

    store = await open_store("sqlite://./mofa.db")
    persistence = PersistencePlugin("persistence", store, user_id, tenant_id, agent_id, session_id)
    async with await (
        LLMAgentBuilder.from_env()
        .with_persistence_plugin(persistence)
        .with_session_id(session_id)
        .build_async()
    ) as agent:
        print(await agent.chat("Hello"))
        async for chunk in agent.chat_stream("Tell me more"):
            print(chunk, end="")

Or everything from ``agent.yml``: ``await LLMAgentBuilder.from_config("agent.yml").build_async()``.
"""

from __future__ import annotations

from mofa.agent._agent import DEFAULT_HISTORY_LIMIT, ChatStream, ChatTurn, LLMAgent
from mofa.agent._builder import LLMAgentBuilder
from mofa.agent._errors import AgentClosedError, AgentError, LLMError, SessionExpiredError
from mofa.agent.providers import (
    ChatMessage,
    Completion,
    LLMProvider,
    OfflineProvider,
    OpenAIProvider,
    StreamDelta,
    Usage,
)
from mofa.persistence.plugin import SessionAccessError

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "AgentClosedError",
    "AgentError",
    "ChatMessage",
    "ChatStream",
    "ChatTurn",
    "Completion",
    "LLMAgent",
    "LLMAgentBuilder",
    "LLMError",
    "LLMProvider",
    "OfflineProvider",
    "OpenAIProvider",
    "SessionAccessError",
    "SessionExpiredError",
    "StreamDelta",
    "Usage",
]
