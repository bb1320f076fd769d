"""Where and how to call: the endpoint's settings, which key goes to which host, what is retried.

Keys follow the host, so that one never reaches a server it was not made for: DeepSeek's host
gets ``DEEPSEEK_API_KEY``, any other host ``OPENAI_API_KEY`` (the OpenAI SDK's convention, which
vLLM, SGLang, llama.cpp and Ollama follow); ``--api-key-env VAR`` names another variable for any
host. A host that is not DeepSeek may need no key at all (a local server): then no
Authorization header is sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError
from ..sanitize import safe_url
from ..settings import Settings

DEEPSEEK_KEY = "DEEPSEEK_API_KEY"
OPENAI_KEY = "OPENAI_API_KEY"
DEFAULT_MODEL = "deepseek-flash"
# Retried with backoff (Retry-After honoured, capped); any other 4xx is final.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


def is_deepseek(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "deepseek.com" or host.endswith(".deepseek.com")


def _is_local(host: str) -> bool:
    """Loopback names and addresses: plain http never leaves this machine."""
    import ipaddress

    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def public_url(url: str) -> str:
    """The URL without user:password, query or fragment, fit to print and save."""
    return safe_url(url)


def key_variables(base_url: str, api_key_env: str | None) -> tuple[str, ...]:
    """The variables a key is read from for this host, in order."""
    if api_key_env:
        return (api_key_env,)
    return (DEEPSEEK_KEY,) if is_deepseek(base_url) else (OPENAI_KEY,)


def find_api_key(
    base_url: str, api_key_env: str | None, env: Mapping[str, str] | None = None
) -> tuple[str | None, tuple[str, ...]]:
    """The key for ``base_url`` and the variables tried."""
    environ = os.environ if env is None else env
    names = key_variables(base_url, api_key_env)
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value, names
    return None, names


def require_api_key(
    base_url: str, api_key_env: str | None, env: Mapping[str, str] | None = None, *, also: str = ""
) -> str | None:
    """The key; None for a host that may need none; a usage error when DeepSeek's would be keyless
    or a variable named by --api-key-env is empty (``also`` ends its advice: "--dry-run needs no
    key" from the commands that have such a dry run)."""
    key, names = find_api_key(base_url, api_key_env, env)
    if key is None and (api_key_env or is_deepseek(base_url)):
        raise UsageError(
            f"no API key: {names[0]} is not set",
            f"export {names[0]}=..., or name another variable with --api-key-env"
            + (f"; {also}" if also else ""),
        )
    return key


@dataclass(frozen=True)
class Endpoint:
    """Everything the client needs, the key hidden from reprs."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    key_variable: str = OPENAI_KEY  # where the key came from (or should come from): for messages
    timeout: float = 1800.0
    max_retries: int = 4
    retry_backoff: float = 1.0
    retry_after_cap: float = 60.0
    thinking: str = "auto"
    stream: bool = True

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        model: str | None = None,
        env: Mapping[str, str] | None = None,
        also: str = "",
    ) -> Endpoint:
        """The endpoint the settings name; ``also`` ends a missing key's advice (require_api_key)."""
        parts = urlsplit(settings.base_url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"{settings.named('base_url')} {settings.base_url!r} is not an http(s) URL",
                "write it in full, e.g. http://127.0.0.1:8080/v1",
            )
        key = require_api_key(settings.base_url, settings.api_key_env, env, also=also)
        return cls(
            base_url=settings.base_url,
            model=model or settings.model or DEFAULT_MODEL,
            api_key=key,
            key_variable=key_variables(settings.base_url, settings.api_key_env)[0],
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            retry_backoff=settings.retry_backoff,
            retry_after_cap=settings.retry_after_cap,
            thinking=settings.thinking,
            stream=settings.stream,
        )

    @property
    def warnings(self) -> tuple[str, ...]:
        """What a user should know before the key goes out: in clear text over the network."""
        parts = urlsplit(self.base_url)
        if self.api_key and parts.scheme.lower() == "http" and not _is_local(parts.hostname or ""):
            return (
                f"the API key ({self.key_variable}) goes to {parts.hostname} over plain http: anyone on"
                " the way can read it (use https, or a server on this machine)",
            )
        return ()

    @property
    def is_deepseek(self) -> bool:
        return is_deepseek(self.base_url)

    def thinking_body(self) -> dict[str, Any] | None:
        """DeepSeek's ``thinking`` switch: only for DeepSeek, or when asked for explicitly."""
        if self.thinking == "on":
            return {"thinking": {"type": "enabled"}}
        if self.thinking == "off":
            return {"thinking": {"type": "disabled"}}
        return {"thinking": {"type": "enabled"}} if self.is_deepseek else None

    def scrub(self, text: str) -> str:
        """``text`` without the key or any 8-character piece of it (servers echo rejected keys)."""
        return scrub_key(text, self.api_key)


def scrub_key(text: str, key: str | None) -> str:
    """``text`` with ``key`` and every run of 8 or more of its characters masked as ``***``."""
    if not key or not text:
        return text
    if len(key) < 8:
        return text.replace(key, "***")
    spans: list[tuple[int, int]] = []
    for i in range(len(key) - 7):
        window = key[i : i + 8]
        at = text.find(window)
        while at >= 0:
            spans.append((at, at + 8))
            at = text.find(window, at + 1)
    if not spans:
        return text
    spans.sort()
    pieces, done = [], 0
    start, end = spans[0]
    for a, b in spans[1:]:
        if a <= end:
            end = max(end, b)
            continue
        pieces += [text[done:start], "***"]
        done, start, end = end, a, b
    pieces += [text[done:start], "***", text[end:]]
    return "".join(pieces)
