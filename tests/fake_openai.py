"""A real OpenAI-compatible HTTP server on 127.0.0.1 serving scripted replies, for tests.

It speaks ``POST /v1/chat/completions`` (SSE streaming with ``: keep-alive`` comments, or one JSON
body after DeepSeek-style leading blank lines) and ``GET /v1/models``, and logs every request it
received (method, path, headers, body bytes). Replies are taken from a queue, one per request:

    server.script(Chat('{"summary": "ok", "findings": []}'), Status(429, headers={"Retry-After": "1"}))
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import termios
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# DeepSeek's context-length 400, verbatim as captured by third parties (see the client's detector).
CONTEXT_400 = {
    "error": {
        "message": "This model's maximum context length is 1048576 tokens. However, you requested 1050237"
        " tokens (666237 in the messages, 384000 in the completion). Please reduce the length of the"
        " messages or completion.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request_error",
    }
}


@dataclass
class Chat:
    """A chat completion: ``content`` streamed in pieces, or sent whole when not streaming."""

    content: str
    finish_reason: str | None = "stop"
    usage: dict[str, Any] | None = None
    reasoning: str | None = None
    keepalives: int = 2  # ": keep-alive" comments (streaming) or blank lines (not) sent first
    piece: int = 16  # characters per streamed chunk
    delay: float = 0.0  # seconds to wait before answering (so that requests overlap)


@dataclass
class Status:
    """An error answer: an HTTP status with a JSON (or text) body and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ResetAfter:
    """Stream ``content`` (a prefix of a reply), then reset the connection (TCP RST)."""

    content: str
    piece: int = 16


@dataclass
class Interrupt:
    """Stream ``content``, then send SIGINT to the test's main thread (a real Ctrl-C), or
    ``signum`` to the process ``pid()`` names (a client run as a real process: SIGTERM from CI)."""

    content: str
    piece: int = 16
    settle: float = 0.3  # let the client take in what was sent before the signal
    signum: int = signal.SIGINT
    pid: Callable[[], int] | None = None


@dataclass
class EmptyStream:
    """A 200 event stream that closes at once with no event (llama-cpp-python's way to fail)."""


@dataclass
class Raw:
    """Any body at all, with a status and a content type: HTML pages, garbage, broken SSE."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200


@dataclass
class Stall:
    """Send only keep-alive comments, every ``every`` seconds, for at most ``seconds``."""

    seconds: float = 2.0
    every: float = 0.05


Script = Chat | Status | ResetAfter | Interrupt | EmptyStream | Stall | Raw


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def usage(
    prompt: int = 100, completion: int = 20, hit: int | None = None, reasoning: int | None = None
) -> dict[str, Any]:
    """An OpenAI usage object with DeepSeek's cache fields when ``hit`` is given."""
    u: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if hit is not None:
        u["prompt_cache_hit_tokens"] = hit
        u["prompt_cache_miss_tokens"] = prompt - hit
    if reasoning is not None:
        u["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return u


def _unacked(sock: socket.socket) -> int:
    """Bytes sent on ``sock`` that the peer has not acknowledged yet (Linux SIOCOUTQ)."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return 0


class FakeOpenAI:
    """The server; use as a context manager or call close()."""

    def __init__(
        self,
        models: list[dict[str, Any]] | None = None,
        models_raw: Raw | None = None,
        respond: Callable[[dict[str, Any]], Script] | None = None,
    ) -> None:
        self.models_raw = models_raw  # what GET /models answers instead of the list, if set
        self.replies: deque[Script] = deque()
        self.requests: list[Received] = []
        # Replies chosen from each request's body (concurrent requests arrive in any order);
        # used when the queue is empty.
        self.respond = respond
        self.in_flight = 0  # chat requests being answered now
        self.max_in_flight = 0  # the most ever answered at once
        self.models = models if models is not None else [{"id": "deepseek-flash", "object": "model"}]
        self.main_thread = threading.main_thread().ident
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _record(self, body: bytes) -> None:
                with fake._lock:
                    fake.requests.append(
                        Received(
                            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                        )
                    )

            def do_GET(self) -> None:
                self._record(b"")
                if self.path.rstrip("/").endswith("/models") and fake.models_raw is not None:
                    self._send_raw(fake.models_raw)
                elif self.path.rstrip("/").endswith("/models"):
                    self._send_json(200, {"object": "list", "data": fake.models})
                else:
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                self._record(body)
                if not self.path.endswith("/chat/completions"):
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                request = json.loads(body)
                with fake._lock:
                    reply = fake.replies.popleft() if fake.replies else None
                if reply is None and fake.respond is not None:
                    reply = fake.respond(request)
                if reply is None:
                    self._send_json(500, {"error": {"message": "the fake has no scripted reply left"}})
                    return
                with fake._lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._answer(reply, request)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self, reply: Script, request: dict[str, Any]) -> None:
                stream = bool(request.get("stream"))
                if isinstance(reply, Status):
                    payload = (
                        reply.body
                        if reply.body is not None
                        else {"error": {"message": f"HTTP {reply.status}"}}
                    )
                    self._send_json(reply.status, payload, reply.headers)
                elif isinstance(reply, Chat):
                    if reply.delay:
                        time.sleep(reply.delay)
                    if stream:
                        self._stream_chat(reply, request)
                    else:
                        self._whole_chat(reply, request)
                elif isinstance(reply, ResetAfter):
                    self._start_stream()
                    self._chunks(reply.content, reply.piece, request)
                    self._reset()
                elif isinstance(reply, Interrupt):
                    self._start_stream()
                    self._chunks(reply.content, reply.piece, request)
                    end = time.monotonic() + 2.0
                    while _unacked(self.connection) and time.monotonic() < end:
                        time.sleep(0.005)
                    time.sleep(reply.settle)
                    if reply.pid is not None:
                        os.kill(reply.pid(), reply.signum)
                        time.sleep(2.0)  # the client answers the signal, not a reset
                    elif fake.main_thread is not None:
                        signal.pthread_kill(fake.main_thread, reply.signum)
                    time.sleep(0.05)
                    self._reset()
                elif isinstance(reply, Raw):
                    self._send_raw(reply)
                elif isinstance(reply, EmptyStream):
                    self._start_stream()
                    self.wfile.flush()
                elif isinstance(reply, Stall):
                    self._start_stream()
                    end = time.monotonic() + reply.seconds
                    try:
                        while time.monotonic() < end:
                            self.wfile.write(b": keep-alive\n\n")
                            self.wfile.flush()
                            time.sleep(reply.every)
                    except OSError:
                        pass
                    self.close_connection = True

            # -- helpers ----------------------------------------------------------------------

            def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _send_raw(self, raw: Raw) -> None:
                self.send_response(raw.status)
                self.send_header("Content-Type", raw.content_type)
                self.send_header("Content-Length", str(len(raw.body)))
                self.end_headers()
                self.wfile.write(raw.body)

            def _start_stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

            def _event(self, payload: Any) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

            def _chunk(
                self, request: dict[str, Any], delta: dict[str, Any], finish: str | None = None
            ) -> dict[str, Any]:
                return {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": request.get("model", "fake"),
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }

            def _chunks(self, content: str, piece: int, request: dict[str, Any]) -> None:
                self._event(self._chunk(request, {"role": "assistant", "content": ""}))
                for i in range(0, len(content), piece):
                    self._event(self._chunk(request, {"content": content[i : i + piece]}))

            def _stream_chat(self, reply: Chat, request: dict[str, Any]) -> None:
                self._start_stream()
                for _ in range(reply.keepalives):
                    self.wfile.write(b": keep-alive\n\n")
                if reply.reasoning:
                    self._event(
                        self._chunk(request, {"role": "assistant", "reasoning_content": reply.reasoning})
                    )
                self._chunks(reply.content, reply.piece, request)
                self._event(self._chunk(request, {}, reply.finish_reason))
                if reply.usage is not None:
                    chunk = self._chunk(request, {})
                    chunk["choices"] = []
                    chunk["usage"] = reply.usage
                    self._event(chunk)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _whole_chat(self, reply: Chat, request: dict[str, Any]) -> None:
                message: dict[str, Any] = {"role": "assistant", "content": reply.content}
                if reply.reasoning:
                    message["reasoning_content"] = reply.reasoning
                payload: dict[str, Any] = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 1,
                    "model": request.get("model", "fake"),
                    "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                }
                if reply.usage is not None:
                    payload["usage"] = reply.usage
                data = b"\n" * reply.keepalives + json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _reset(self) -> None:
                """Abort the connection with a TCP RST, as a dropped proxy or server would."""
                try:
                    self.wfile.flush()
                    # Closing with SO_LINGER 0 drops unsent bytes: first let the peer take them all.
                    end = time.monotonic() + 2.0
                    while _unacked(self.connection) and time.monotonic() < end:
                        time.sleep(0.005)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                except OSError:
                    pass
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Script) -> FakeOpenAI:
        self.replies.extend(replies)
        return self

    @property
    def chats(self) -> list[Received]:
        """The chat-completion requests received, in order."""
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/chat/completions")]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
