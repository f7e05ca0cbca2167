"""A local OpenAI-compatible chat-completions server for tests (stdlib only, in a thread).

It records every request (path, headers, JSON body) and answers deterministically: the reply
names how many user messages it received and quotes the last one. It can be told to fail the
next calls (status and message, with extra headers such as Retry-After), to cut the next
stream after some chunks, to be slow, and to misbehave: answer a fixed text (NUL, lone
surrogates…), report an error in the middle of a stream, send an empty stream, or trickle
its answer one byte at a time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, str]]:
        return list(self.body.get("messages", []))


@dataclass
class LLMServer:
    """State shared with the handler threads; the tests read and steer it."""

    model: str = "test-model-1"
    requests: list[RecordedRequest] = field(default_factory=list)
    #: (status, message) answers for the next calls, used up one per call.
    failures: list[tuple[int, str]] = field(default_factory=list)
    #: Cut the next stream after this many content chunks (then close the connection).
    cut_after_chunks: int | None = None
    #: Seconds to wait before answering (for timeout tests).
    delay: float = 0.0
    #: Extra headers sent with the failure answers (e.g. ``{"Retry-After": "7"}``).
    failure_headers: dict[str, str] = field(default_factory=dict)
    #: Answer this text instead of the usual reply (streamed word by word).
    reply_text: str | None = None
    #: Streams send an ``{"error": …}`` event after this many content chunks, then [DONE].
    stream_error_after: int | None = None
    #: Streams send nothing but ``data: [DONE]`` (no text, no finish reason).
    stream_empty: bool = False
    #: Send the answer one byte every this many seconds (a server that never times out).
    trickle: float | None = None
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reply_for(self, messages: list[dict[str, str]]) -> str:
        if self.reply_text is not None:
            return self.reply_text
        users = [m["content"] for m in messages if m.get("role") == "user"]
        return f"Reply to {len(users)} user messages; the last was: {users[-1] if users else ''}"


def _handler(server: LLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def _json(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self._write(data)

        def _write(self, data: bytes) -> None:
            if server.trickle is None:
                self.wfile.write(data)
                return
            for index in range(len(data)):  # until the client gives up and the write fails
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
                time.sleep(server.trickle)

        def _chunk(self, data: bytes) -> None:
            self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def do_POST(self) -> None:
            try:
                self._answer()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away (a timeout test)

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with server.lock:
                server.requests.append(
                    RecordedRequest(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                failure = server.failures.pop(0) if server.failures else None
                cut = server.cut_after_chunks if body.get("stream") else None
                if cut is not None:
                    server.cut_after_chunks = None
            if server.delay:
                time.sleep(server.delay)
            if self.path != "/v1/chat/completions":
                self._json(404, {"error": {"message": f"No route {self.path}"}})
                return
            if failure is not None:
                status, message = failure
                self._json(
                    status,
                    {"error": {"message": message, "type": "test_error"}},
                    server.failure_headers,
                )
                return
            messages = body.get("messages", [])
            reply = server.reply_for(messages)
            prompt_tokens = sum(len(m.get("content", "").split()) for m in messages)
            completion_tokens = len(reply.split())
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            if not body.get("stream"):
                self._json(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "model": server.model,
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": reply},
                            }
                        ],
                        "usage": usage,
                    },
                )
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if server.stream_empty:
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")
                return
            words = reply.split(" ")
            for index, word in enumerate(words):
                if server.stream_error_after is not None and index >= server.stream_error_after:
                    error = {"error": {"message": "The model crashed mid-reply", "code": 500}}
                    self._chunk(f"data: {json.dumps(error)}\n\n".encode())
                    self._chunk(b"data: [DONE]\n\n")
                    self._chunk(b"")
                    return
                if cut is not None and index >= cut:
                    # Half an event, then the connection drops: a stream cut off mid-reply.
                    self.wfile.write(b'20\r\ndata: {"choices"')
                    self.wfile.flush()
                    self.close_connection = True
                    return
                piece = word if index == 0 else " " + word
                event = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "model": server.model,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                self._chunk(f"data: {json.dumps(event)}\n\n".encode())
            final = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "model": server.model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            self._chunk(f"data: {json.dumps(final)}\n\n".encode())
            if (body.get("stream_options") or {}).get("include_usage"):
                usage_event = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "model": server.model,
                    "choices": [],
                    "usage": usage,
                }
                self._chunk(f"data: {json.dumps(usage_event)}\n\n".encode())
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")

    return Handler


@contextmanager
def llm_server() -> Iterator[LLMServer]:
    """Start the server on 127.0.0.1 (a free port) for the duration of the block."""
    state = LLMServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
