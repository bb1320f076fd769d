"""The review: ask the endpoint about itself, plan the request, send it, verify the findings.

``probe()`` asks ``/models`` once (the window, and the model when the endpoint serves just one);
a dry run asks too, so it reports what the real run will send. ``plan()`` does everything short
of the network: the diff, the instructions, the budget that leaves room for them and the reply,
the pack, and the exact prompt token count. ``run()`` sends the plan through a ChatModel and
turns the reply into a ReviewResult; faults that leave findings behind (Ctrl-C, a cut reply,
retries exhausted mid-stream) still return them, marked partial.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from .config import Settings
from .errors import BudgetError, EndpointError, UsageError
from .findings import (
    Finding,
    ParsedReply,
    example_reply,
    parse_reply,
    response_schema,
    severity_at_least,
    verify,
)
from .gitdiff import Diff, diff_against
from .llm import pricing
from .llm.base import (
    DEFAULT_WINDOW,
    ChatModel,
    ChatRequest,
    ContextLengthError,
    EndpointFailed,
    EventSink,
    NotJSONError,
    Reply,
    Transcript,
    Usage,
)
from .llm.policy import DEFAULT_MODEL, is_deepseek, public_url
from .packer import Pack, pack
from .prompts import SYSTEM, Instructions, diff_block, render_instructions, repository_block, user_message
from .result import NotSent, ReviewResult
from .tokens import get_tokenizer

Progress = Callable[[str, int, int], None]
T = TypeVar("T")

# Room for the chat template's own tokens (BOS, role markers, DeepSeek's thinking-effort line: ~30)
# and for piece-wise counting's boundary effects.
TEMPLATE_MARGIN = 64
# The endpoint's prompt count may differ from ours by this share before we warn.
DRIFT_THRESHOLD = 0.01
MODELS_TIMEOUT = 15.0  # asking /models must not hold up a review for long
HEARTBEAT = 60.0  # seconds between "still waiting" lines while the model thinks


class PromptTooLargeError(EndpointError):
    """The prompt does not fit the context window (exit 3, as the contract says)."""


@dataclass(frozen=True)
class Window:
    tokens: int
    source: str  # "--context-window" | "endpoint /models" | "default"


@dataclass(frozen=True)
class Probe:
    """What the endpoint said about itself, before anything is sent."""

    window: Window
    model: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """Everything to send, counted exactly; nothing sent yet."""

    settings: Settings = field(repr=False)
    pack: Pack = field(repr=False)
    instructions: Instructions = field(repr=False)
    diff: Diff | None  # None without --base, or when the diff is empty
    base_ref: str | None  # --base as given
    system: str = field(repr=False)
    user: str = field(repr=False)
    prompt_tokens: int  # exact tokens of the system and user messages (chat template excluded)
    max_tokens: int
    window: Window
    budget: int  # the tokens the repository itself was given
    model: str
    warnings: tuple[str, ...] = ()

    @property
    def files(self) -> dict[str, str]:
        """Each included file's text as sent: what findings are verified against."""
        return {f.path: f.text for f in self.pack.included if f.text is not None}

    @property
    def prefix(self) -> str:
        """The reviewed directory relative to the repository root ("" or "pkg/")."""
        return self.pack.prefix

    def not_sent(self) -> tuple[NotSent, ...]:
        return tuple(NotSent(self.prefix + f.path, f.reason or "skipped") for f in self.pack.skipped)

    def request(self) -> ChatRequest:
        return ChatRequest(self.system, self.user, self.max_tokens)


@dataclass(frozen=True)
class Outcome:
    """A finished review. ``error`` is raised once the outputs are written; ``raw`` is then saved."""

    result: ReviewResult | None
    error: EndpointError | None = None
    raw: str | None = None
    interrupted: bool = False


# -- before sending -----------------------------------------------------------------------------


async def probe(settings: Settings, chat: ChatModel | None, *, not_asked: str | None = None) -> Probe:
    """The window and the model, from the flags or the endpoint's /models.

    With ``chat`` None nothing is asked (``not_asked`` says why). A non-JSON answer is an error
    (the URL is wrong); any other failure is noted and the defaults are used.
    """
    notes: list[str] = []
    model = settings.model
    known = settings.context_window is not None and model is not None
    if chat is None or known:
        if chat is None and not known:
            notes.append(f"did not ask the endpoint's /models: {not_asked or 'no endpoint'}")
        window = (
            Window(settings.context_window, "--context-window")
            if settings.context_window is not None
            else Window(DEFAULT_WINDOW, "default")
        )
        return Probe(window, model or DEFAULT_MODEL, tuple(notes))
    try:
        models = await chat.list_models(timeout=min(MODELS_TIMEOUT, settings.timeout))
    except NotJSONError:
        raise
    except EndpointError as exc:
        notes.append(f"could not ask the endpoint's /models ({exc.one_line()}); using the defaults")
        models = []
    ids = [m.id for m in models]
    if model is None:
        if len(ids) == 1:
            model = ids[0]
            notes.append(f"the endpoint serves one model, {model}: using it")
        elif ids and DEFAULT_MODEL not in ids and not is_deepseek(settings.base_url):
            shown = ", ".join(sorted(ids)[:10]) + (" ..." if len(ids) > 10 else "")
            raise UsageError(
                f"the endpoint serves {len(ids)} models and none was chosen: {shown}",
                "choose one with --model",
            )
        else:
            model = DEFAULT_MODEL
    if settings.context_window is not None:
        return Probe(Window(settings.context_window, "--context-window"), model, tuple(notes))
    for m in models:
        if m.id == model and m.max_model_len:
            return Probe(Window(m.max_model_len, "endpoint /models"), model, tuple(notes))
    return Probe(Window(DEFAULT_WINDOW, "default"), model, tuple(notes))


def plan(
    path: Path,
    settings: Settings,
    window: Window,
    *,
    model: str | None = None,
    base: str | None = None,
    on_progress: Progress | None = None,
    explain: bool = False,
) -> Plan:
    """Pack ``path`` into the room the window leaves and build the exact request.

    Over the budget, the files the diff touches rank first (fit/); ``explain`` ranks the files
    even when everything fits (``--explain-ranking``)."""
    warnings: list[str] = []
    diff = diff_against(path, base) if base else None
    if diff is not None and not diff.text.strip():
        warnings.append(f"the diff against {base} is empty: reviewing the whole repository without a focus")
        diff = None
    tokenizer = get_tokenizer(settings.tokenizer)
    instructions = render_instructions(
        settings.prompt,
        schema=response_schema(),
        example=example_reply(),
        base_ref=base if diff is not None else None,
        instructions=settings.instructions,
        relative_to=settings.prompt_base,
    )
    # What is sent is redacted and defanged, the instructions too: a configuration's text can
    # hold a key, and a template can print anything.
    instructions = replace(
        instructions, text=tokenizer.defang(_redacted("instructions", instructions.text, settings))
    )
    # The diff holds removed lines too: the very secret a change deletes must not be sent.
    diff_text = None
    if diff is not None:
        diff_text = tokenizer.defang(_redacted_diff(diff.text, settings))
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
    budget = min(room, settings.budget) if settings.budget is not None else room
    try:
        packed = pack(
            path,
            replace(settings, budget=budget),
            on_progress=on_progress,
            focus=_focus(diff),
            explain=explain,
        )
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
        base_ref=base,
        system=SYSTEM,
        user=user,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        window=window,
        budget=budget,
        model=model or settings.model or DEFAULT_MODEL,
        warnings=tuple(warnings),
    )


def _focus(diff: Diff | None) -> Any:
    if diff is None:
        return None
    from .fit.stage import Focus

    return Focus(frozenset(diff.changed), diff.ref)


def _redacted(name: str, text: str, settings: Settings) -> str:
    if not settings.redact:
        return text
    from .redact import Redactor

    return Redactor().redact(name, text)[0]


def _redacted_diff(text: str, settings: Settings) -> str:
    if not settings.redact:
        return text
    from .redact import Redactor

    return Redactor().redact_diff(text)[0]


def left_out(p: Plan, top: int = 5) -> dict[str, Any] | None:
    """Files that did not fit: how many, their tokens and the directories that lost most; how
    many went compressed; the most important of both, by rank."""
    from .fit.report import most_important

    dropped = [f for f in p.pack.skipped if f.reason == "over-budget"]
    compressed = [f for f in p.pack.files if f.status == "compressed"]
    if not dropped and not compressed:
        return None
    dirs: dict[str, int] = {}
    for f in dropped:
        parent = str(PurePosixPath(p.prefix + f.path).parent)
        key = "(root)" if parent == "." else parent + "/"
        dirs[key] = dirs.get(key, 0) + 1
    return {
        "files": len(dropped),
        "tokens": sum(f.tokens for f in dropped),
        "directories": [
            {"path": d, "files": n} for d, n in sorted(dirs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        ],
        "compressed": len(compressed),
        "most_important": [{**e, "path": p.prefix + e["path"]} for e in most_important(p.pack.files)],
    }


# -- dry run ------------------------------------------------------------------------------------


def dry_run_report(p: Plan, probe_notes: tuple[str, ...] = ()) -> dict[str, Any]:
    """What a review would send and cost, as data (the CLI prints it as text or JSON)."""
    settings = p.settings
    price = pricing.price_for(p.model, settings.prices)
    estimate = pricing.estimate(price, p.prompt_tokens, p.max_tokens) if price else None
    return {
        "dry_run": True,
        "endpoint": public_url(settings.base_url),
        "model": p.model,
        "tokenizer": settings.tokenizer,
        "prompt": p.instructions.name,
        "base_ref": p.base_ref if p.diff is not None else None,
        "files_included": len(p.pack.included),
        "files_skipped": len(p.pack.skipped),
        "not_sent": left_out(p),
        "repository_tokens": p.pack.prompt_tokens,
        "prompt_tokens": p.prompt_tokens,
        "max_output_tokens": p.max_tokens,
        "context_window": p.window.tokens,
        "context_window_source": p.window.source,
        "budget": p.budget,
        "notes": list(probe_notes) + list(p.warnings),
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


def left_out_text(info: Mapping[str, Any] | None) -> str | None:
    if not info:
        return None
    from .fit.report import most_important_text

    said = []
    if info["files"]:
        dirs = ", ".join(f"{d['path']} {d['files']}" for d in info["directories"])
        said.append(
            f"{info['files']:,} files ({info['tokens']:,} tokens) do not fit and will not be sent;"
            f" most from: {dirs} (the manifest, --manifest FILE, lists them)"
        )
    if info.get("compressed"):
        said.append(f"{info['compressed']:,} files will be sent compressed to outlines")
    named = most_important_text(info.get("most_important", []))
    if named:
        said.append(named)
    return "; ".join(said)


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
    dropped = left_out_text(report["not_sent"])
    if dropped:
        lines.append(f"  not sent:       {dropped}")
    cost = report["estimated_cost_usd"]
    if cost is None:
        lines.append(f"  estimated cost: unknown (no price for {report['model']}; set prices in your config)")
    else:
        lines.append(
            f"  estimated cost: input ${cost['input_cache_miss']:.4f} (cache miss),"
            f" ${cost['input_cache_hit']:.4f} (all cached); output up to ${cost['output_max']:.4f};"
            f" at most ${cost['max_total']:.4f} (peak prices)"
        )
    lines.extend(f"  note: {note}" for note in report["notes"])
    return "\n".join(lines) + "\n"


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
            f" {p.window.tokens:,}-token window ({p.window.source}){real}. Endpoint: {exc.message}",
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
        reason = f"the reply was cut off at --max-output-tokens ({p.max_tokens:,})"
        result = _partial_result(p, reply.content, reason, tool_version, usage=reply.usage, warnings=warnings)
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
    checked = verify(
        items, p.files, changed_lines=p.diff.changed if p.diff is not None else None, elided=p.pack.elided
    )
    verified, unverified = checked.verified, checked.unverified
    if p.prefix:  # reports name files from the repository root, where code scanning looks
        verified = tuple(replace(f, path=p.prefix + f.path) for f in verified)
        unverified = tuple(
            replace(u, path=p.prefix + u.path) if u.path and u.path in p.files else u for u in unverified
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
        f"the endpoint counted {endpoint_tokens:,} prompt tokens where wholerepo counted {ours:,}"
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
