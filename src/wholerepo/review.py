"""The review: plan the request (pack into what the window leaves), send it, verify the findings.

``plan()`` does everything short of the network: the diff, the instructions, the budget that
leaves room for them and the reply, the pack, and the exact prompt token count. ``run()`` sends
the plan through a ChatClient and turns the reply into a ReviewResult; faults that leave findings
behind (Ctrl-C, a cut reply, retries exhausted mid-stream) still return them, marked partial.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import pricing
from .client import DEFAULT_WINDOW, ChatClient, ContextLengthError, EndpointFailed, EndpointUsage, Transcript
from .client import public_url as public_url
from .config import Settings
from .errors import BudgetError, EndpointError
from .findings import (
    ParsedReply,
    example_reply,
    parse_reply,
    response_schema,
    severity_at_least,
    verify,
)
from .gitdiff import Diff, diff_against
from .packer import Pack, pack
from .prompts import SYSTEM, Instructions, diff_block, render_instructions, repository_block, user_message
from .redact import Redactor
from .report import ReviewResult, Usage
from .tokens import get_tokenizer

Progress = Callable[[str, int, int], None]

# Room for the chat template's own tokens (BOS, role markers, DeepSeek's thinking-effort line: ~30)
# and for piece-wise counting's boundary effects. Also the tolerance before we warn that the
# endpoint's tokenizer differs from ours.
TEMPLATE_MARGIN = 64


class PromptTooLargeError(EndpointError):
    """The prompt does not fit the context window (exit 3, as the contract says)."""


@dataclass(frozen=True)
class Window:
    tokens: int
    source: str  # "--context-window" | "endpoint /models" | "default"


@dataclass(frozen=True)
class Plan:
    """Everything to send, counted exactly; nothing sent yet."""

    settings: Settings = field(repr=False)
    pack: Pack = field(repr=False)
    instructions: Instructions = field(repr=False)
    diff: Diff | None
    system: str = field(repr=False)
    user: str = field(repr=False)
    prompt_tokens: int  # exact tokens of the system and user messages (chat template excluded)
    max_tokens: int
    window: Window
    budget: int  # the tokens the repository itself was given

    @property
    def files(self) -> dict[str, str]:
        """Each included file's text as sent: what findings are verified against."""
        return {f.path: f.text for f in self.pack.included if f.text is not None}


@dataclass(frozen=True)
class Outcome:
    """A finished review. ``error`` is raised once the outputs are written; ``raw`` is then saved."""

    result: ReviewResult | None
    error: EndpointError | None = None
    raw: str | None = None
    interrupted: bool = False


def resolve_window(settings: Settings, client: ChatClient | None) -> Window:
    """--context-window, else the endpoint's /models figure (vLLM), else 1,048,576."""
    if settings.context_window is not None:
        return Window(settings.context_window, "--context-window")
    if client is not None:
        found = client.context_window()
        if found:
            return Window(found, "endpoint /models")
    return Window(DEFAULT_WINDOW, "default")


def plan(
    path: Path,
    settings: Settings,
    window: Window,
    *,
    base: str | None = None,
    on_progress: Progress | None = None,
) -> Plan:
    """Pack ``path`` into the room the window leaves and build the exact request."""
    diff = diff_against(path, base) if base else None
    tokenizer = get_tokenizer(settings.tokenizer)
    instructions = render_instructions(
        settings.prompt, schema=response_schema(), example=example_reply(), base_ref=base
    )
    # The diff holds removed lines too: the very secret a change deletes must not be sent.
    diff_text = None
    if diff is not None:
        raw = Redactor().redact_diff(diff.text)[0] if settings.redact else diff.text
        diff_text = tokenizer.defang(raw)
    around = repository_block("") + (diff_block(diff_text, base or "") if diff_text is not None else "")
    fixed = tokenizer.count(SYSTEM) + tokenizer.count(around) + tokenizer.count(instructions.text)
    max_tokens = settings.max_output_tokens
    room = window.tokens - fixed - TEMPLATE_MARGIN - max_tokens
    flags = "lower --max-output-tokens, raise --context-window if the endpoint's window is larger"
    if diff is not None:
        flags += ", or pick a nearer --base"
    if room <= 0:
        raise PromptTooLargeError(
            f"the prompt does not fit: the instructions{' and diff' if diff else ''} take {fixed:,} tokens"
            f" and --max-output-tokens {max_tokens:,}, leaving no room for the repository in the"
            f" {window.tokens:,}-token window ({window.source})",
            flags,
        )
    budget = min(room, settings.budget) if "budget" in settings.sources else room
    try:
        packed = pack(path, replace(settings, budget=budget), on_progress=on_progress)
    except BudgetError as exc:
        raise PromptTooLargeError(
            f"the prompt does not fit: {exc.message} ({window.tokens:,}-token window, {window.source})",
            flags,
        ) from exc
    user = user_message(packed.text, instructions.text, diff_text, base)
    prompt_tokens = tokenizer.count(SYSTEM) + tokenizer.count(user)
    if prompt_tokens + max_tokens > window.tokens:
        raise PromptTooLargeError(
            f"the prompt does not fit: {prompt_tokens:,} prompt tokens + {max_tokens:,} output tokens"
            f" exceed the {window.tokens:,}-token window ({window.source})",
            "lower --budget or " + flags,
        )
    return Plan(
        settings=settings,
        pack=packed,
        instructions=instructions,
        diff=diff,
        system=SYSTEM,
        user=user,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        window=window,
        budget=budget,
    )


# -- dry run ------------------------------------------------------------------------------------


def dry_run_report(p: Plan) -> dict[str, Any]:
    """What a review would send and cost, as data (the CLI prints it as text or JSON)."""
    settings = p.settings
    price = pricing.price_for(settings.model, settings.prices)
    estimate = pricing.estimate(price, p.prompt_tokens, p.max_tokens) if price else None
    return {
        "dry_run": True,
        "endpoint": public_url(settings.base_url),
        "model": settings.model,
        "tokenizer": settings.tokenizer,
        "prompt": p.instructions.name,
        "base_ref": p.diff.ref if p.diff else None,
        "files_included": len(p.pack.included),
        "files_skipped": len(p.pack.skipped),
        "repository_tokens": p.pack.prompt_tokens,
        "prompt_tokens": p.prompt_tokens,
        "max_output_tokens": p.max_tokens,
        "context_window": p.window.tokens,
        "context_window_source": p.window.source,
        "budget": p.budget,
        "prices_usd_per_million": (
            {"cache_hit": price.cache_hit, "cache_miss": price.cache_miss, "output": price.output}
            if price
            else None
        ),
        "estimated_cost_usd": (
            {
                "input_cache_miss": estimate.input_cache_miss_usd,
                "input_cache_hit": estimate.input_cache_hit_usd,
                "output_max": estimate.output_max_usd,
                "max_total": estimate.max_usd,
            }
            if estimate
            else None
        ),
    }


def dry_run_text(report: Mapping[str, Any]) -> str:
    lines = [
        f"wholerepo review --dry-run: nothing was sent to {report['endpoint']}",
        f"  model:          {report['model']}",
        f"  prompt:         {report['prompt']}"
        + (f" (focus: diff against {report['base_ref']})" if report["base_ref"] else ""),
        f"  files:          {report['files_included']:,} included, {report['files_skipped']:,} skipped",
        f"  prompt tokens:  {report['prompt_tokens']:,} exact ({report['tokenizer']}),"
        f" of which the repository {report['repository_tokens']:,}",
        f"  output tokens:  up to {report['max_output_tokens']:,}",
        f"  context window: {report['context_window']:,} ({report['context_window_source']})",
    ]
    cost = report["estimated_cost_usd"]
    if cost is None:
        lines.append(
            f"  estimated cost: unknown (no price for {report['model']}; set [tool.wholerepo.prices])"
        )
    else:
        lines.append(
            f"  estimated cost: input ${cost['input_cache_miss']:.4f} (cache miss),"
            f" ${cost['input_cache_hit']:.4f} (all cached); output up to ${cost['output_max']:.4f};"
            f" at most ${cost['max_total']:.4f} (peak prices)"
        )
    return "\n".join(lines) + "\n"


# -- the real review ----------------------------------------------------------------------------


def run(p: Plan, client: ChatClient, *, tool_version: str) -> Outcome:
    """Send the plan and verify the reply; never loses findings that arrived."""
    transcript = Transcript()
    try:
        reply = client.complete(p.system, p.user, max_tokens=p.max_tokens, transcript=transcript)
    except KeyboardInterrupt:
        text = transcript.longest()
        result = _partial_result(p, text, "interrupted (Ctrl-C) before the reply was complete", tool_version)
        return Outcome(result, raw=text or None, interrupted=True)
    except ContextLengthError as exc:
        real = f"; the endpoint's window is {exc.window:,}" if exc.window else ""
        raise PromptTooLargeError(
            f"the prompt does not fit the endpoint's context window: we sent {p.prompt_tokens:,} prompt"
            f" tokens (exact, {p.settings.tokenizer}) and asked for {p.max_tokens:,} output tokens in a"
            f" {p.window.tokens:,}-token window ({p.window.source}){real}. Endpoint: {exc.message}",
            "set --context-window to the endpoint's real window, or lower --budget or --max-output-tokens",
        ) from None
    except EndpointFailed as exc:
        if not exc.partial.strip():
            raise
        result = _partial_result(p, exc.partial, exc.message, tool_version)
        return Outcome(result, error=exc, raw=exc.partial)

    warnings: list[str] = []
    if not reply.json_mode:
        warnings.append("the endpoint does not support JSON mode (response_format); asked in words only")
    if reply.finish_reason == "length":
        reason = f"the reply was cut off at --max-output-tokens ({p.max_tokens:,})"
        result = _partial_result(p, reply.content, reason, tool_version, reply=reply, warnings=warnings)
        error = EndpointError(
            f"{reason}; the complete findings are reported as partial", "raise --max-output-tokens"
        )
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


def _partial_result(
    p: Plan,
    text: str,
    reason: str,
    tool_version: str,
    *,
    reply: Any = None,
    warnings: list[str] | None = None,
) -> ReviewResult:
    try:
        parsed = parse_reply(text, allow_partial=True)
    except EndpointError:
        parsed = ParsedReply(summary="", items=())
    usage = reply.usage if reply is not None else None
    return _result(p, parsed, usage, tool_version, warnings or [], partial_reason=reason)


def _result(
    p: Plan,
    parsed: ParsedReply,
    endpoint_usage: EndpointUsage | None,
    tool_version: str,
    warnings: list[str],
    *,
    partial_reason: str | None = None,
) -> ReviewResult:
    settings = p.settings
    checked = verify(parsed.items, p.files, changed_lines=p.diff.changed if p.diff is not None else None)
    usage = None
    cost = None
    endpoint_prompt = None
    if endpoint_usage is not None:
        usage = Usage(
            prompt_tokens=endpoint_usage.prompt_tokens,
            completion_tokens=endpoint_usage.completion_tokens,
            cache_hit_tokens=endpoint_usage.cache_hit_tokens,
            cache_miss_tokens=endpoint_usage.cache_miss_tokens,
            reasoning_tokens=endpoint_usage.reasoning_tokens,
        )
        endpoint_prompt = endpoint_usage.prompt_tokens
        cost = _cost(settings, endpoint_usage)
        if endpoint_prompt is not None and abs(endpoint_prompt - p.prompt_tokens) > TEMPLATE_MARGIN:
            warnings.append(
                f"the endpoint counted {endpoint_prompt:,} prompt tokens where wholerepo counted"
                f" {p.prompt_tokens:,} ({settings.tokenizer}): its tokenizer differs; pick the"
                " matching --tokenizer or leave more room with --budget"
            )
    if parsed.ignored:
        warnings.append(f"{parsed.ignored} items in the reply were not findings and were ignored")
    dropped = sum(1 for f in p.pack.skipped if f.reason == "over-budget")
    if dropped:
        warnings.append(f"{dropped} files did not fit the context window and were not reviewed")
    return ReviewResult(
        summary=parsed.summary,
        verified=checked.verified,
        unverified=checked.unverified,
        unanchored=checked.unanchored,
        model=settings.model,
        endpoint=public_url(settings.base_url),
        tokenizer=settings.tokenizer,
        prompt_tokens=p.prompt_tokens,
        tool_version=tool_version,
        endpoint_prompt_tokens=endpoint_prompt,
        usage=usage,
        cost_usd=cost,
        partial=partial_reason is not None or parsed.partial,
        partial_reason=partial_reason,
        base_ref=p.diff.ref if p.diff is not None else None,
        files_reviewed=len(p.pack.included),
        prompt_name=p.instructions.name,
        warnings=tuple(warnings),
    )


def _cost(settings: Settings, u: EndpointUsage) -> float | None:
    price = pricing.price_for(settings.model, settings.prices)
    if price is None or u.prompt_tokens is None:
        return None
    hit = u.cache_hit_tokens or 0
    miss = u.cache_miss_tokens if u.cache_miss_tokens is not None else max(0, u.prompt_tokens - hit)
    return pricing.cost(
        price, cache_hit_tokens=hit, cache_miss_tokens=miss, output_tokens=u.completion_tokens or 0
    )


def exit_code(result: ReviewResult, fail_on: str) -> int:
    """1 when a verified finding is at or above ``fail_on``; else 0."""
    return 1 if any(severity_at_least(f.severity, fail_on) for f in result.verified) else 0
