"""The living summary comment: one per pull request, edited in place on every run.

It lists the open findings by severity with links to their lines at the head commit (new ones
marked), the findings outside the diff in their own section, what was fixed and in which commit,
what a person dismissed, what the model was not sent, and usage, cost and prefix-cache hits.
Every model-supplied string passes through wholerepo.sanitize first. The body stays under
GitHub's limit with its markers intact: findings that do not fit are counted, not cut mid-way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from ..reviewer.findings import SEVERITIES, Finding
from ..reviewer.result import ReviewResult
from ..sanitize import blockquote, code_span
from .inline import ICONS
from .state import SUMMARY_MARKER, Tracked
from .text import markdown_inline, markdown_text

BODY_LIMIT = 65_000  # GitHub refuses 65,536 characters; PR-Agent's margin
NOT_SENT_NAMED = 30
FINDING_BODY_LIMIT = 1_500


@dataclass(frozen=True)
class Summary:
    """Everything the summary comment shows, decided by the run."""

    result: ReviewResult
    open: Sequence[Finding]  # every open finding at the head (this run's and earlier ones still there)
    new: frozenset[str]  # fingerprints first reported by this run
    inline: Mapping[str, str]  # fingerprint -> "posted" | "posted earlier"
    held: Mapping[str, str]  # fingerprint -> why it has no inline comment
    fixed: Sequence[Tracked]  # fixed by this run's head (and earlier ones, marked)
    dismissed: Sequence[Tracked]
    head_sha: str
    blob_url: str  # https://github.com/OWNER/NAME/blob
    commit_url: str  # https://github.com/OWNER/NAME/commit
    mode: str  # "full review" | "incremental review since abc1234"
    diff_files_not_sent: Sequence[str] = ()
    notes: Sequence[str] = field(default_factory=tuple)


def _link(s: Summary, path: str, start: int, end: int) -> str:
    where = f"{path}:{start}" if end <= start else f"{path}:{start}-{end}"
    anchor = f"#L{start}" if end <= start else f"#L{start}-L{end}"
    url = f"{s.blob_url}/{s.head_sha}/{quote(path, safe='/')}{anchor}"
    return f"[{code_span(where, 400)}]({url})"


def _commit(s: Summary, sha: str | None) -> str:
    if not sha:
        return "an earlier commit"
    return f"[{code_span(sha[:7], 20)}]({s.commit_url}/{sha})"


def _finding_lines(s: Summary, f: Finding) -> list[str]:
    new = "🆕 " if f.fingerprint in s.new else ""
    place = s.inline.get(f.fingerprint) or s.held.get(f.fingerprint) or ""
    title = markdown_inline(f.title, 300) or "Finding"
    link = _link(s, f.path, f.start_line, f.end_line)
    head = f"- {new}{ICONS.get(f.severity, '')} **{title}** · {link} · {f.category}"
    if place:
        head += f" · _{markdown_inline(place, 200)}_"
    lines = [head]
    body = markdown_text(f.body, FINDING_BODY_LIMIT).strip()
    if body:
        lines.append("  <details><summary>Details</summary>")
        lines.append("")
        lines.extend(f"  {line}" if line else "" for line in blockquote(body).split("\n"))
        if f.suggestion:
            lines.append("")
            lines.append("  **Suggestion:** " + " ".join(markdown_text(f.suggestion, 1000).split()))
        lines.append("  </details>")
    return lines


def _counts(findings: Sequence[Finding]) -> str:
    counts = {sev: 0 for sev in reversed(SEVERITIES)}
    for f in findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    return ", ".join(f"{n} {sev}" for sev, n in counts.items() if n)


def render(s: Summary, state_marker: str, limit: int = BODY_LIMIT) -> str:
    """The comment body: visible Markdown, then the markers (always kept whole)."""
    markers = f"\n\n{SUMMARY_MARKER}\n{state_marker}\n"
    visible = render_visible(s, limit - len(markers))
    return visible + markers


def render_visible(s: Summary, limit: int = BODY_LIMIT) -> str:
    """The Markdown a reader sees (also the job's step summary), within ``limit`` characters."""
    r = s.result
    in_diff = [f for f in s.open if f.in_diff is not False]
    outside = [f for f in s.open if f.in_diff is False]
    new_count = sum(1 for f in s.open if f.fingerprint in s.new)
    fixed_now = [t for t in s.fixed if t.fixed_in == s.head_sha]
    head = [
        "## wholerepo review",
        "",
        f"**{len(s.open)} open finding{'s' if len(s.open) != 1 else ''}**"
        + (f" ({_counts(s.open)})" if s.open else "")
        + f" at {_commit(s, s.head_sha)} · {new_count} new · {len(fixed_now)} fixed by this push"
        + f" · {s.mode}",
    ]
    if r.partial:
        head += [
            "",
            f"> [!WARNING]\n> Partial result: {markdown_inline(r.partial_reason or 'cut off', 300)}.",
        ]
    summary_text = markdown_text(r.summary, 4_000).strip()
    if summary_text:
        head += ["", blockquote(summary_text)]
    tail = _tail(s)
    budget = limit - len("\n".join(head)) - len(tail) - 200
    body: list[str] = []
    shown = 0
    total = len(in_diff) + len(outside)
    for title, group in (("Findings in this pull request's changes", in_diff), ("Outside the diff", outside)):
        if not group:
            continue
        section = ["", f"### {title} ({len(group)})"]
        if title == "Outside the diff":
            section.append(
                "_The whole repository was reviewed: these lines are not changed by this pull request, so"
                " they get no inline comment._"
            )
        for severity in reversed(SEVERITIES):
            items = [f for f in group if f.severity == severity]
            if not items:
                continue
            section.append("")
            section.append(f"**{severity.capitalize()}**")
            section.append("")
            for f in items:
                lines = _finding_lines(s, f)
                cost = sum(len(line) + 1 for line in lines)
                if cost + sum(len(x) + 1 for x in section) + sum(len(x) + 1 for x in body) > budget:
                    continue
                section.extend(lines)
                shown += 1
        body.extend(section)
    if shown < total:
        body += ["", f"_{total - shown} more findings did not fit in this comment: see the job's report._"]
    if not s.open:
        body += ["", "No open findings."]
    text = "\n".join([*head, *body]) + "\n" + tail
    return text if len(text) <= limit else text[: limit - 40].rsplit("\n", 1)[0] + "\n\n_(clipped)_\n"


def _tail(s: Summary) -> str:
    r = s.result
    lines: list[str] = []
    if s.fixed:
        lines += ["", f"### Fixed ({len(s.fixed)})", ""]
        for t in s.fixed[:50]:
            lines.append(
                f"- ✅ ~~{markdown_inline(t.title, 200)}~~ · {code_span(t.path, 300)}"
                f" · fixed in {_commit(s, t.fixed_in)}"
            )
    if s.dismissed:
        lines += ["", f"### Dismissed ({len(s.dismissed)}), not posted again", ""]
        for t in s.dismissed[:50]:
            lines.append(
                f"- {markdown_inline(t.title, 200)} · {code_span(t.path, 300)}"
                f" · {markdown_inline(t.dismissed, 100)}"
            )
    lines += _not_sent(s)
    if r.warnings or s.notes:
        lines += ["", "### Notes", ""]
        lines += [f"- {markdown_inline(w, 500)}" for w in [*s.notes, *r.warnings][:20]]
    lines += ["", "### Usage", "", _usage(r)]
    return "\n".join(lines)


def _not_sent(s: Summary) -> list[str]:
    r = s.result
    if not r.not_sent and not s.diff_files_not_sent:
        return []
    reasons: dict[str, int] = {}
    for n in r.not_sent:
        reasons[n.reason] = reasons.get(n.reason, 0) + 1
    lines = ["", "### Not sent to the model", ""]
    counts = ", ".join(
        f"{reason} {n}" for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    lines.append(f"{len(r.not_sent)} of the repository's files were not sent ({counts}).")
    if s.diff_files_not_sent:
        named = ", ".join(code_span(p, 300) for p in s.diff_files_not_sent[:NOT_SENT_NAMED])
        more = len(s.diff_files_not_sent) - NOT_SENT_NAMED
        lines.append("")
        lines.append(
            f"**Changed by this pull request but not reviewed:** {named}"
            + (f" and {more} more" if more > 0 else "")
        )
    dropped = [n.path for n in r.not_sent if n.reason == "over-budget"]
    if dropped:
        named = ", ".join(code_span(p, 300) for p in dropped[:NOT_SENT_NAMED])
        more = len(dropped) - NOT_SENT_NAMED
        lines.append("")
        lines.append(f"Did not fit the context window: {named}" + (f" and {more} more" if more > 0 else ""))
    return lines


def _usage(r: ReviewResult) -> str:
    parts = [
        f"model {code_span(r.model, 200)}",
        f"{r.prompt_tokens:,} prompt tokens (exact, {code_span(r.tokenizer, 50)})",
    ]
    u = r.usage
    if u is not None:
        if u.cache_hit_tokens is not None:
            parts.append(f"prefix-cache hits {u.cache_hit_tokens:,} tokens")
        if u.completion_tokens is not None:
            parts.append(f"{u.completion_tokens:,} output tokens")
    if r.cost_usd is not None and math.isfinite(r.cost_usd):
        parts.append(f"cost ${r.cost_usd:.4f}")
    parts.append(f"{r.files_reviewed:,} files reviewed")
    parts.append(f"wholerepo {code_span(r.tool_version, 40)}")
    return " · ".join(parts)
