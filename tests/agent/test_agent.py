"""The agent with a PersistencePlugin, on every backend (``-m sqlite`` selects one)."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from mofa.agent import (
    ChatMessage,
    Completion,
    LLMAgent,
    LLMAgentBuilder,
    LLMError,
    OfflineProvider,
    StreamDelta,
)
from mofa.persistence import (
    BaseStore,
    PersistencePlugin,
    Role,
    SessionNotFoundError,
    new_session_id,
    open_store,
)
from tests.agent.llm_server import LLMServer
from tests.conftest import _params


async def collect(chunks: AsyncIterator[str], into: list[str]) -> None:
    async for chunk in chunks:
        into.append(chunk)


def plugin_for(
    store: BaseStore,
    session_id: str | None = None,
    *,
    user: str = "user-1",
    tenant: str = "tenant-1",
    agent: str = "agent-1",
) -> PersistencePlugin:
    return PersistencePlugin("persistence", store, user, tenant, agent, session_id)


async def build(
    store: BaseStore, session_id: str | None = None, *, base_url: str | None = None, **plugin: str
) -> LLMAgent:
    environ = (
        {"MOFA_LLM_PROVIDER": "offline"} if base_url is None else {"OPENAI_BASE_URL": base_url}
    )
    builder = LLMAgentBuilder.from_env(environ).with_persistence_plugin(
        plugin_for(store, session_id, **plugin)
    )
    if session_id is not None:
        builder = builder.with_session_id(session_id)
    return await builder.build_async()


async def test_build_registers_the_agent_and_creates_the_session(store: BaseStore) -> None:
    session_id = new_session_id()
    agent = await build(store, session_id)
    assert agent.session_id == session_id
    assert not agent.resumed
    record = await store.get_agent("agent-1")
    assert record is not None
    assert (record.state, record.provider, record.model) == (
        "running",
        "offline",
        OfflineProvider().model,
    )
    session = await store.get_session(session_id)
    assert session is not None
    assert (session.agent_id, session.user_id, session.tenant_id) == (
        "agent-1",
        "user-1",
        "tenant-1",
    )
    await agent.close()
    record = await store.get_agent("agent-1")
    assert record is not None
    assert record.state == "stopped"
    assert not store.closed  # the caller's store stays open


async def test_a_turn_stores_the_user_message_then_the_reply(store: BaseStore) -> None:
    seen: list[int] = []

    class Inspecting(OfflineProvider):
        async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
            seen.append(await store.count_messages(agent.session_id))
            return await super().complete(messages)

    agent = await (
        LLMAgentBuilder()
        .with_provider(Inspecting())
        .with_persistence_plugin(plugin_for(store))
        .build_async()
    )
    reply = await agent.chat("Hello")
    assert seen == [1]  # the user's message was stored before the model was called
    messages = await store.list_messages(agent.session_id)
    assert [(m.seq, m.role, m.content) for m in messages] == [
        (1, Role.USER, "Hello"),
        (2, Role.ASSISTANT, reply),
    ]
    metadata = messages[1].metadata
    assert metadata["model"] == OfflineProvider().model
    assert metadata["provider"] == "offline"
    assert set(metadata["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert metadata["usage"]["total_tokens"] > 0
    assert metadata["latency_ms"] >= 0
    assert metadata["reply_to"] == 1
    assert agent.history == tuple(messages)
    await agent.close()


async def test_http_turns_store_model_and_usage(store: BaseStore, llm: LLMServer) -> None:
    agent = await build(store, base_url=llm.base_url)
    await agent.chat("one")
    chunks = [chunk async for chunk in agent.chat_stream("two")]
    assert "".join(chunks) == "Reply to 2 user messages; the last was: two"
    messages = await store.list_messages(agent.session_id)
    assert [m.content for m in messages][::2] == ["one", "two"]
    for reply in messages[1::2]:
        assert reply.metadata["model"] == "test-model-1"
        assert reply.metadata["provider"] == "openai"
        assert reply.metadata["usage"]["prompt_tokens"] > 0
    assert llm.requests[-1].messages == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": messages[1].content},
        {"role": "user", "content": "two"},
    ]
    await agent.close()


async def test_a_failed_call_leaves_the_user_message_and_an_error_record(
    store: BaseStore, llm: LLMServer
) -> None:
    agent = await (
        LLMAgentBuilder.from_env({"OPENAI_BASE_URL": llm.base_url})
        .with_system_prompt("Be brief.")
        .with_persistence_plugin(plugin_for(store))
        .build_async()
    )
    llm.failures.append((500, "The model is overloaded"))
    with pytest.raises(LLMError, match="500") as caught:
        await agent.chat("first try")
    assert caught.value.status == 500
    messages = await store.list_messages(agent.session_id)
    assert next((m.role, m.content) for m in messages) == (Role.USER, "first try")
    error = messages[1]
    assert error.role == Role.SYSTEM
    assert error.metadata["status"] == "failed"
    assert error.metadata["http_status"] == 500
    assert "overloaded" in error.metadata["error"]
    assert len(messages) == 2
    assert list(agent.history) == messages  # the agent's view follows the store's
    await agent.chat("second try")
    assert list(agent.history) == await store.list_messages(agent.session_id)
    # The error record is history, not conversation: the model never sees it; nor the
    # question it never answered (it stays in the store).
    assert llm.requests[-1].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "second try"},
    ]
    await agent.close()


async def test_a_cut_stream_stores_what_arrived_as_partial(
    store: BaseStore, llm: LLMServer
) -> None:
    agent = await build(store, base_url=llm.base_url)
    llm.cut_after_chunks = 4
    received: list[str] = []
    with pytest.raises(LLMError, match="cut off"):
        await collect(agent.chat_stream("tell me a story"), received)
    messages = await store.list_messages(agent.session_id)
    assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT]
    partial = messages[1]
    assert partial.content == "".join(received) == "Reply to 1 user"
    assert partial.metadata["partial"] is True
    assert "cut off" in partial.metadata["error"]
    assert list(agent.history) == messages
    await agent.close()


async def test_a_stream_the_reader_abandons_is_stored_as_partial(store: BaseStore) -> None:
    agent = await build(store)
    async with agent.chat_stream("Hello there") as stream:
        received = []
        async for chunk in stream:
            received.append(chunk)
            if len(received) == 3:
                break
    assert stream.turn is None
    messages = await store.list_messages(agent.session_id)
    assert messages[-1].content == "".join(received) == "[offline] This is"
    assert messages[-1].metadata["partial"] is True
    await agent.close()


async def test_a_finished_stream_reports_its_turn(store: BaseStore) -> None:
    agent = await build(store)
    stream = agent.chat_stream("Hi")
    text = "".join([chunk async for chunk in stream])
    assert stream.turn is not None
    assert stream.turn.text == text
    assert stream.turn.usage is not None
    assert stream.turn.reply_message.metadata["usage"] == stream.turn.usage.as_dict()
    assert "partial" not in stream.turn.reply_message.metadata
    await agent.close()


async def test_history_and_state_are_restored_on_resume(store: BaseStore) -> None:
    session_id = new_session_id()
    first = await build(store, session_id)
    await first.chat("My name is Ada")
    version = await first.save_state({"mood": "curious", "turns": 1})
    assert version == 1
    assert first.state == {"mood": "curious", "turns": 1}
    await first.close()

    second = await build(store, session_id)
    assert second.resumed
    assert second.state == {"mood": "curious", "turns": 1}
    assert next(m.content for m in second.history) == "My name is Ada"
    reply = await second.chat("What is my name?")
    assert '(it began with "My name is Ada")' in reply
    await second.close()


async def test_session_management_goes_through_the_store(store: BaseStore) -> None:
    agent = await build(store)
    first = agent.session_id
    await agent.chat("in the first session")
    created = await agent.create_session()
    assert created != first
    assert agent.session_id == first
    assert await store.get_session(created) is not None
    listed = [s.session_id for s in await agent.list_sessions()]
    assert sorted(listed) == sorted([first, created])
    assert [s.session_id for s in await agent.list_sessions(limit=1)] == [created]

    await agent.switch_session(created)
    assert agent.session_id == created
    history = agent.history  # mypy narrows what `== ()` compares: this name, not agent.history
    assert history == ()
    await agent.chat("in the second session")
    await agent.switch_session(first)
    assert next(m.content for m in agent.history) == "in the first session"

    assert await agent.delete_session(created)
    assert await store.get_session(created) is None
    assert not await agent.delete_session(created)
    with pytest.raises(SessionNotFoundError):
        await agent.switch_session(created)

    assert await agent.delete_session(first)  # the current one: the agent moves on
    assert agent.session_id not in (first, created)
    assert await store.get_session(agent.session_id) is not None
    await agent.close()


async def test_history_window_limits_what_is_sent(store: BaseStore, llm: LLMServer) -> None:
    agent = await (
        LLMAgentBuilder.from_env({"OPENAI_BASE_URL": llm.base_url})
        .with_history_limit(3)
        .with_persistence_plugin(plugin_for(store))
        .build_async()
    )
    for text in ("a", "b", "c"):
        await agent.chat(text)
    assert next(m["content"] for m in llm.requests[-1].messages) == "b"
    assert len(llm.requests[-1].messages) == 3
    await agent.close()


async def test_without_a_plugin_the_agent_keeps_history_in_memory() -> None:
    async with await LLMAgentBuilder.from_env({}).with_offline_provider().build_async() as agent:
        await agent.chat("one")
        assert "1 earlier turn" in await agent.chat("two")
        assert isinstance(agent.plugin.store, BaseStore)
        assert agent.plugin.store.backend == "memory"


async def test_closing_the_agent_after_its_store_is_quiet(tmp_path: Path) -> None:
    # The natural order with `async with await open_store(...)` and an agent outliving it.
    async with await open_store(f"sqlite://{tmp_path / 'mofa.db'}") as store:
        agent = await build(store, "s-1")
        await agent.chat("hello")
    await agent.close()  # nowhere to record "stopped": no error
    async with await open_store(f"sqlite://{tmp_path / 'mofa.db'}") as store:
        registered = await store.get_agent("agent-1")
        assert registered is not None
        assert registered.state == "running"  # what the store last heard, not invented
        assert await store.count_messages("s-1") == 2


class _Failing(OfflineProvider):
    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[StreamDelta]:
        raise LLMError("The LLM server answered 503 Service Unavailable.", status=503)
        yield StreamDelta()


async def test_a_stream_failing_before_any_text_is_an_error_record(store: BaseStore) -> None:
    agent = await (
        LLMAgentBuilder()
        .with_provider(_Failing())
        .with_persistence_plugin(plugin_for(store))
        .build_async()
    )
    with pytest.raises(LLMError):
        [chunk async for chunk in agent.chat_stream("hello")]
    messages = await store.list_messages(agent.session_id)
    assert [m.role for m in messages] == [Role.USER, Role.SYSTEM]
    assert messages[1].metadata["status"] == "failed"
    assert messages[1].metadata["http_status"] == 503
    await agent.close()


class _Hanging(OfflineProvider):
    def __init__(self) -> None:
        super().__init__()
        self.called = asyncio.Event()

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
        self.called.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_cancelled_call_is_recorded(store: BaseStore) -> None:
    provider = _Hanging()
    agent = await (
        LLMAgentBuilder()
        .with_provider(provider)
        .with_persistence_plugin(plugin_for(store))
        .build_async()
    )
    task = asyncio.ensure_future(agent.chat("hello?"))
    await provider.called.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    messages = await store.list_messages(agent.session_id)
    assert [m.role for m in messages] == [Role.USER, Role.SYSTEM]
    assert messages[1].metadata["status"] == "failed"
    assert messages[1].metadata["error_type"] == "CancelledError"
    await agent.close()


# ------------------------------------------------------------ outside review (round 2)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_reply_no_database_can_store_is_cleaned_and_stored(
    store: BaseStore, llm: LLMServer, stream: bool
) -> None:
    # Valid JSON, but NUL and a lone surrogate: PostgreSQL refuses the first, UTF-8 the second.
    llm.reply_text = "ok\x00 half \ud83d emoji \ud83d\ude00 end"
    agent = await build(store, base_url=llm.base_url)
    if stream:
        chunks = agent.chat_stream("hello")
        text = "".join([chunk async for chunk in chunks])
    else:
        text = await agent.chat("hello")
    assert text == "ok\ufffd half \ufffd emoji \U0001f600 end"
    messages = await store.list_messages(agent.session_id)
    assert [(m.role, m.content) for m in messages] == [
        (Role.USER, "hello"),
        (Role.ASSISTANT, text),
    ]
    assert messages[1].metadata["replaced_characters"] == 2
    assert list(agent.history) == messages
    await agent.close()


@pytest.mark.parametrize("backend", _params(["mysql"]))
async def test_a_reply_the_store_refuses_is_an_error_record_and_an_llm_error(
    store: BaseStore, llm: LLMServer
) -> None:
    # Larger than the server's max_allowed_packet (16 MiB by default).
    llm.reply_text = "x" * (17 * 1024 * 1024)
    agent = await build(store, base_url=llm.base_url)
    with pytest.raises(LLMError, match=r"store refused the reply.*max_allowed_packet") as caught:
        await agent.chat("write me a novel")
    assert caught.value.partial == llm.reply_text  # the reply is not lost
    messages = await store.list_messages(agent.session_id)
    assert [m.role for m in messages] == [Role.USER, Role.SYSTEM]
    assert messages[1].metadata["status"] == "failed"
    assert "max_allowed_packet" in messages[1].metadata["error"]
    assert list(agent.history) == messages
    await agent.close()


async def test_two_turns_at_once_each_answer_their_own_question(
    store: BaseStore, llm: LLMServer
) -> None:
    agent = await build(store, base_url=llm.base_url)
    first, second = await asyncio.gather(agent.chat_turn("first"), agent.chat_turn("second"))
    assert first.text.endswith("the last was: first")
    assert second.text.endswith("the last was: second")
    for request in llm.requests:
        assert request.messages[-1]["role"] == "user"
    assert list(agent.history) == await store.list_messages(agent.session_id)
    # The next turn sees both questions, each followed by its own answer.
    await agent.chat("third")
    assert [m["content"] for m in llm.requests[-1].messages] == [
        "first",
        first.text,
        "second",
        second.text,
        "third",
    ] or [m["content"] for m in llm.requests[-1].messages] == [
        "second",
        second.text,
        "first",
        first.text,
        "third",
    ]
    await agent.close()


async def test_an_unanswered_question_is_not_sent_again(store: BaseStore, llm: LLMServer) -> None:
    agent = await build(store, base_url=llm.base_url)
    await agent.chat("one")
    # A process killed mid-turn leaves a question without a reply or an error record.
    await store.append_message(agent.session_id, Role.USER, "lost in a crash")
    llm.failures.append((503, "Try again later"))
    with pytest.raises(LLMError, match="503"):
        await agent.chat("two")
    await agent.chat("two")  # the user retries with the same text
    assert [(m["role"], m["content"]) for m in llm.requests[-1].messages] == [
        ("user", "one"),
        ("assistant", "Reply to 1 user messages; the last was: one"),
        ("user", "two"),
    ]
    contents = [m.content for m in await store.list_messages(agent.session_id)]
    assert contents.count("two") == 2  # the store keeps everything
    assert "lost in a crash" in contents
    await agent.close()


async def test_an_error_event_in_a_stream_is_stored_as_partial(
    store: BaseStore, llm: LLMServer
) -> None:
    llm.stream_error_after = 3
    agent = await build(store, base_url=llm.base_url)
    received: list[str] = []
    with pytest.raises(LLMError, match="error in the middle of the stream"):
        await collect(agent.chat_stream("tell me"), received)
    messages = await store.list_messages(agent.session_id)
    assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT]
    assert messages[1].content == "".join(received) == "Reply to 1"
    assert messages[1].metadata["partial"] is True
    await agent.close()


async def test_an_empty_stream_is_a_failed_call(store: BaseStore, llm: LLMServer) -> None:
    llm.stream_empty = True
    agent = await build(store, base_url=llm.base_url)
    with pytest.raises(LLMError, match="not a chat completion"):
        await collect(agent.chat_stream("hello"), [])
    messages = await store.list_messages(agent.session_id)
    assert [m.role for m in messages] == [Role.USER, Role.SYSTEM]
    assert messages[1].metadata["status"] == "failed"
    await agent.close()


async def test_retry_after_is_recorded(store: BaseStore, llm: LLMServer) -> None:
    llm.failures.append((429, "Slow down"))
    llm.failure_headers = {"Retry-After": "7"}
    agent = await build(store, base_url=llm.base_url)
    with pytest.raises(LLMError) as caught:
        await agent.chat("hello")
    assert (caught.value.status, caught.value.retry_after) == (429, 7)
    error = (await store.list_messages(agent.session_id))[-1]
    assert (error.metadata["http_status"], error.metadata["retry_after"]) == (429, 7)
    await agent.close()


async def test_credentials_in_the_base_url_stay_out_of_the_error_record(store: BaseStore) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agent = await build(store, base_url=f"http://user:KEY-in-url-42@127.0.0.1:{port}/v1")
    with pytest.raises(LLMError) as caught:
        await agent.chat("hello")
    assert "KEY-in-url-42" not in str(caught.value)
    assert "KEY-in-url-42" not in repr(agent.provider)
    for message in await store.list_messages(agent.session_id):
        assert "KEY-in-url-42" not in message.content
        assert "KEY-in-url-42" not in str(message.metadata)
    await agent.close()


async def test_closing_right_after_a_plain_break_still_stores_the_partial_reply(
    tmp_path: Path, llm: LLMServer
) -> None:
    """The dropped stream is finalized in a task of its own; an agent that owns its store
    used to close the store under it, losing the partial reply (StoreClosedError)."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    url = f"sqlite://{tmp_path / 'agent.db'}"
    try:
        agent = await (
            LLMAgentBuilder.from_env({"OPENAI_BASE_URL": llm.base_url})
            .with_database_url(url)
            .build_async()
        )
        session_id = agent.session_id
        async for _chunk in agent.chat_stream("Hello there"):
            break  # no aclose(), no async with
        await agent.close()
        gc.collect()
        await asyncio.sleep(0.05)
        assert reported == []
    finally:
        loop.set_exception_handler(None)
    async with await open_store(url) as store:
        messages = await store.list_messages(session_id)
    assert [(m.role, m.content, m.metadata.get("partial")) for m in messages] == [
        (Role.USER, "Hello there", None),
        (Role.ASSISTANT, "Reply", True),
    ]


async def test_a_plain_break_stores_the_partial_reply_quietly(
    store: BaseStore, llm: LLMServer
) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        agent = await build(store, base_url=llm.base_url)
        async for _chunk in agent.chat_stream("Hello there"):
            break  # no aclose(), no async with: asyncio finalizes the dropped stream
        for _ in range(50):
            await asyncio.sleep(0.02)
            gc.collect()
            if await store.count_messages(agent.session_id) == 2:
                break
        messages = await store.list_messages(agent.session_id)
        assert [(m.role, m.content) for m in messages] == [
            (Role.USER, "Hello there"),
            (Role.ASSISTANT, "Reply"),
        ]
        assert messages[1].metadata["partial"] is True
        await agent.close()
        gc.collect()
        await asyncio.sleep(0.05)
        assert reported == []  # no "aclose(): asynchronous generator is already running"
    finally:
        loop.set_exception_handler(None)
