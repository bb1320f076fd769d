"""Sending the plan and turning the reply into a ReviewResult.

``run()`` sends a Plan through a ChatModel and verifies the reply; faults that leave findings
behind (Ctrl-C, SIGTERM, a cut reply, retries exhausted mid-stream) still return them, marked
partial. ``failing()`` decides the exit code of ``--fail-on``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ..errors import EndpointError
from ..llm import pricing
from ..llm.base import (
    ChatModel,
    ContextLengthError,
    EndpointFailed,
    EventSink,
    NotJSONError,
    Reply,
    Transcript,
    Usage,
)
from ..llm.policy import public_url
from ..settings import Settings
from .findings import (
    Finding,
    ParsedReply,
    parse_reply,
    severity_at_least,
    verify,
)
from .plan import TEMPLATE_MARGIN, Plan, Probe, PromptTooLargeError, probe
from .result import ReviewResult

T = TypeVar("T")
# The endpoint's prompt count may differ from ours by this share before we warn.
DRIFT_THRESHOLD = 0.01
DRIFT_PREFIX = "the endpoint counted "  # how drift_warning starts: an audit merges the shards' ones
HEARTBEAT = 60.0  # seconds between "still waiting" lines while the model thinks


@dataclass(frozen=True)
class Outcome:
    """A finished review. ``error`` is raised once the outputs are written; ``raw`` is then saved."""

    result: ReviewResult | None
    error: EndpointError | None = None
    raw: str | None = None
    interrupted: bool = False


# -- the real review ----------------------------------------------------------------------------


async def run(
    p: Plan,
    chat: ChatModel,
    *,
    tool_version: str,
    on_event: EventSink | None = None,
    transcript: Transcript | None = None,
    heartbeat: float = HEARTBEAT,
) -> Outcome:
    """Send the plan and verify the reply; never loses findings that arrived.

    ``transcript`` (the caller's, if it wants what arrived when this is cancelled) collects
    the reply as it streams in.
    """
    transcript = transcript if transcript is not None else Transcript()
    started = time.monotonic()
    event = on_event or (lambda message: None)

    async def beat() -> None:
        while True:
            await asyncio.sleep(heartbeat)
            event(f"still waiting for the model ({time.monotonic() - started:.0f} s)")

    beating = asyncio.ensure_future(beat())
    try:
        reply = await chat.complete(p.request(), transcript)
    except asyncio.CancelledError:
        return interrupted(p, transcript, tool_version)
    except ContextLengthError as exc:
        real = f"; the endpoint's window is {exc.window:,}" if exc.window else ""
        raise PromptTooLargeError(
            f"the prompt does not fit the endpoint's context window: we sent {p.prompt_tokens:,} prompt"
            f" tokens (exact, {p.settings.tokenizer}) and asked for {p.max_tokens:,} output tokens in a"
            f" {p.window.tokens:,}-token window ({p.window.label}){real}. Endpoint: {exc.message}",
            "set --context-window to the endpoint's real window, or lower --budget or --max-output-tokens",
        ) from None
    except NotJSONError as exc:
        return Outcome(None, error=exc, raw=exc.raw or None)
    except EndpointFailed as exc:
        if not exc.partial.strip():
            raise
        result = _partial_result(p, exc.partial, exc.message, tool_version)
        return Outcome(result, error=exc, raw=exc.partial)
    finally:
        beating.cancel()
    event(f"reply complete after {time.monotonic() - started:.0f} s")
    return outcome_of(p, reply, tool_version)


def interrupted(p: Plan, transcript: Transcript, tool_version: str) -> Outcome:
    """The outcome of a review stopped by Ctrl-C or SIGTERM: the complete findings so far."""
    text = transcript.longest()
    result = _partial_result(p, text, "interrupted before the reply was complete", tool_version)
    return Outcome(result, raw=text or None, interrupted=True)


def review_blocking(
    p: Plan, chat: ChatModel, *, tool_version: str, on_event: EventSink | None = None
) -> Outcome:
    """``run()`` from synchronous code: a Ctrl-C (KeyboardInterrupt) still keeps what arrived."""
    transcript = Transcript()

    async def main() -> Outcome:
        try:
            return await run(p, chat, tool_version=tool_version, on_event=on_event, transcript=transcript)
        finally:
            await chat.aclose()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return interrupted(p, transcript, tool_version)


def run_blocking(coroutine: Awaitable[T], chat: ChatModel | None = None) -> T:
    """One coroutine from synchronous code, closing ``chat``'s connections afterwards."""

    async def main() -> T:
        try:
            return await coroutine
        finally:
            if chat is not None:
                await chat.aclose()

    return asyncio.run(main())


def probe_blocking(settings: Settings, chat: ChatModel | None, *, not_asked: str | None = None) -> Probe:
    """``probe()`` from synchronous code, closing the endpoint's connections afterwards."""

    return run_blocking(probe(settings, chat, not_asked=not_asked), chat)


def outcome_of(p: Plan, reply: Reply, tool_version: str) -> Outcome:
    """The result of a whole reply (cut off, unparseable and odd endings included)."""
    warnings: list[str] = []
    if not reply.json_mode:
        warnings.append("the endpoint does not support JSON mode (response_format); asked in words only")
    if reply.finish_reason == "length":
        reason, advice = _cut_off(p, reply)
        result = _partial_result(p, reply.content, reason, tool_version, usage=reply.usage, warnings=warnings)
        error = EndpointError(f"{reason}; the complete findings are reported as partial", advice)
        return Outcome(result, error=error, raw=reply.content)
    try:
        parsed = parse_reply(reply.content)
    except EndpointError as exc:
        return Outcome(None, error=exc, raw=reply.content)
    if reply.finish_reason not in (None, "stop"):
        reason = f"the endpoint ended the reply with finish_reason {reply.finish_reason!r}"
        result = _result(p, parsed, reply.usage, tool_version, warnings, partial_reason=reason)
        return Outcome(result, error=EndpointError(reason), raw=reply.content)
    return Outcome(_result(p, parsed, reply.usage, tool_version, warnings))


def _cut_off(p: Plan, reply: Reply) -> tuple[str, str]:
    """Why a reply ended with finish_reason "length", and what to change.

    Short of --max-output-tokens, the server's own window filled up (llama.cpp's n_ctx, vLLM's
    max_model_len): the window wholerepo planned for is larger than the real one."""
    used = reply.usage.completion_tokens if reply.usage is not None else None
    if used is None or used >= p.max_tokens * 0.98:
        limit = p.settings.named("max_output_tokens")
        return f"the reply was cut off at {limit} ({p.max_tokens:,})", f"raise {limit}"
    prompt = reply.usage.prompt_tokens if reply.usage is not None else None
    took = f"{prompt:,} prompt + {used:,} output tokens" if prompt else f"{used:,} output tokens"
    return (
        f"the reply was cut off after {took}, short of --max-output-tokens ({p.max_tokens:,}):"
        f" the endpoint's context window is smaller than the {p.window.tokens:,} tokens planned"
        f" ({p.window.label})",
        "set --context-window to the endpoint's real window (or start the server with a larger one),"
        " or lower --budget",
    )


def _partial_result(
    p: Plan,
    text: str,
    reason: str,
    tool_version: str,
    *,
    usage: Usage | None = None,
    warnings: list[str] | None = None,
) -> ReviewResult:
    try:
        parsed = parse_reply(text, allow_partial=True)
    except EndpointError:
        parsed = ParsedReply(summary="", items=())
    return _result(p, parsed, usage, tool_version, warnings or [], partial_reason=reason)


def _result(
    p: Plan,
    parsed: ParsedReply,
    usage: Usage | None,
    tool_version: str,
    warnings: list[str],
    *,
    partial_reason: str | None = None,
) -> ReviewResult:
    settings = p.settings
    items = [_local_path(item, p.prefix) for item in parsed.items] if p.prefix else list(parsed.items)
    files = p.verifiable
    checked = verify(
        items, files, changed_lines=p.diff.changed if p.diff is not None else None, elided=p.pack.elided
    )
    verified, unverified, unanchored = checked.verified, checked.unverified, checked.unanchored
    if p.prefix:  # reports name files from the repository root, where code scanning looks
        verified = tuple(replace(f, path=p.prefix + f.path) for f in verified)
        unverified, unanchored = (
            tuple(replace(u, path=p.prefix + u.path) if u.path and u.path in files else u for u in group)
            for group in (unverified, unanchored)
        )
    warnings = [*p.warnings, *warnings]
    cost = None
    endpoint_prompt = None
    if usage is not None:
        endpoint_prompt = usage.prompt_tokens
        cost = _cost(settings, p.model, usage)
        drift = drift_warning(endpoint_prompt, p.prompt_tokens, settings.tokenizer, p.model)
        if drift:
            warnings.append(drift)
    if parsed.ignored:
        warnings.append(f"{parsed.ignored} items in the reply were not findings and were ignored")
    dropped = sum(1 for f in p.pack.skipped if f.reason == "over-budget")
    if dropped:
        warnings.append(f"{dropped} files did not fit the context window and were not reviewed")
    return ReviewResult(
        summary=parsed.summary,
        verified=verified,
        unverified=unverified,
        unanchored=unanchored,
        model=p.model,
        endpoint=public_url(settings.base_url),
        tokenizer=settings.tokenizer,
        prompt_tokens=p.prompt_tokens,
        tool_version=tool_version,
        endpoint_prompt_tokens=endpoint_prompt,
        usage=usage,
        cost_usd=cost,
        partial=partial_reason is not None or parsed.partial,
        partial_reason=partial_reason,
        base_ref=p.base_ref if p.diff is not None else None,
        files_reviewed=len(p.pack.included),
        prompt_name=p.instructions.name,
        warnings=tuple(warnings),
        not_sent=p.not_sent(),
    )


def _local_path(item: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
    """A finding that names the file from the repository root, renamed to the pack's path."""
    path = item.get("path")
    if not isinstance(path, str):
        return item
    rooted = path.strip()
    while rooted.startswith(("./", "/")):
        rooted = rooted[2:] if rooted.startswith("./") else rooted[1:]
    if rooted.startswith(prefix):
        return {**item, "path": rooted[len(prefix) :]}
    return item


# Tokenizers that are exact for a model family, for the drift warning's advice.
_FAMILY_TOKENIZERS = (
    ("deepseek", "deepseek-v4"),
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
)


def drift_warning(endpoint_tokens: int | None, ours: int, tokenizer: str, model: str) -> str | None:
    """A warning when the endpoint counted the prompt more than 1 % apart from us."""
    if endpoint_tokens is None or ours <= 0:
        return None
    gap = endpoint_tokens - ours
    if abs(gap) <= max(DRIFT_THRESHOLD * ours, TEMPLATE_MARGIN):
        return None
    name = model.rsplit("/", 1)[-1].lower()
    matching = next((t for prefix, t in _FAMILY_TOKENIZERS if name.startswith(prefix)), None)
    text = (
        f"{DRIFT_PREFIX}{endpoint_tokens:,} prompt tokens where wholerepo counted {ours:,}"
        f" ({tokenizer}, {100 * gap / ours:+.1f}%)"
    )
    if matching is not None and matching != tokenizer:
        return text + f": {model} counts with {matching}; pass --tokenizer {matching}"
    return text + (
        f": the model's tokenizer differs from {tokenizer}, so counts are estimates;"
        " leave room with --budget if the window is tight"
    )


def _cost(settings: Settings, model: str, u: Usage) -> float | None:
    price = pricing.price_for(model, settings.prices)
    if price is None or u.prompt_tokens is None:
        return None
    hit = u.cache_hit_tokens or 0
    miss = u.cache_miss_tokens if u.cache_miss_tokens is not None else max(0, u.prompt_tokens - hit)
    return pricing.cost(
        price, cache_hit_tokens=hit, cache_miss_tokens=miss, output_tokens=u.completion_tokens or 0
    )


def failing(result: ReviewResult, fail_on: str, scope: str | None = None) -> Finding | None:
    """The most severe verified finding at or above ``fail_on`` within ``scope``, if any.

    ``scope`` "diff" counts only findings on changed lines (it needs a diff); None means "diff"
    when the review had one, else "all".
    """
    scope = scope or ("diff" if result.base_ref else "all")
    for f in result.verified:  # sorted most severe first
        if not severity_at_least(f.severity, fail_on):
            continue
        if scope == "diff" and result.base_ref and f.in_diff is not True:
            continue
        return f
    return None


def exit_code(result: ReviewResult, fail_on: str, scope: str | None = None) -> int:
    """1 when a verified finding in scope is at or above ``fail_on``; else 0."""
    return 1 if failing(result, fail_on, scope) is not None else 0
