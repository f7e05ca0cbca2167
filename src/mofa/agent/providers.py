"""Language-model providers: an OpenAI-compatible HTTP client and a deterministic offline one.

A provider turns a conversation (OpenAI-style ``{"role", "content"}`` dictionaries, oldest
first) into a reply, whole (:meth:`LLMProvider.complete`) or streamed
(:meth:`LLMProvider.stream`)::

    provider = OpenAIProvider(api_key="sk-…", model="gpt-4o-mini")
    completion = await provider.complete([{"role": "user", "content": "Hello"}])
    async for delta in provider.stream([{"role": "user", "content": "Hello"}]):
        print(delta.content, end="")

Every failure of a call is one :class:`~mofa.agent.LLMError` that carries the HTTP status and
the server's message (never the API key, nor a password in the base URL). Settings that can
never work (a base URL with a bad port, an API key with a control or non-ASCII character) are
refused when the provider is made, with :class:`~mofa.agent.AgentError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx

from mofa.agent._errors import AgentError, LLMError
from mofa.persistence._url import mask_url

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "OFFLINE_MODEL",
    "ChatMessage",
    "Completion",
    "LLMProvider",
    "OfflineProvider",
    "OpenAIProvider",
    "StreamDelta",
    "Usage",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
OFFLINE_MODEL = "offline-echo-1"

#: One message of a conversation as sent to the model: ``{"role": …, "content": …}``.
ChatMessage = Mapping[str, str]

_MAX_ERROR_TEXT = 300


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, as the server reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole reply."""

    content: str
    model: str
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """One piece of a streamed reply: text, and (on the last pieces) usage and finish reason."""

    content: str = ""
    model: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None


@runtime_checkable
class LLMProvider(Protocol):
    """What the agent needs from a model: a name, a model, and two ways to call it."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion: ...

    def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[StreamDelta]: ...

    async def aclose(self) -> None: ...


def _usage(data: object) -> Usage | None:
    if not isinstance(data, dict):
        return None

    def number(key: str) -> int:
        value = data.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    prompt, completion = number("prompt_tokens"), number("completion_tokens")
    return Usage(prompt, completion, number("total_tokens") or prompt + completion)


def check_timeout(seconds: object) -> float:
    """``seconds`` as the deadline of a model call, refused unless a positive number."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise AgentError(f"The LLM timeout must be a positive number of seconds, not {seconds!r}.")
    return float(seconds)


class OpenAIProvider:
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LM Studio…).

    Args:
        api_key: sent as ``Authorization: Bearer …``; ``None`` sends no header (local servers).
        base_url: the API root; requests go to ``{base_url}/chat/completions``.
        model: the model name sent with every request.
        temperature: sampling temperature; ``None`` leaves the server's default.
        max_tokens: a cap on the reply length; ``None`` leaves the server's default.
        timeout: a deadline in seconds: for the whole answer of :meth:`complete`; for a
            stream, for its first event and then between two events (a stream may run
            longer in total, as long as it keeps sending).

    Raises:
        AgentError: the base URL is not an http(s) URL with a valid port, the API key holds
            a control or non-ASCII character, or the timeout is not positive.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._api_key = _checked_api_key(api_key)
        self.base_url = _checked_base_url(base_url)
        #: The base URL as shown in messages and reprs: any password masked.
        self.shown_base_url = mask_url(self.base_url)
        self._secrets = [s for s in (self._api_key, _url_password(self.base_url)) if s]
        self._model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = check_timeout(timeout)
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))
        )

    def __repr__(self) -> str:  # the key stays out of reprs and logs
        return f"OpenAIProvider(base_url={self.shown_base_url!r}, model={self._model!r})"

    @property
    def name(self) -> str:
        return "openai"

    @property
    def model(self) -> str:
        return self._model

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def shown_url(self) -> str:
        """:attr:`url` with any password masked (what messages show)."""
        return f"{self.shown_base_url}/chat/completions"

    async def aclose(self) -> None:
        await self._client.aclose()

    def _body(self, messages: Sequence[ChatMessage], stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text

    def _timeout_error(self, partial: str = "") -> LLMError:
        return LLMError(
            f"The LLM request to {self.shown_url} timed out after {self.timeout:g} s; "
            "check the server or raise the timeout.",
            provider=self.name,
            partial=partial,
        )

    def _transport_error(self, exc: httpx.HTTPError, partial: str = "") -> LLMError:
        if isinstance(exc, httpx.TimeoutException):
            return self._timeout_error(partial)
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            message = (
                f"The LLM stream from {self.shown_url} was cut off before it finished."
                if partial
                else f"The LLM server at {self.shown_url} closed the connection before answering."
            )
        else:
            detail = self._redact(str(exc)) or type(exc).__name__
            message = (
                f"Cannot reach the LLM server at {self.shown_url} ({detail}); check the base URL."
            )
        return LLMError(message, provider=self.name, partial=partial)

    def _status_error(self, response: httpx.Response, body: bytes) -> LLMError:
        detail = ""
        try:
            data = json.loads(body)
        except ValueError:
            detail = body.decode("utf-8", "replace").strip()
        else:
            error = data.get("error") if isinstance(data, dict) else None
            if isinstance(error, dict):
                detail = str(error.get("message") or "")
            elif isinstance(error, str):
                detail = error
            elif isinstance(data, dict) and isinstance(data.get("message"), str):
                detail = data["message"]
        detail = self._detail(detail)
        reason = response.reason_phrase or "error"
        retry_after = _retry_after(response.headers.get("retry-after"))
        message = f"The LLM server answered {response.status_code} {reason}"
        message += f": {detail}" if detail else ""
        message += f"; retry after {retry_after:g} s." if retry_after is not None else "."
        return LLMError(
            message, status=response.status_code, provider=self.name, retry_after=retry_after
        )

    def _detail(self, text: str) -> str:
        """A server's error text as one short, secret-free line without a final period."""
        return self._redact(" ".join(text.split()))[:_MAX_ERROR_TEXT].rstrip(".")

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.post(self.url, json=self._body(messages, False))
        except TimeoutError:
            raise self._timeout_error() from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise self._status_error(response, response.content)
        try:
            data = response.json()
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(
                f"The LLM server at {self.shown_url} sent an answer that is not a chat completion.",
                status=response.status_code,
                provider=self.name,
            ) from None
        return Completion(
            content=str(content),
            model=str(data.get("model") or self._model),
            usage=_usage(data.get("usage")),
            finish_reason=choice.get("finish_reason"),
        )

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[StreamDelta]:
        received: list[str] = []
        finished = False  # [DONE] or a finish_reason arrived
        finish_reason_seen = False
        loop = asyncio.get_running_loop()
        # The answer must start, and each event follow the previous one, within the timeout
        # (a server trickling bytes cannot keep the call open forever).
        deadline = loop.time() + self.timeout
        request = self._client.build_request("POST", self.url, json=self._body(messages, True))
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._client.send(request, stream=True)
        except TimeoutError:
            raise self._timeout_error() from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        try:
            if response.status_code >= 400:
                async with asyncio.timeout_at(deadline):
                    body = await response.aread()
                raise self._status_error(response, body)
            lines = response.aiter_lines()
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        line = await anext(lines)
                except StopAsyncIteration:
                    break
                if not line.startswith("data:"):
                    continue  # SSE comments, event names and blank separators
                deadline = loop.time() + self.timeout
                payload = line[5:].strip()
                if payload == "[DONE]":
                    finished = True
                    break
                try:
                    data = json.loads(payload)
                except ValueError:
                    continue
                if not isinstance(data, dict):
                    continue
                if data.get("error") and not data.get("choices"):
                    raise self._stream_error(data["error"], "".join(received))
                choices = data.get("choices") or []
                choice = choices[0] if choices and isinstance(choices[0], dict) else {}
                delta = StreamDelta(
                    content=str((choice.get("delta") or {}).get("content") or ""),
                    model=data.get("model"),
                    usage=_usage(data.get("usage")),
                    finish_reason=choice.get("finish_reason"),
                )
                if delta.finish_reason:
                    finished = finish_reason_seen = True
                if delta.content:
                    received.append(delta.content)
                yield delta
        except TimeoutError:
            raise self._timeout_error("".join(received)) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, "".join(received)) from exc
        finally:
            await response.aclose()
        if not finished:
            raise LLMError(
                f"The LLM stream from {self.shown_url} ended before the reply was finished.",
                provider=self.name,
                partial="".join(received),
            )
        if not received and not finish_reason_seen:
            # The same as a non-streamed answer without choices: nothing says it is a reply.
            raise LLMError(
                f"The LLM server at {self.shown_url} sent a stream that is not a chat "
                "completion (no text and no finish reason).",
                provider=self.name,
            )

    def _stream_error(self, error: object, partial: str) -> LLMError:
        """The LLMError for an ``{"error": …}`` event in the middle of a stream."""
        detail = error.get("message") if isinstance(error, dict) else error
        text = self._detail(str(detail or ""))
        message = (
            f"The LLM server reported an error in the middle of the stream from {self.shown_url}"
        )
        message += f": {text}." if text else "."
        return LLMError(message, provider=self.name, partial=partial)


def _checked_api_key(api_key: str | None) -> str | None:
    """The key without surrounding whitespace (a YAML ``|`` block or a secret file's newline);
    a key that could never be sent as a header is refused without being shown."""
    if api_key is None:
        return None
    key = str(api_key).strip()
    if not key:
        return None
    if not key.isascii() or not key.isprintable():
        raise AgentError(
            "The API key contains a control or non-ASCII character, so it cannot be sent; "
            "check how it was copied (the key is not shown)."
        )
    return key


def _checked_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash, refused unless it is an http(s) URL with a host
    and a valid port."""
    text = str(base_url).strip().rstrip("/")
    shown = mask_url(text)
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise AgentError(
            f"The LLM base URL {shown!r} is not a valid URL; use for example "
            "http://localhost:11434/v1."
        ) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise AgentError(
            f"The LLM base URL {shown!r} must start with http:// or https:// and name a host; "
            "use for example http://localhost:11434/v1."
        )
    if url.port is not None and not 0 < url.port < 65536:
        raise AgentError(
            f"The LLM base URL {shown!r} has an invalid port ({url.port}); "
            "use a port from 1 to 65535."
        )
    return text


def _url_password(url: str) -> str | None:
    password = httpx.URL(url).password
    return password or None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, round(seconds, 3))


class OfflineProvider:
    """A deterministic stand-in for a model: no network, same input, same reply.

    It answers from the conversation it is given, so a resumed conversation visibly
    continues: the reply says how many earlier user turns it sees and quotes the first
    and the latest user message. Token counts are word counts.
    """

    def __init__(self, model: str = OFFLINE_MODEL) -> None:
        self._model = model

    def __repr__(self) -> str:
        return f"OfflineProvider(model={self._model!r})"

    @property
    def name(self) -> str:
        return "offline"

    @property
    def model(self) -> str:
        return self._model

    async def aclose(self) -> None:
        return None

    def reply_for(self, messages: Sequence[ChatMessage]) -> str:
        """The reply this provider gives to ``messages``."""
        user_turns = [m["content"] for m in messages if m.get("role") == "user"]
        if not user_turns:
            return "[offline] There is no user message to answer yet."
        latest, earlier = user_turns[-1], len(user_turns) - 1
        if earlier == 0:
            return f'[offline] This is the first turn I see; you said: "{_quote(latest)}"'
        turns = "turn" if earlier == 1 else "turns"
        return (
            f"[offline] I see {earlier} earlier {turns} in this conversation "
            f'(it began with "{_quote(user_turns[0])}"); you said: "{_quote(latest)}"'
        )

    def _usage(self, messages: Sequence[ChatMessage], reply: str) -> Usage:
        prompt = sum(len(m.get("content", "").split()) for m in messages)
        completion = len(reply.split())
        return Usage(prompt, completion, prompt + completion)

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
        reply = self.reply_for(messages)
        return Completion(reply, self._model, self._usage(messages, reply), "stop")

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[StreamDelta]:
        reply = self.reply_for(messages)
        words = reply.split(" ")
        for index, word in enumerate(words):
            yield StreamDelta(content=word if index == 0 else " " + word, model=self._model)
        yield StreamDelta(
            model=self._model, usage=self._usage(messages, reply), finish_reason="stop"
        )


def _quote(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
