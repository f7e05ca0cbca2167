"""Isolation: concurrent sessions through one agent, and tenant/user scoping of the plugin."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mofa.agent import ChatMessage, Completion, LLMAgentBuilder, OfflineProvider
from mofa.persistence import (
    BaseStore,
    PersistencePlugin,
    Role,
    SessionExistsError,
    SessionNotFoundError,
)
from mofa.persistence.plugin import SessionAccessError


class Interleaving(OfflineProvider):
    """Yields to the event loop inside every call, so concurrent turns interleave."""

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
        for _ in range(3):
            await asyncio.sleep(0)
        return await super().complete(messages)


async def test_concurrent_sessions_through_one_agent_never_mix(store: BaseStore) -> None:
    plugin = PersistencePlugin("persistence", store, "user-1", "tenant-1", "agent-1")
    agent = (
        await LLMAgentBuilder()
        .with_provider(Interleaving())
        .with_persistence_plugin(plugin)
        .build_async()
    )
    sessions = [await agent.create_session() for _ in range(3)]

    async def converse(index: int, session_id: str, stream: bool) -> list[str]:
        replies = []
        for turn in range(4):
            text = f"session {index} turn {turn}"
            if stream:
                replies.append(
                    "".join(
                        [chunk async for chunk in agent.chat_stream(text, session_id=session_id)]
                    )
                )
            else:
                replies.append(await agent.chat(text, session_id=session_id))
        return replies

    results = await asyncio.gather(
        *(
            converse(index, session_id, stream=index == 1)
            for index, session_id in enumerate(sessions)
        )
    )
    for index, (session_id, replies) in enumerate(zip(sessions, results, strict=True)):
        messages = await store.list_messages(session_id)
        users = [m.content for m in messages if m.role == Role.USER]
        assert users == [f"session {index} turn {turn}" for turn in range(4)]
        assistants = [m for m in messages if m.role == Role.ASSISTANT]
        assert [m.content for m in assistants] == replies
        for turn, reply in enumerate(assistants):
            # Each reply answered its own session's conversation, with its own usage.
            assert f'began with "session {index} turn 0"' in reply.content or turn == 0
            assert f"session {index} turn {turn}" in reply.content
            assert reply.metadata["reply_to"] == 2 * turn + 1
            prompt_words = sum(len(m.content.split()) for m in messages[: 2 * turn + 1])
            assert reply.metadata["usage"]["prompt_tokens"] == prompt_words
    # The agent's current session was not touched by the per-call sessions.
    assert await store.count_messages(agent.session_id) == 0
    await agent.close()


async def test_plugins_only_see_their_own_tenant_and_user(store: BaseStore) -> None:
    def plugin(user: str | None, tenant: str | None) -> PersistencePlugin:
        # An agent record belongs to the tenant that registered it: one id per tenant.
        return PersistencePlugin("persistence", store, user, tenant, f"agent-{tenant}")

    owners = {
        "mine": plugin("u1", "t1"),
        "other_tenant": plugin("u1", "t2"),
        "other_user": plugin("u2", "t1"),
        "no_tenant": plugin("u1", None),
    }
    agents = {
        name: await LLMAgentBuilder.from_env({"MOFA_LLM_PROVIDER": "offline"})
        .with_persistence_plugin(p)
        .build_async()
        for name, p in owners.items()
    }
    for agent in agents.values():
        await agent.chat("hello")
    for name, agent in agents.items():
        listed = [s.session_id for s in await agent.list_sessions()]
        assert listed == [agent.session_id], name

    mine = agents["mine"]
    for name in ("other_tenant", "other_user", "no_tenant"):
        foreign = agents[name].session_id
        # Another owner's session looks exactly like a missing one.
        with pytest.raises(SessionNotFoundError, match=f"Session not found: '{foreign}'"):
            await mine.switch_session(foreign)
        assert await mine.delete_session(foreign) is False
        with pytest.raises(SessionNotFoundError):
            await mine.chat("let me in", session_id=foreign)
        assert await store.count_messages(foreign) == 2  # untouched
    assert mine.session_id != agents["other_tenant"].session_id
    with pytest.raises(SessionNotFoundError):
        await mine.switch_session("no-such-session")

    # Building with another tenant's session id is refused too, not silently shared: the id
    # is taken (session ids are global), and that is all the intruder learns.
    intruder = PersistencePlugin("persistence", store, "u1", "t1", "agent-t1")
    with pytest.raises(SessionExistsError):
        await (
            LLMAgentBuilder.from_env({"MOFA_LLM_PROVIDER": "offline"})
            .with_persistence_plugin(intruder)
            .with_session_id(agents["other_tenant"].session_id)
            .build_async()
        )
    for agent in agents.values():
        await agent.close()


def test_session_access_error_is_the_not_found_error() -> None:
    # Kept for code written against earlier versions: catching it still catches the refusal.
    assert SessionAccessError is SessionNotFoundError
