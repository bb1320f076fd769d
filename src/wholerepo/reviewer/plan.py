"""Before anything is sent: ask the endpoint about itself, then plan the exact request.

``probe()`` asks ``/models`` once (the window, and the model when the endpoint serves just one);
a dry run asks too, so it reports what the real run will send. ``plan()`` does everything short
of the network: the diff, the instructions, the budget that leaves room for them and the reply,
the pack, and the exact prompt token count.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import BudgetError, EndpointError, UsageError
from ..git.diff import Diff, diff_against
from ..llm import pricing
from ..llm.base import (
    DEFAULT_WINDOW,
    ChatModel,
    ChatRequest,
    NotJSONError,
)
from ..llm.policy import DEFAULT_MODEL, is_deepseek, public_url
from ..packer import Pack, pack
from ..packer.cache import TokenCache, default_cache_dir
from ..packer.changes import hidden
from ..settings import Settings
from ..tokens.counter import TokenCounter
from .findings import (
    example_reply,
    response_schema,
)
from .prompts import (
    DIFF_ONLY,
    REPOSITORY_HEAD,
    REPOSITORY_TAIL,
    SYSTEM,
    Instructions,
    diff_block,
    render_instructions,
    user_message,
)
from .result import NotSent

Progress = Callable[[str, int, int], None]

# Room for the chat template's own tokens (BOS, role markers, DeepSeek's thinking-effort line: ~30)
# and for piece-wise counting's boundary effects.
TEMPLATE_MARGIN = 64
MODELS_TIMEOUT = 15.0  # asking /models must not hold up a review for long


class PromptTooLargeError(EndpointError):
    """The prompt does not fit the context window (exit 3, as the contract says)."""


@dataclass(frozen=True)
class Window:
    tokens: int
    source: str  # "--context-window" (or where the setting came from) | "endpoint /models" | "default"

    @property
    def label(self) -> str:
        return window_label(self.source)


def window_label(source: str) -> str:
    """A window's source as messages show it: a default is a guess the user may need to correct."""
    if source == "default":
        return "default: the endpoint did not report its window; pass --context-window if it differs"
    return source


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
    # Files findings may name besides the pack's own (an audit shard: every file of the
    # repository, seen through its map), verified against their whole text.
    context: Mapping[str, str] | None = field(default=None, repr=False)

    @property
    def files(self) -> Mapping[str, str]:
        """Each included file's text as sent: what findings are verified against (read again
        lazily, only for the files findings name)."""
        return self.pack.texts

    @property
    def verifiable(self) -> Mapping[str, str]:
        """What findings are verified against: the pack's files, or ``context`` when given (it
        holds them too)."""
        return self.context if self.context is not None else self.files

    @property
    def prefix(self) -> str:
        """The reviewed directory relative to the repository root ("" or "pkg/")."""
        return self.pack.prefix

    def not_sent(self) -> tuple[NotSent, ...]:
        return tuple(NotSent(self.prefix + f.path, f.reason or "skipped") for f in self.pack.skipped)

    def request(self) -> ChatRequest:
        return ChatRequest(self.system, self.user, self.max_tokens)


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
            Window(settings.context_window, settings.named("context_window"))
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
    if ids and model not in ids:
        shown = ", ".join(sorted(ids)[:10]) + (" ..." if len(ids) > 10 else "")
        notes.append(f"the endpoint does not list the model {model} (it lists {shown}): check --model")
    if settings.context_window is not None:
        return Probe(Window(settings.context_window, settings.named("context_window")), model, tuple(notes))
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
    selection_files: bool = True,
) -> Plan:
    """Pack ``path`` into the room the window leaves and build the exact request.

    Over the budget, the files the diff touches rank first (fit/); ``explain`` ranks the files
    even when everything fits (``--explain-ranking``)."""
    diff, instructions, diff_text, warnings = _framing(path, settings, base)
    # Everything but the pack, counted in the pieces the message is made of: the pack sits between
    # a head that ends in a newline and a tail that starts with "<", both pre-tokenizer
    # boundaries, so the pack's own exact count adds up with theirs.
    tail = (
        REPOSITORY_TAIL
        + (diff_block(diff_text, base or "") if diff_text is not None else "")
        + instructions.text
    )
    fixed = sum(_count([SYSTEM, REPOSITORY_HEAD, tail], settings))
    max_tokens = output_limit(settings, window)
    room = window.tokens - fixed - TEMPLATE_MARGIN - max_tokens
    flags = _window_advice(settings)
    if diff is not None:
        flags += ", or pick a nearer --base"
    if room <= 0:
        raise PromptTooLargeError(
            f"the prompt does not fit: the instructions{' and diff' if diff else ''} take {fixed:,} tokens"
            f" and {settings.named('max_output_tokens')} {max_tokens:,},"
            " leaving no room for the repository in the"
            f" {window.tokens:,}-token window ({window.label})",
            flags,
        )
    budget = min(room, settings.budget) if settings.budget is not None else room
    try:
        # The files' texts are read again only for the findings that name them: a warm pack can
        # reuse every cached section.
        packed = pack(
            path,
            replace(settings, budget=budget),
            on_progress=on_progress,
            keep_file_text=False,
            focus=_focus(diff),
            explain=explain,
            selection_files=selection_files,
        )
    except BudgetError as exc:
        if budget == settings.budget and budget < room:
            # The user's own budget is what is too small, not the window: a usage error, as in pack.
            limit = settings.named("budget")
            raise UsageError(
                f"{limit} {budget:,} is too small {exc.message.partition(' is too small ')[2]}",
                f"raise {limit}",
            ) from exc
        raise PromptTooLargeError(
            f"the prompt does not fit: {exc.message} ({window.tokens:,}-token window, {window.label})",
            flags,
        ) from exc
    user = user_message(packed.text, instructions.text, diff_text, base)
    prompt_tokens = fixed + packed.prompt_tokens
    if prompt_tokens + max_tokens > window.tokens:
        raise PromptTooLargeError(
            f"the prompt does not fit: {prompt_tokens:,} prompt tokens + {max_tokens:,} output tokens"
            f" exceed the {window.tokens:,}-token window ({window.label})",
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


def plan_diff(
    path: Path,
    settings: Settings,
    window: Window,
    *,
    base: str,
    model: str | None = None,
    on_progress: Progress | None = None,
) -> Plan:
    """Only the change, as diff-only reviewers see it: the diff against ``base`` (three lines of
    context) in place of the repository, with the same system message and instructions.

    The changed files are packed but not sent: findings are verified against their full text.
    """
    diff, instructions, diff_text, warnings = _framing(path, settings, base)
    if diff is None or diff_text is None:
        raise UsageError(f"the diff against {base} is empty: a diff-only review has nothing to send")
    user = user_message(DIFF_ONLY, instructions.text, diff_text, base)
    prompt_tokens = sum(_count([SYSTEM, user], settings))
    max_tokens = output_limit(settings, window)
    if prompt_tokens + max_tokens > window.tokens:
        raise PromptTooLargeError(
            f"the prompt does not fit: the diff and instructions take {prompt_tokens:,} tokens and"
            f" {settings.named('max_output_tokens')} {max_tokens:,} in the {window.tokens:,}-token window"
            f" ({window.label})",
            _window_advice(settings) + ", or pick a nearer --base",
        )
    changed = sorted(f.path for f in diff.files if f.path)
    only = {"include": tuple("/" + _literal(c) for c in changed)} if changed else {"exclude": ("*",)}
    packed = pack(path, replace(settings, budget=None, **only), on_progress=on_progress)
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
        budget=0,  # no repository is sent
        model=model or settings.model or DEFAULT_MODEL,
        warnings=tuple(warnings),
    )


def _literal(path: str) -> str:
    """``path`` as a gitignore pattern that matches it and nothing else."""
    return re.sub(r"([\\*?\[\]!#])", r"\\\1", path).replace(" ", "\\ ")


def _framing(
    path: Path, settings: Settings, base: str | None
) -> tuple[Diff | None, Instructions, str | None, list[str]]:
    """The diff, the instructions and the diff's text as sent (redacted, defanged), and warnings."""
    warnings: list[str] = []
    diff = None
    if base:
        # The diff obeys the pack's selection: a file the pack skips shows as its name only.
        diff = diff_against(path, base, hide=lambda entries: hidden(path, settings, entries))
    if diff is not None and not diff.text.strip():
        warnings.append(f"the diff against {base} is empty: reviewing the whole repository without a focus")
        diff = None
    counter = TokenCounter(settings.tokenizer)  # control tokens only, for defanging
    instructions = _instructions(settings, base if diff is not None else None, counter)
    # The diff holds removed lines too: the very secret a change deletes must not be sent. Like
    # the pack, it cannot close its block: framing markers in it are broken.
    diff_text = None
    if diff is not None:
        diff_text = counter.defang(_redacted_diff(diff.text, settings))
    return diff, instructions, diff_text, warnings


def _instructions(
    settings: Settings, base_ref: str | None, counter: TokenCounter, note: str = ""
) -> Instructions:
    """The instructions as sent: rendered, ``note`` appended, redacted and defanged (a
    configuration's text can hold a key, and a template can print anything)."""
    instructions = render_instructions(
        settings.prompt,
        schema=response_schema(),
        example=example_reply(),
        base_ref=base_ref,
        instructions=settings.instructions,
        relative_to=settings.prompt_base,
        named=settings.named("prompt"),
    )
    text = instructions.text + (note.strip("\n") + "\n" if note else "")
    return replace(instructions, text=counter.defang(_redacted("instructions", text, settings)))


@dataclass(frozen=True)
class Frame:
    """A request without its repository: the instructions, their exact count with the system
    message and the repository's markers, and the tokens the window leaves the repository."""

    instructions: Instructions = field(repr=False)
    fixed: int  # exact tokens of SYSTEM, REPOSITORY_HEAD, REPOSITORY_TAIL and the instructions
    budget: int  # the repository's tokens: the window's room, capped by settings.budget
    max_tokens: int
    window: Window


def output_limit(settings: Settings, window: Window) -> int:
    """The reply's token limit: --max-output-tokens when it was set anywhere; by default 32,768,
    but at most a quarter of a small window (a 32K llama.cpp server keeps 24K for the prompt)."""
    if "max_output_tokens" in settings.sources:
        return settings.max_output_tokens
    return min(settings.max_output_tokens, max(1024, window.tokens // 4))


def output_limit_source(settings: Settings, limit: int) -> str:
    """Where ``output_limit``'s answer came from, as the dry run shows it."""
    if "max_output_tokens" in settings.sources:
        return settings.named("max_output_tokens")
    return "default" if limit == settings.max_output_tokens else "a quarter of the window"


def _window_advice(settings: Settings) -> str:
    return (
        f"lower {settings.named('max_output_tokens')}, raise {settings.named('context_window')}"
        " if the endpoint's window is larger"
    )


def frame(settings: Settings, window: Window, *, note: str = "") -> Frame:
    """The frame of requests that carry a repository the caller packs itself (an audit's shards),
    with ``note`` after the instructions; raises PromptTooLargeError when nothing fits."""
    counter = TokenCounter(settings.tokenizer)
    instructions = _instructions(settings, None, counter, note)
    fixed = sum(_count([SYSTEM, REPOSITORY_HEAD, REPOSITORY_TAIL + instructions.text], settings))
    max_tokens = output_limit(settings, window)
    room = window.tokens - fixed - TEMPLATE_MARGIN - max_tokens
    if room <= 0:
        raise PromptTooLargeError(
            f"the prompt does not fit: the instructions take {fixed:,} tokens and"
            f" {settings.named('max_output_tokens')} {max_tokens:,},"
            " leaving no room for the repository in the"
            f" {window.tokens:,}-token window ({window.label})",
            _window_advice(settings),
        )
    budget = min(room, settings.budget) if settings.budget is not None else room
    return Frame(instructions, fixed, budget, max_tokens, window)


def plan_pack(
    packed: Pack,
    f: Frame,
    *,
    model: str,
    head: str = "",
    head_tokens: int = 0,
    context: Mapping[str, str] | None = None,
) -> Plan:
    """The request for a pack the caller made, in the frame ``f``: ``head`` (text that starts with
    punctuation and ends with a newline, ``head_tokens`` exactly: an audit's repository map) comes
    first inside the repository markers, so that requests sharing it share their prefix; findings
    may name any file of ``context`` besides the pack's own. Exact, and within the window."""
    repository = head_tokens + packed.prompt_tokens
    if repository > f.budget:
        raise PromptTooLargeError(
            f"the prompt does not fit: the repository takes {repository:,} tokens of a budget of {f.budget:,}"
        )
    user = REPOSITORY_HEAD + head + packed.text + REPOSITORY_TAIL + f.instructions.text
    return Plan(
        settings=packed.settings,
        pack=packed,
        instructions=f.instructions,
        diff=None,
        base_ref=None,
        system=SYSTEM,
        user=user,
        prompt_tokens=f.fixed + repository,
        max_tokens=f.max_tokens,
        window=f.window,
        budget=f.budget,
        model=model,
        context=context,
    )


def _focus(diff: Diff | None) -> Any:
    if diff is None:
        return None
    from ..fit.stage import Focus

    return Focus(frozenset(diff.changed), diff.ref)


def _count(texts: list[str], settings: Settings) -> list[int]:
    """Exact counts through the cache: a warm plan never loads the tokenizer."""
    cache = TokenCache(default_cache_dir() if settings.cache else None)
    counter = TokenCounter(settings.tokenizer, store=cache if cache.enabled else None)
    try:
        return counter.count_many(texts)
    finally:
        counter.close()
        cache.close()


def _redacted(name: str, text: str, settings: Settings) -> str:
    if not settings.redact:
        return text
    from ..redact import Redactor

    return Redactor().redact(name, text)[0]


def _redacted_diff(text: str, settings: Settings) -> str:
    if not settings.redact:
        return text
    from ..redact import Redactor

    return Redactor().redact_diff(text)[0]


def left_out(p: Plan, top: int = 5) -> dict[str, Any] | None:
    """Files that did not fit: how many, their tokens and the directories that lost most; how
    many went compressed; the most important of both, by rank."""
    from ..fit.report import most_important

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
        "max_output_tokens_source": output_limit_source(settings, p.max_tokens),
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
    from ..fit.report import most_important_text

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
        f"  output tokens:  up to {report['max_output_tokens']:,} ({report['max_output_tokens_source']})",
        f"  context window: {report['context_window']:,} ({window_label(report['context_window_source'])})",
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
