"""The OpenAI-compatible endpoint: one chat completion with retries, an overall deadline and streaming.

The only module that imports ``openai``. Works against DeepSeek, vLLM, SGLang, llama.cpp, Ollama
and OpenAI; DeepSeek-only request fields (``thinking``) go only to DeepSeek or when asked for.
The API key is held in a field that never prints, and is scrubbed from every error text.
"""

from __future__ import annotations

import email.utils
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai

from .config import Settings
from .errors import EndpointError, UsageError

Progress = Callable[[str, int, int], None]

KEY_VARIABLES = ("DEEPSEEK_API_KEY", "OPENAI_API_KEY")
DEFAULT_WINDOW = 1_048_576
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_CONTEXT_LENGTH = re.compile(
    r"(?i)maximum (context|model) length|context length is|context length of|"
    r"longer than the (model's )?(context|maximum model) length|maximum input length|"
    r"exceeds the model's maximum context|parameter=input_(tokens|text)|context_length_exceeded"
)
_WINDOW_IN_MESSAGE = re.compile(
    r"(?i)maximum context length is (\d+)|context length of (\d+)|maximum model length of (\d+)|"
    r"context length \((\d+) tokens\)|context length is only (\d+)"
)


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


@dataclass(frozen=True)
class Endpoint:
    """Where and how to call: everything the client needs, the key hidden from reprs."""

    base_url: str
    model: str
    api_key: str = field(repr=False)
    timeout: float = 1800.0
    max_retries: int = 4
    retry_backoff: float = 1.0
    retry_after_cap: float = 60.0
    thinking: str = "auto"
    stream: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, api_key: str) -> Endpoint:
        return cls(
            base_url=settings.base_url,
            model=settings.model,
            api_key=api_key,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            retry_backoff=settings.retry_backoff,
            retry_after_cap=settings.retry_after_cap,
            thinking=settings.thinking,
            stream=settings.stream,
        )

    @property
    def is_deepseek(self) -> bool:
        host = (urlsplit(self.base_url).hostname or "").lower()
        return host == "api.deepseek.com" or host.endswith(".deepseek.com")

    def thinking_body(self) -> dict[str, Any] | None:
        """DeepSeek's ``thinking`` switch: only for DeepSeek, or when asked for explicitly."""
        if self.thinking == "on":
            return {"thinking": {"type": "enabled"}}
        if self.thinking == "off":
            return {"thinking": {"type": "disabled"}}
        return {"thinking": {"type": "enabled"}} if self.is_deepseek else None


def public_url(url: str) -> str:
    """The URL without user:password or query, fit to print and save."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def find_api_key(var: str | None, env: Mapping[str, str] | None = None) -> tuple[str | None, tuple[str, ...]]:
    """The key from ``var`` if given, else DEEPSEEK_API_KEY, else OPENAI_API_KEY; and the names tried."""
    environ = os.environ if env is None else env
    names = (var,) if var else KEY_VARIABLES
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value, names
    return None, names


def require_api_key(var: str | None, env: Mapping[str, str] | None = None) -> str:
    key, names = find_api_key(var, env)
    if key is None:
        raise UsageError(
            f"no API key: {' and '.join(names)} {'is' if len(names) == 1 else 'are'} not set",
            "export DEEPSEEK_API_KEY=..., or name another variable with --api-key-env"
            " (--dry-run needs no key)",
        )
    return key


@dataclass
class EndpointUsage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_hit_tokens: int | None = None
    cache_miss_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass
class Reply:
    content: str
    reasoning: str
    finish_reason: str | None
    usage: EndpointUsage | None
    json_mode: bool
    attempts: int


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


@dataclass(frozen=True)
class ModelInfo:
    id: str
    max_model_len: int | None = None


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Deadline(Exception):
    pass


class _EmptyStream(Exception):
    """A 200 stream that closed with no event: some servers (llama-cpp-python) fail that way."""


class ChatClient:
    """One endpoint; ``complete()`` returns a whole reply or raises an EndpointError."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        on_progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint
        self._progress = on_progress or (lambda stage, done, total: None)
        self._sleep = sleep
        self._client = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            max_retries=0,  # retries are ours: capped Retry-After, mid-stream resets, a deadline
            timeout=openai.Timeout(endpoint.timeout, connect=min(30.0, endpoint.timeout)),
        )

    def __repr__(self) -> str:
        return f"ChatClient({public_url(self.endpoint.base_url)!r}, model={self.endpoint.model!r})"

    def close(self) -> None:
        self._client.close()

    def scrub(self, text: str) -> str:
        """Remove the key from text that may echo it (some servers quote the key they rejected)."""
        key = self.endpoint.api_key
        if key:
            text = text.replace(key, "***")
            if len(key) > 8:
                text = text.replace(key[:8], "***")
        return " ".join(text.split())[:500]

    # -- models ---------------------------------------------------------------------------

    def list_models(self, timeout: float = 30.0) -> list[ModelInfo]:
        """The endpoint's model ids, with vLLM's ``max_model_len`` where it reports one."""
        try:
            page = self._client.with_options(timeout=min(timeout, self.endpoint.timeout)).models.list()
            models = list(page.data)
        except openai.APIStatusError as exc:
            raise self._status_error(exc, 0) from None
        except openai.APIConnectionError as exc:
            raise EndpointError(
                f"cannot reach {public_url(self.endpoint.base_url)}: {self.scrub(_describe(exc))}"
            ) from None
        result = []
        for m in models:
            extra = m.model_extra or {}
            limit = extra.get("max_model_len")
            result.append(ModelInfo(m.id, limit if isinstance(limit, int) and limit > 0 else None))
        return result

    def context_window(self) -> int | None:
        """The endpoint's own window for our model, when /models reports it; None otherwise."""
        try:
            models = self.list_models(timeout=10.0)
        except EndpointError:
            return None
        for m in models:
            if m.id == self.endpoint.model:
                return m.max_model_len
        return None

    # -- chat -----------------------------------------------------------------------------

    def complete(
        self, system: str, user: str, *, max_tokens: int, transcript: Transcript | None = None
    ) -> Reply:
        """Send one review request; retry what is worth retrying; return the whole reply."""
        ep = self.endpoint
        transcript = transcript if transcript is not None else Transcript()
        deadline = time.monotonic() + ep.timeout
        json_mode = True
        stream = ep.stream
        blank_retried = False
        failures = 0
        attempts = 0
        while True:
            attempts += 1
            params: dict[str, Any] = {
                "model": ep.model,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
                "max_tokens": max_tokens,
            }
            if json_mode:
                params["response_format"] = {"type": "json_object"}
            extra = ep.thinking_body()
            if extra:
                params["extra_body"] = extra
            transcript.restart()
            try:
                reply = self._attempt(params, deadline, transcript, max_tokens, stream)
            except _EmptyStream:
                if not stream:
                    raise EndpointFailed("the endpoint answered with an empty body") from None
                stream = False  # the same request without streaming shows the server's real error
                continue
            except _Deadline:
                raise EndpointFailed(
                    f"no complete reply within the {ep.timeout:g} s deadline",
                    "raise --timeout",
                    partial=transcript.longest(),
                ) from None
            except _Retry as retry:
                failures += 1
                if failures > ep.max_retries:
                    raise EndpointFailed(
                        f"{retry.reason}; gave up after {attempts} attempts",
                        partial=transcript.longest(),
                    ) from None
                delay = ep.retry_backoff * (2 ** (failures - 1))
                if retry.retry_after is not None:
                    delay = max(delay, min(retry.retry_after, ep.retry_after_cap))
                if time.monotonic() + delay >= deadline:
                    raise EndpointFailed(
                        f"{retry.reason}; no time left before the {ep.timeout:g} s deadline",
                        "raise --timeout",
                        partial=transcript.longest(),
                    ) from None
                self._sleep(delay)
                continue
            except openai.APIStatusError as exc:
                message = _error_message(exc)
                if json_mode and exc.status_code in (400, 422) and "response_format" in message:
                    json_mode = False  # this server has no JSON mode: ask for JSON in words only
                    continue
                raise self._status_error(exc, attempts) from None
            reply.json_mode = json_mode
            reply.attempts = attempts
            if not reply.content.strip() and reply.finish_reason != "length" and not blank_retried:
                blank_retried = True  # DeepSeek's JSON mode answers spaces when it fails: ask again
                continue
            return reply

    def _status_error(self, exc: openai.APIStatusError, attempts: int) -> EndpointError:
        status = exc.status_code
        message = self.scrub(_error_message(exc))
        where = public_url(self.endpoint.base_url)
        if status in (400, 413) and _CONTEXT_LENGTH.search(message):
            found = _WINDOW_IN_MESSAGE.search(message)
            window = int(next(g for g in found.groups() if g)) if found else None
            return ContextLengthError(f"the endpoint says the request is too long: {message}", window=window)
        if status == 401:
            return EndpointError(
                f"{where} rejected the API key (HTTP 401): {message}", "check the key's variable"
            )
        if status == 402:
            return EndpointError(f"{where}: insufficient balance (HTTP 402): {message}")
        if status == 404:
            return EndpointError(
                f"{where}: not found (HTTP 404): {message}",
                "check --base-url (often ends in /v1) and --model; `wholerepo models` lists the ids",
            )
        return EndpointError(f"{where} answered HTTP {status}: {message}")

    def _attempt(
        self, params: dict[str, Any], deadline: float, transcript: Transcript, max_tokens: int, stream: bool
    ) -> Reply:
        """One HTTP request, run in a worker thread so the deadline and Ctrl-C always win."""
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        streams: list[Any] = []

        def work() -> None:
            try:
                if stream:
                    s = self._client.chat.completions.create(
                        **params, stream=True, stream_options={"include_usage": True}
                    )
                    streams.append(s)
                    for chunk in s:
                        events.put(("chunk", chunk))
                    events.put(("end", None))
                else:
                    events.put(("full", self._client.chat.completions.create(**params)))
            except BaseException as exc:  # handed to the waiting thread, which decides
                events.put(("error", exc))

        self._progress("send", 0, 1)
        worker = threading.Thread(target=work, name="wholerepo-request", daemon=True)
        worker.start()
        finish: str | None = None
        usage: EndpointUsage | None = None
        received = 0
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Deadline
                try:
                    kind, value = events.get(timeout=remaining)
                except queue.Empty:
                    raise _Deadline from None
                if kind == "error":
                    self._raise_for(value)
                if kind == "full":
                    reply = _full_reply(value)
                    transcript.parts.append(reply.content)
                    return reply
                if kind == "end":
                    if received == 0:
                        raise _EmptyStream
                    if finish is None:  # closed without a finish_reason: a cut connection
                        raise _Retry("the stream ended before the reply was complete")
                    return Reply(
                        transcript.content, "".join(transcript.reasoning_parts), finish, usage, True, 0
                    )
                usage = _usage(getattr(value, "usage", None)) or usage
                finish = _take_chunk(value, transcript) or finish
                received += 1
                self._progress("receive", min(received, max_tokens), max_tokens)
        except KeyboardInterrupt:
            # Keep what already arrived: chunks the worker read but we had not yet taken.
            while True:
                try:
                    kind, value = events.get_nowait()
                except queue.Empty:
                    break
                if kind == "chunk":
                    _take_chunk(value, transcript)
            raise
        finally:
            if worker.is_alive():
                for s in streams:
                    try:
                        s.close()
                    except Exception:
                        pass

    def _raise_for(self, exc: BaseException) -> None:
        if isinstance(exc, openai.APIStatusError):
            if exc.status_code in RETRY_STATUSES or exc.status_code > 500:
                raise _Retry(
                    f"HTTP {exc.status_code}: {self.scrub(_error_message(exc))}", _retry_after(exc.response)
                )
            raise exc
        if isinstance(exc, openai.APIConnectionError):
            raise _Retry(f"connection failed: {self.scrub(_describe(exc))}")
        if isinstance(exc, openai.APIError):  # an error event inside the stream
            raise _Retry(f"the stream reported an error: {self.scrub(_describe(exc))}")
        raise exc


def _take_chunk(chunk: Any, transcript: Transcript) -> str | None:
    """Append a stream chunk's text to the transcript; return its finish_reason, if any."""
    finish: str | None = None
    for choice in chunk.choices or []:
        delta = choice.delta
        if delta is not None:
            if delta.content:
                transcript.parts.append(delta.content)
            thought = _extra(delta, "reasoning_content")
            if isinstance(thought, str) and thought:
                transcript.reasoning_parts.append(thought)
        if choice.finish_reason:
            finish = choice.finish_reason
    return finish


def _describe(exc: BaseException) -> str:
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({type(cause).__name__}: {cause})"
    return text or type(exc).__name__


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    if isinstance(body, str) and body.strip():
        return body
    try:
        text = exc.response.text
    except Exception:
        text = ""
    return text.strip() or exc.message


def _retry_after(response: Any) -> float | None:
    if response is None:
        return None
    ms = response.headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _extra(obj: Any, name: str) -> Any:
    value = getattr(obj, name, None)
    if value is None:
        value = (getattr(obj, "model_extra", None) or {}).get(name)
    return value


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage(raw: Any) -> EndpointUsage | None:
    if raw is None:
        return None
    prompt = _int(getattr(raw, "prompt_tokens", None))
    hit = _int(_extra(raw, "prompt_cache_hit_tokens"))
    miss = _int(_extra(raw, "prompt_cache_miss_tokens"))
    details = getattr(raw, "prompt_tokens_details", None)
    if hit is None and details is not None:
        hit = _int(getattr(details, "cached_tokens", None))
    if miss is None and hit is not None and prompt is not None:
        miss = max(0, prompt - hit)
    completion_details = getattr(raw, "completion_tokens_details", None)
    reasoning = _int(getattr(completion_details, "reasoning_tokens", None)) if completion_details else None
    return EndpointUsage(
        prompt_tokens=prompt,
        completion_tokens=_int(getattr(raw, "completion_tokens", None)),
        cache_hit_tokens=hit,
        cache_miss_tokens=miss,
        reasoning_tokens=reasoning,
    )


def _full_reply(response: Any) -> Reply:
    choices = getattr(response, "choices", None) or []
    if not choices:
        return Reply("", "", None, _usage(getattr(response, "usage", None)), True, 0)
    choice = choices[0]
    message = choice.message
    thought = _extra(message, "reasoning_content")
    return Reply(
        content=message.content or "",
        reasoning=thought if isinstance(thought, str) else "",
        finish_reason=choice.finish_reason,
        usage=_usage(getattr(response, "usage", None)),
        json_mode=True,
        attempts=0,
    )
