"""A local OpenAI-compatible chat-completions server for tests (stdlib only, in a thread).

It records every request (path, headers, JSON body) and answers deterministically: the reply
names how many user messages it received and quotes the last one. It can be told to fail the
next calls (status and message), to cut the next stream after some chunks, or to be slow.
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
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reply_for(self, messages: list[dict[str, str]]) -> str:
        users = [m["content"] for m in messages if m.get("role") == "user"]
        return f"Reply to {len(users)} user messages; the last was: {users[-1] if users else ''}"


def _handler(server: LLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def do_POST(self) -> None:
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
                self._json(status, {"error": {"message": message, "type": "test_error"}})
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
            words = reply.split(" ")
            for index, word in enumerate(words):
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
