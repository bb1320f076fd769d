"""Talking to models: the ChatModel protocol (base), the OpenAI-compatible implementation
(openai_compat, imported on use: the SDK is slow to import), which key goes where (policy) and
what it costs (pricing)."""

from __future__ import annotations

from .base import (
    DEFAULT_WINDOW,
    ChatModel,
    ChatRequest,
    ContextLengthError,
    EndpointFailed,
    ModelInfo,
    NotJSONError,
    Reply,
    Transcript,
    Usage,
)
from .policy import Endpoint, find_api_key, public_url, require_api_key

__all__ = [
    "DEFAULT_WINDOW",
    "ChatModel",
    "ChatRequest",
    "ContextLengthError",
    "Endpoint",
    "EndpointFailed",
    "ModelInfo",
    "NotJSONError",
    "Reply",
    "Transcript",
    "Usage",
    "find_api_key",
    "public_url",
    "require_api_key",
]
