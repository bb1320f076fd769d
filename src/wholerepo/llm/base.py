"""What a review needs from a model, and nothing else: the ChatModel protocol and its data.

``complete(request)`` returns a whole ``Reply`` or raises an EndpointError; ``list_models()``
says what the endpoint serves. The OpenAI-compatible implementation is openai_compat.py; tests
and the audit's planner use any object with these two coroutines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import EndpointError

# The default window: DeepSeek V4's 1,048,576 tokens.
DEFAULT_WINDOW = 1_048_576

EventSink = Callable[[str], None]  # one line per event: a retry, a fallback, the reply's start


@dataclass(frozen=True)
class ChatRequest:
    """One review request: a system and a user message and the reply's token limit."""

    system: str
    user: str
    max_tokens: int


@dataclass(frozen=True)
class Usage:
    """Token usage as the endpoint reported it (any figure may be missing)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_hit_tokens: int | None = None
    cache_miss_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True)
class Reply:
    """A whole reply, built once when it is complete."""

    content: str
    reasoning: str
    finish_reason: str | None
    usage: Usage | None
    json_mode: bool  # False when the endpoint had no JSON mode and was asked in words only
    attempts: int


@dataclass(frozen=True)
class ModelInfo:
    id: str
    max_model_len: int | None = None


@dataclass
class Transcript:
    """What has arrived so far; the caller keeps it to save partial work on Ctrl-C or failure."""

    parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    best: str = ""  # the longest content of any attempt

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def restart(self) -> None:
        current = self.content
        if len(current) > len(self.best):
            self.best = current
        self.parts.clear()
        self.reasoning_parts.clear()

    def longest(self) -> str:
        current = self.content
        return current if len(current) >= len(self.best) else self.best


class ChatModel(Protocol):
    """A model endpoint as the review sees it."""

    @property
    def model(self) -> str: ...

    async def complete(self, request: ChatRequest, transcript: Transcript | None = None) -> Reply: ...

    async def list_models(self, timeout: float | None = None) -> list[ModelInfo]: ...

    async def aclose(self) -> None: ...


class ContextLengthError(EndpointError):
    """The endpoint said the request does not fit its context window (an HTTP 400)."""

    def __init__(self, message: str, hint: str | None = None, *, window: int | None = None) -> None:
        super().__init__(message, hint)
        self.window = window


class EndpointFailed(EndpointError):
    """No complete reply: retries or the deadline ran out. ``partial`` is what had arrived."""

    def __init__(self, message: str, hint: str | None = None, *, partial: str = "") -> None:
        super().__init__(message, hint)
        self.partial = partial


class NotJSONError(EndpointError):
    """The endpoint answered something that is not the API's JSON (an HTML page, garbage, broken
    SSE, invalid UTF-8): usually a wrong --base-url. ``raw`` is what it sent, for saving."""

    def __init__(self, message: str, hint: str | None = None, *, raw: str = "") -> None:
        super().__init__(message, hint)
        self.raw = raw
