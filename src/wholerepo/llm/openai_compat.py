"""The OpenAI-compatible ChatModel, on ``openai.AsyncOpenAI``: DeepSeek, vLLM, SGLang, llama.cpp,
Ollama, OpenAI. The only module that imports ``openai``.

One request, in named steps around the SDK's call:
- **retry**: 408/409/429/5xx and dropped connections, with doubling backoff, Retry-After
  honoured up to a cap, each retry reported as one event line ("503 from the endpoint, retry
  2/4 in 4 s"). Retries are ours, not the SDK's: the SDK cannot report them, and a wait must
  count against the deadline;
- **restart** a stream that broke mid-reply (the same request again; the longest text received
  is kept for a partial result);
- **without streaming** when a stream closes with no event (llama-cpp-python's way to fail);
- **JSON-mode fallback** when the endpoint rejects ``response_format``: asked in words instead;
- **blank-reply retry** once (DeepSeek's JSON mode can answer only whitespace).
The deadline (``timeout``) covers all of it, keep-alives and waits included.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import EndpointError, unresolvable
from .base import (
    ChatRequest,
    ContextLengthError,
    EndpointFailed,
    EventSink,
    ModelInfo,
    NotJSONError,
    Reply,
    Transcript,
    Usage,
)
from .policy import RETRY_STATUSES, Endpoint, public_url

if TYPE_CHECKING:
    import openai

Progress = Callable[[str, int, int], None]

NOT_JSON = "the endpoint did not return JSON"
_CONTEXT_LENGTH = re.compile(
    r"(?i)maximum (context|model) length|context length is|context length of|"
    r"longer than the (model's )?(context|maximum model) length|maximum input length|"
    r"exceeds the model's maximum context|parameter=input_(tokens|text)|context_length_exceeded"
)
_WINDOW_IN_MESSAGE = re.compile(
    r"(?i)maximum context length is (\d+)|context length of (\d+)|maximum model length of (\d+)|"
    r"context length \((\d+) tokens\)|context length is only (\d+)"
)
RAW_LIMIT = 1 << 20  # the most of a non-JSON body kept for saving


class _Retry(Exception):
    def __init__(self, reason: str, short: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.short = short  # "503", "a dropped connection": for the event line
        self.retry_after = retry_after


class _EmptyStream(Exception):
    """A 200 stream that closed with no event."""


class _NotJSON(Exception):
    def __init__(self, raw: str) -> None:
        super().__init__("not JSON")
        self.raw = raw


class OpenAICompatible:
    """A ChatModel for one endpoint and model."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        on_event: EventSink | None = None,
        on_progress: Progress | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.endpoint = endpoint
        self._sleep = sleep
        self._event = on_event or (lambda message: None)
        self._progress = on_progress or (lambda stage, done, total: None)
        self._client: openai.AsyncOpenAI | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatible({public_url(self.endpoint.base_url)!r}, model={self.endpoint.model!r})"

    @property
    def model(self) -> str:
        return self.endpoint.model

    def _sdk(self) -> openai.AsyncOpenAI:
        """The SDK client of the running event loop (its connections belong to that loop).

        The SDK is imported here, at the first request: it takes a second to import, which a
        dry run, a `models` listing and a pack never pay."""
        import openai

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            ep = self.endpoint
            self._client = openai.AsyncOpenAI(
                base_url=ep.base_url,
                api_key=ep.api_key or "unused",  # with no key the header is omitted per request
                max_retries=0,
                timeout=openai.Timeout(ep.timeout, connect=min(30.0, ep.timeout)),
            )
            self._loop = loop
        return self._client

    def _headers(self) -> dict[str, Any]:
        import openai

        return {} if self.endpoint.api_key else {"Authorization": openai.Omit()}

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.close()
            except Exception:  # closing a pool of a loop that is gone: nothing to free
                pass

    # -- models -------------------------------------------------------------------------------

    async def list_models(self, timeout: float | None = None) -> list[ModelInfo]:
        """The endpoint's model ids, with vLLM's ``max_model_len`` where it reports one.

        One GET with the standard library, on a thread: no SDK import for a question this small.
        """
        limit = min(timeout or self.endpoint.timeout, self.endpoint.timeout)
        body = await asyncio.to_thread(self._get_models, limit)
        data = _json_or_none(body)
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise NotJSONError(
                f"{NOT_JSON} (check --base-url): GET {public_url(self.endpoint.base_url)}/models",
                "an OpenAI-compatible server's URL usually ends in /v1",
                raw=_text(body),
            )
        found = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                continue
            limit_value = entry.get("max_model_len")
            window = (
                limit_value if isinstance(limit_value, int) and not isinstance(limit_value, bool) else None
            )
            found.append(ModelInfo(entry["id"], window if window and window > 0 else None))
        return found

    def _get_models(self, limit: float) -> bytes:
        import urllib.error
        import urllib.request

        where = public_url(self.endpoint.base_url)
        headers = {"Accept": "application/json", "User-Agent": "wholerepo"}
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        request = urllib.request.Request(self.endpoint.base_url.rstrip("/") + "/models", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=limit) as response:
                return bytes(response.read(RAW_LIMIT))
        except urllib.error.HTTPError as exc:
            body = exc.read(RAW_LIMIT) if exc.fp is not None else b""
            raise self._status_error(exc.code, _message_of(body) or str(exc.reason)) from None
        except TimeoutError:
            raise EndpointError(
                f"{where} did not answer /models within {limit:g} s", "check --base-url, or raise --timeout"
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EndpointError(
                f"cannot reach {where}: {self.endpoint.scrub(_one_line(str(reason)))}",
                "check --base-url and that the server is running",
            ) from None

    # -- chat ---------------------------------------------------------------------------------

    async def complete(self, request: ChatRequest, transcript: Transcript | None = None) -> Reply:
        """Send one request; retry what is worth retrying; return the whole reply."""
        transcript = transcript if transcript is not None else Transcript()
        timeout = self.endpoint.timeout
        deadline = time.monotonic() + timeout
        try:
            return await asyncio.wait_for(self._complete(request, transcript, deadline), timeout)
        except asyncio.TimeoutError:
            raise EndpointFailed(
                f"no complete reply within the {timeout:g} s deadline",
                "raise --timeout",
                partial=transcript.longest(),
            ) from None

    async def _complete(self, request: ChatRequest, transcript: Transcript, deadline: float) -> Reply:
        import openai

        ep = self.endpoint
        json_mode, stream, blank_retried = True, ep.stream, False
        failures = attempts = 0
        while True:
            attempts += 1
            params = self._params(request, json_mode)
            transcript.restart()
            try:
                content, reasoning, finish, usage = await self._attempt(params, transcript, stream)
            except _EmptyStream:
                if not stream:
                    raise EndpointFailed("the endpoint answered with an empty body") from None
                self._event("the stream closed with no data; asking again without streaming")
                stream = False  # the same request without streaming shows the server's real error
                continue
            except _NotJSON as exc:
                raise NotJSONError(
                    f"{NOT_JSON} (check --base-url): POST {public_url(ep.base_url)}/chat/completions",
                    "an OpenAI-compatible server's URL usually ends in /v1",
                    raw=exc.raw or transcript.longest(),
                ) from None
            except _Retry as retry:
                failures += 1
                if failures > ep.max_retries:
                    raise EndpointFailed(
                        f"{retry.reason}; gave up after {attempts} attempts", partial=transcript.longest()
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
                self._event(
                    f"{retry.short} from the endpoint, retry {failures}/{ep.max_retries} in {delay:.0f} s"
                )
                await self._sleep(delay)
                continue
            except openai.APIStatusError as exc:
                if json_mode and exc.status_code in (400, 422) and "response_format" in _error_message(exc):
                    self._event("the endpoint has no JSON mode; asking for JSON in words instead")
                    json_mode = False
                    continue
                raise self._status_error(exc.status_code, _error_message(exc)) from None
            if not content.strip() and finish != "length" and not blank_retried:
                blank_retried = True  # DeepSeek's JSON mode answers spaces when it fails: ask again
                self._event("the reply was blank; asking once more")
                continue
            return Reply(content, reasoning, finish, usage, json_mode, attempts)

    def _params(self, request: ChatRequest, json_mode: bool) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.user},
            ],
            "max_tokens": request.max_tokens,
            "extra_headers": self._headers(),
        }
        if json_mode:
            params["response_format"] = {"type": "json_object"}
        extra = self.endpoint.thinking_body()
        if extra:
            params["extra_body"] = extra
        return params

    async def _attempt(
        self, params: dict[str, Any], transcript: Transcript, stream: bool
    ) -> tuple[str, str, str | None, Usage | None]:
        """One HTTP request: (content, reasoning, finish_reason, usage)."""
        import openai

        self._progress("send", 0, 1)
        chat = self._sdk().chat.completions
        try:
            if not stream:
                raw = await chat.with_raw_response.create(**params)
                body = raw.http_response.content
                return _whole(body, transcript)
            raw = await chat.with_raw_response.create(
                **params, stream=True, stream_options={"include_usage": True}
            )
            kind = raw.http_response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "text/event-stream":
                # Not a stream: a server that ignores "stream", or an HTML page.
                body = await raw.http_response.aread()
                if not body.strip():
                    raise _EmptyStream
                return _whole(body, transcript)
            return await self._stream(raw.parse(), transcript, params["max_tokens"])
        except (_EmptyStream, _NotJSON, _Retry):
            raise
        except openai.APIStatusError as exc:
            if exc.status_code in RETRY_STATUSES or exc.status_code > 500:
                raise _Retry(
                    f"HTTP {exc.status_code}: {self.endpoint.scrub(_one_line(_error_message(exc)))}",
                    str(exc.status_code),
                    _retry_after(exc.response),
                ) from None
            raise
        except openai.APITimeoutError:
            raise _Retry("the request timed out", "a timeout") from None
        except openai.APIConnectionError as exc:
            if unresolvable(exc):  # no network or a wrong host: waiting will not change it
                host = urlsplit(self.endpoint.base_url).hostname or self.endpoint.base_url
                raise EndpointFailed(f"cannot resolve {host}", "no network, or a wrong --base-url") from None
            raise _Retry(
                f"connection failed: {self.endpoint.scrub(_describe(exc))}", "a dropped connection"
            ) from None
        except openai.APIError as exc:  # an error event inside the stream
            raise _Retry(
                f"the stream reported an error: {self.endpoint.scrub(_describe(exc))}", "an error event"
            ) from None
        except (ValueError, TypeError, AttributeError) as exc:
            # JSON the SDK could not decode (JSONDecodeError, UnicodeDecodeError are ValueErrors).
            raise _NotJSON(transcript.longest() or str(exc)) from None
        except OSError as exc:
            raise _Retry(f"connection failed: {exc}", "a dropped connection") from None
        except Exception as exc:
            # The HTTP library's own transport errors (a reset mid-stream) are not wrapped by the SDK.
            if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "h11", "anyio"):
                raise _Retry(f"connection failed: {_describe(exc)}", "a dropped connection") from None
            raise

    async def _stream(
        self, events: Any, transcript: Transcript, max_tokens: int
    ) -> tuple[str, str, str | None, Usage | None]:
        finish: str | None = None
        usage: Usage | None = None
        received = 0
        try:
            async for chunk in events:
                usage = _usage(getattr(chunk, "usage", None)) or usage
                finish = _take_chunk(chunk, transcript) or finish
                received += 1
                if received == 1:
                    self._event("the model started answering")
                self._progress("receive", min(received, max_tokens), max_tokens)
        finally:
            try:
                await events.close()
            except Exception:
                pass
        if received == 0:
            raise _EmptyStream
        if finish is None:  # closed without a finish_reason: a cut connection
            raise _Retry("the stream ended before the reply was complete", "a cut stream")
        return transcript.content, "".join(transcript.reasoning_parts), finish, usage

    def _status_error(self, status: int, text: str) -> EndpointError:
        message = self.endpoint.scrub(_one_line(text))
        where = public_url(self.endpoint.base_url)
        if status in (400, 413) and _CONTEXT_LENGTH.search(message):
            found = _WINDOW_IN_MESSAGE.search(message)
            window = int(next(g for g in found.groups() if g)) if found else None
            return ContextLengthError(f"the endpoint says the request is too long: {message}", window=window)
        if status in (401, 403):
            if self.endpoint.api_key is None:
                return EndpointError(
                    f"{where} wants an API key (HTTP {status}): {message}",
                    f"set {self.endpoint.key_variable}, or name the key's variable with --api-key-env",
                )
            return EndpointError(
                f"{where} rejected the API key from {self.endpoint.key_variable} (HTTP {status}): {message}",
                "check the key, or name another variable with --api-key-env",
            )
        if status == 402:
            return EndpointError(f"{where}: insufficient balance (HTTP 402): {message}")
        if status == 404:
            return EndpointError(
                f"{where}: not found (HTTP 404): {message}",
                "check --base-url (often ends in /v1) and --model; `wholerepo models` lists the ids",
            )
        return EndpointError(f"{where} answered HTTP {status}: {message}")


# -- replies ------------------------------------------------------------------------------------


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8").strip() or "null")
    except (ValueError, RecursionError):
        return None


def _text(body: bytes) -> str:
    return body[:RAW_LIMIT].decode("utf-8", "replace")


def _whole(body: bytes, transcript: Transcript) -> tuple[str, str, str | None, Usage | None]:
    """A non-streamed completion from its raw body (servers may send blank lines first)."""
    data = _json_or_none(body)
    if not isinstance(data, dict):
        raise _NotJSON(_text(body))
    if data.get("error") is not None and "choices" not in data:
        raise _Retry(f"the endpoint reported an error: {_one_line(str(data['error']))[:300]}", "an error")
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise _NotJSON(_text(body))
    usage = _usage_dict(data.get("usage"))
    if not choices:
        return "", "", None, usage
    first: dict[str, Any] = choices[0] if isinstance(choices[0], dict) else {}
    message: dict[str, Any] = first["message"] if isinstance(first.get("message"), dict) else {}
    content = message["content"] if isinstance(message.get("content"), str) else ""
    thought = message.get("reasoning_content")
    finish = first["finish_reason"] if isinstance(first.get("finish_reason"), str) else None
    transcript.parts.append(content)
    return content, thought if isinstance(thought, str) else "", finish, usage


def _take_chunk(chunk: Any, transcript: Transcript) -> str | None:
    """Append a stream chunk's text to the transcript; return its finish_reason, if any."""
    finish: str | None = None
    choices = getattr(chunk, "choices", None) or []
    if not isinstance(choices, list):
        raise TypeError("choices is not a list")
    for choice in choices:
        delta = getattr(choice, "delta", None)
        if delta is not None:
            content = getattr(delta, "content", None)
            if isinstance(content, str) and content:
                transcript.parts.append(content)
            thought = _extra(delta, "reasoning_content")
            if isinstance(thought, str) and thought:
                transcript.reasoning_parts.append(thought)
        reason = getattr(choice, "finish_reason", None)
        if isinstance(reason, str) and reason:
            finish = reason
    return finish


def _describe(exc: BaseException) -> str:
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({type(cause).__name__}: {cause})"
    return _one_line(text or type(exc).__name__)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def _message_of(body: bytes) -> str:
    """The error message in an error body: ``{"error": {"message": ...}}`` and its variants."""
    data = _json_or_none(body)
    if isinstance(data, Mapping):
        inner = data.get("error", data)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return body.decode("utf-8", "replace").strip()[:500]


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
            value = float(ms) / 1000
            if value == value and value != float("inf"):
                return max(0.0, value)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
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


def _usage(raw: Any) -> Usage | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        return _usage_dict(raw)
    prompt = _int(getattr(raw, "prompt_tokens", None))
    hit = _int(_extra(raw, "prompt_cache_hit_tokens"))
    miss = _int(_extra(raw, "prompt_cache_miss_tokens"))
    details = getattr(raw, "prompt_tokens_details", None)
    if hit is None and details is not None:
        hit = _int(getattr(details, "cached_tokens", None))
    completion_details = getattr(raw, "completion_tokens_details", None)
    reasoning = _int(getattr(completion_details, "reasoning_tokens", None)) if completion_details else None
    return _make_usage(prompt, _int(getattr(raw, "completion_tokens", None)), hit, miss, reasoning)


def _usage_dict(raw: Any) -> Usage | None:
    if not isinstance(raw, Mapping):
        return None
    details = raw.get("prompt_tokens_details")
    hit = _int(raw.get("prompt_cache_hit_tokens"))
    if hit is None and isinstance(details, Mapping):
        hit = _int(details.get("cached_tokens"))
    completion_details = raw.get("completion_tokens_details")
    reasoning = (
        _int(completion_details.get("reasoning_tokens")) if isinstance(completion_details, Mapping) else None
    )
    return _make_usage(
        _int(raw.get("prompt_tokens")),
        _int(raw.get("completion_tokens")),
        hit,
        _int(raw.get("prompt_cache_miss_tokens")),
        reasoning,
    )


def _make_usage(
    prompt: int | None, completion: int | None, hit: int | None, miss: int | None, reasoning: int | None
) -> Usage:
    if miss is None and hit is not None and prompt is not None:
        miss = max(0, prompt - hit)
    return Usage(prompt, completion, hit, miss, reasoning)
