"""Providers: the OpenAI-compatible client against a local server, the offline one, from_env."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mofa.agent import (
    AgentError,
    LLMAgentBuilder,
    LLMError,
    OfflineProvider,
    OpenAIProvider,
    StreamDelta,
    Usage,
)
from mofa.agent.providers import DEFAULT_BASE_URL, DEFAULT_MODEL
from tests.agent.llm_server import LLMServer


async def collect(deltas: AsyncIterator[StreamDelta], into: list[str]) -> None:
    async for delta in deltas:
        into.append(delta.content)


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello there"},
    {"role": "assistant", "content": "Hi!"},
    {"role": "user", "content": "How are you?"},
]


async def test_offline_is_deterministic_and_answers_from_the_conversation() -> None:
    provider = OfflineProvider()
    first = await provider.complete(CONVERSATION)
    again = await OfflineProvider().complete(list(CONVERSATION))
    assert first == again
    assert provider.name == "offline"
    assert "1 earlier turn" in first.content
    assert '"Hello there"' in first.content
    assert '"How are you?"' in first.content
    assert first.usage == Usage(8, len(first.content.split()), 8 + len(first.content.split()))


async def test_offline_streams_the_same_reply() -> None:
    provider = OfflineProvider()
    deltas = [delta async for delta in provider.stream(CONVERSATION)]
    assert len([d for d in deltas if d.content]) > 3
    assert "".join(d.content for d in deltas) == (await provider.complete(CONVERSATION)).content
    assert deltas[-1].usage is not None
    assert deltas[-1].finish_reason == "stop"


async def test_complete_posts_a_chat_completion(llm: LLMServer) -> None:
    provider = OpenAIProvider(
        api_key="sk-test-123", base_url=llm.base_url, model="m-1", temperature=0.2
    )
    completion = await provider.complete(CONVERSATION)
    await provider.aclose()
    request = llm.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-123"
    assert request.body == {"model": "m-1", "messages": CONVERSATION, "temperature": 0.2}
    assert completion.content == "Reply to 2 user messages; the last was: How are you?"
    assert completion.model == "test-model-1"
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0
    assert completion.finish_reason == "stop"


async def test_stream_sends_stream_options_and_collects_usage(llm: LLMServer) -> None:
    provider = OpenAIProvider(api_key="sk-test-123", base_url=llm.base_url)
    deltas = [delta async for delta in provider.stream(CONVERSATION)]
    await provider.aclose()
    body = llm.requests[-1].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["model"] == DEFAULT_MODEL
    assert "".join(d.content for d in deltas) == llm.reply_for(CONVERSATION)
    usages = [d.usage for d in deltas if d.usage is not None]
    assert usages
    assert usages[-1].prompt_tokens == 8


@pytest.mark.parametrize("stream", [False, True])
async def test_http_errors_carry_status_and_message_never_the_key(
    llm: LLMServer, stream: bool
) -> None:
    secret = "sk-very-secret-key"
    llm.failures.append((401, f"Incorrect API key provided: {secret}. Check your key."))
    provider = OpenAIProvider(api_key=secret, base_url=llm.base_url)
    call = collect(provider.stream(CONVERSATION), []) if stream else provider.complete(CONVERSATION)
    with pytest.raises(LLMError) as caught:
        await call
    await provider.aclose()
    assert caught.value.status == 401
    message = str(caught.value)
    assert message.startswith("The LLM server answered 401 Unauthorized: Incorrect API key")
    assert secret not in message
    assert secret not in repr(provider)
    assert "\n" not in message


async def test_a_cut_stream_is_an_error_with_what_arrived(llm: LLMServer) -> None:
    llm.cut_after_chunks = 3
    provider = OpenAIProvider(base_url=llm.base_url)
    received: list[str] = []
    with pytest.raises(LLMError, match="cut off") as caught:
        await collect(provider.stream(CONVERSATION), received)
    await provider.aclose()
    assert caught.value.partial == "".join(received) == "Reply to 2"


async def test_timeout_is_an_llm_error(llm: LLMServer) -> None:
    llm.delay = 2.0
    provider = OpenAIProvider(base_url=llm.base_url, timeout=0.2)
    with pytest.raises(LLMError, match=r"timed out after 0\.2 s") as caught:
        await provider.complete(CONVERSATION)
    await provider.aclose()
    assert caught.value.status is None


async def test_unreachable_server_is_an_llm_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAIProvider(base_url=f"http://127.0.0.1:{port}/v1", timeout=5)
    with pytest.raises(LLMError, match="Cannot reach the LLM server"):
        await provider.complete(CONVERSATION)
    await provider.aclose()


def test_without_key_or_url_building_is_one_error_not_a_fake_model() -> None:
    """A deployment that lost its key must not store "[offline] …" echoes as answers."""
    with pytest.raises(AgentError) as caught:
        LLMAgentBuilder.from_env({})._make_provider()
    assert str(caught.value) == (
        "No model endpoint is configured: set OPENAI_API_KEY (api.openai.com) or "
        "OPENAI_BASE_URL (any OpenAI-compatible server), or ask for the offline echo provider "
        "with MOFA_LLM_PROVIDER=offline, llm.provider: offline in agent.yml or "
        "with_offline_provider()."
    )


async def test_the_build_fails_before_opening_the_store(tmp_path: Path) -> None:
    builder = LLMAgentBuilder.from_env({}).with_database_url(f"sqlite://{tmp_path / 'm.db'}")
    with pytest.raises(AgentError, match=r"^No model endpoint is configured"):
        await builder.build_async()
    assert not (tmp_path / "m.db").exists()


@pytest.mark.parametrize(
    "builder",
    [
        pytest.param(lambda: LLMAgentBuilder.from_env({"MOFA_LLM_PROVIDER": "offline"}), id="env"),
        pytest.param(lambda: LLMAgentBuilder.from_env({}).with_offline_provider(), id="builder"),
    ],
)
def test_offline_is_used_when_asked_for(builder: Callable[[], LLMAgentBuilder]) -> None:
    provider, _ = builder()._make_provider()
    assert isinstance(provider, OfflineProvider)
    assert provider.name == "offline"


def test_offline_from_agent_yml(tmp_path: Path) -> None:
    config = tmp_path / "agent.yml"
    config.write_text("persistence:\n  enabled: false\nllm:\n  provider: offline\n")
    provider, _ = LLMAgentBuilder.from_config(config, environ={})._make_provider()
    assert isinstance(provider, OfflineProvider)


def test_an_unknown_provider_variable_is_one_sentence() -> None:
    with pytest.raises(AgentError) as caught:
        LLMAgentBuilder.from_env({"MOFA_LLM_PROVIDER": "ofline"})
    assert (
        str(caught.value) == "MOFA_LLM_PROVIDER='ofline' is not a provider; use openai or offline."
    )


@pytest.mark.parametrize(
    ("environ", "base_url", "model"),
    [
        ({"OPENAI_API_KEY": "sk-x"}, DEFAULT_BASE_URL, DEFAULT_MODEL),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1/"}, "http://127.0.0.1:9/v1", DEFAULT_MODEL),
        ({"OPENAI_API_KEY": "sk-x", "OPENAI_MODEL": "gpt-x"}, DEFAULT_BASE_URL, "gpt-x"),
        ({"OPENAI_API_KEY": "sk-x", "MOFA_MODEL": "local-y"}, DEFAULT_BASE_URL, "local-y"),
    ],
)
def test_from_env_configures_the_openai_provider(
    environ: dict[str, str], base_url: str, model: str
) -> None:
    provider, owned = LLMAgentBuilder.from_env(environ)._make_provider()
    assert isinstance(provider, OpenAIProvider)
    assert owned
    assert (provider.name, provider.base_url, provider.model) == ("openai", base_url, model)


# ------------------------------------------------------------ misbehaving servers, bad settings


async def test_a_key_with_surrounding_whitespace_is_sent_stripped(llm: LLMServer) -> None:
    # A YAML "|" block or a secret file leaves a newline after the key.
    provider = OpenAIProvider(api_key="  sk-live-abcdef123456\n", base_url=llm.base_url)
    await provider.complete(CONVERSATION)
    await provider.aclose()
    assert llm.requests[-1].headers["authorization"] == "Bearer sk-live-abcdef123456"


@pytest.mark.parametrize("key", ["sk-SECRÉT-123", "sk-sec\x01ret-123", "sk-sec\nret-123"])
async def test_a_key_that_cannot_be_a_header_is_refused_at_build(llm: LLMServer, key: str) -> None:
    builder = LLMAgentBuilder.from_env({}).with_base_url(llm.base_url).with_api_key(key)
    with pytest.raises(AgentError, match="API key contains a control or non-ASCII") as caught:
        await builder.build_async()
    assert key not in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not llm.requests


@pytest.mark.parametrize(
    ("base_url", "fragment"),
    [
        ("http://127.0.0.1:99999/v1", "invalid port (99999); use a port from 1 to 65535"),
        ("http://127.0.0.1:abc/v1", "is not a valid URL"),
        ("ftp://127.0.0.1/v1", "must start with http:// or https://"),
        ("localhost:8080/v1", "must start with http:// or https://"),
    ],
)
async def test_a_base_url_that_cannot_work_is_refused_at_build(
    base_url: str, fragment: str
) -> None:
    builder = LLMAgentBuilder.from_env({}).with_base_url(base_url)
    with pytest.raises(AgentError) as caught:
        await builder.build_async()
    assert fragment in str(caught.value)


async def test_credentials_in_the_base_url_are_masked() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAIProvider(base_url=f"http://user:KEY-in-url-42@127.0.0.1:{port}/v1")
    with pytest.raises(LLMError) as caught:
        await provider.complete(CONVERSATION)
    await provider.aclose()
    assert f"http://user:****@127.0.0.1:{port}/v1" in str(caught.value)
    assert "KEY-in-url-42" not in str(caught.value)
    assert "KEY-in-url-42" not in repr(provider)


async def test_retry_after_is_kept(llm: LLMServer) -> None:
    llm.failures.append((429, "Rate limit reached"))
    llm.failure_headers = {"Retry-After": "7"}
    provider = OpenAIProvider(base_url=llm.base_url)
    with pytest.raises(LLMError) as caught:
        await provider.complete(CONVERSATION)
    await provider.aclose()
    assert (caught.value.status, caught.value.retry_after) == (429, 7)
    assert str(caught.value) == (
        "The LLM server answered 429 Too Many Requests: Rate limit reached; retry after 7 s."
    )


async def test_an_error_event_in_a_stream_is_an_error_with_what_arrived(
    llm: LLMServer,
) -> None:
    llm.stream_error_after = 2
    provider = OpenAIProvider(base_url=llm.base_url)
    received: list[str] = []
    with pytest.raises(LLMError, match=r"error in the middle of the stream.*crashed") as caught:
        await collect(provider.stream(CONVERSATION), received)
    await provider.aclose()
    assert caught.value.partial == "".join(received) == "Reply to"


async def test_an_empty_stream_is_not_a_reply(llm: LLMServer) -> None:
    llm.stream_empty = True
    provider = OpenAIProvider(base_url=llm.base_url)
    with pytest.raises(LLMError, match="not a chat completion"):
        await collect(provider.stream(CONVERSATION), [])
    await provider.aclose()


@pytest.mark.parametrize("stream", [False, True])
async def test_the_timeout_is_a_deadline_even_for_a_trickling_server(
    llm: LLMServer, stream: bool
) -> None:
    llm.trickle = 0.05  # a byte every 50 ms: every read succeeds, the answer never ends
    provider = OpenAIProvider(base_url=llm.base_url, timeout=0.5)
    call = collect(provider.stream(CONVERSATION), []) if stream else provider.complete(CONVERSATION)
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"timed out after 0\.5 s"):
        await asyncio.wait_for(call, 30)
    await provider.aclose()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("seconds", [0, -1])
def test_a_timeout_that_is_not_positive_is_refused(seconds: float) -> None:
    with pytest.raises(AgentError, match="timeout must be a positive number"):
        LLMAgentBuilder().with_timeout(seconds)
    with pytest.raises(AgentError, match="timeout must be a positive number"):
        OpenAIProvider(timeout=seconds)
