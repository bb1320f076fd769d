"""The Markdown report, from the Jinja2 template shipped in report/templates/review.md.j2.

Autoescape is off (this is Markdown, not HTML); instead every string that came from the model
is passed through wholerepo.sanitize here, before the template sees it.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jinja2

from ..languages import language_of
from ..reviewer.findings import SEVERITIES, Finding, Unverified
from ..reviewer.verify import UNANCHORED_REASONS
from ..sanitize import (
    backtick_fence,
    blockquote,
    code_span,
    code_text,
    markdown_inline,
    markdown_text,
    one_line,
    safe_url,
)
from . import ReviewResult, Usage, severity_counts, sorted_findings, sorted_unverified

TEMPLATE = "review.md.j2"
BODY_LIMIT = 8_000
QUOTE_LIMIT = 4_000

REASONS = {
    "unknown-path": "the file is not part of the packed repository",
    "ambiguous-path": "the path matches more than one packed file",
    "unsafe-path": "the path is absolute or leaves the repository; it was not opened",
    "missing-path": "no file was named",
    "line-out-of-range": "the cited lines do not exist in the file",
    "invalid-line": "the line numbers are not valid (whole numbers from 1, end not before start)",
    "missing-line": "no line was given and no quote to find one",
    "quote-not-found": "the quoted code does not occur in the file",
    "invalid-severity": "the severity is not one of critical, high, medium, low, info",
    "invalid-category": "the category is not one of the known categories",
    "missing-title": "the finding has neither a title nor a body",
    "invalid-finding": "the item is not a finding object",
    "elided": "the lines were elided from a compressed file, so the model could not have read them",
    **UNANCHORED_REASONS,
}
# How each verified finding's lines were decided, as the report says it.
LOCATION_TEXT = {
    "quote-exact": "placed by its quote, found verbatim",
    "quote-normalised": "placed by its quote, found after normalising",
    "quote-near": "placed by a near match of its quote at the cited lines",
    "cited-lines": "placed by the cited lines only (no quote)",
}


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("wholerepo.report", "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_markdown(result: ReviewResult) -> str:
    """The Markdown report of ``result``."""
    text = _environment().get_template(TEMPLATE).render(**_context(result))
    return text.rstrip("\n") + "\n"


def _context(result: ReviewResult) -> dict[str, Any]:
    counts = severity_counts(result.verified)
    findings = sorted_findings(result.verified)
    groups = [
        {
            "label": severity.capitalize(),
            "count": counts[severity],
            "findings": [_finding_view(f) for f in findings if f.severity == severity],
        }
        for severity in reversed(SEVERITIES)
        if counts[severity]
    ]
    summary = markdown_text(result.summary, 20_000).strip()
    return {
        "command": "audit" if result.command == "audit" else "review",
        "partial": result.partial,
        "partial_reason": markdown_inline(result.partial_reason or "the reply was cut off", 500),
        "summary": blockquote(summary) if summary else "",
        "counts": [(s.capitalize(), n) for s, n in counts.items()],
        "total": len(findings),
        "groups": groups,
        "unverified": [_unverified_view(u) for u in sorted_unverified(result.unverified)],
        "unanchored": [_unverified_view(u) for u in sorted_unverified(result.unanchored)],
        "merged": result.merged,
        "warnings": [markdown_inline(w, 1000) for w in result.warnings],
        "base_ref": code_span(result.base_ref, 200) if result.base_ref else "",
        "not_sent": _not_sent_view(result),
        "footer": _footer(result),
    }


NOT_SENT_SHOWN = 20


def _not_sent_view(result: ReviewResult) -> dict[str, Any] | None:
    """What the model did not see: counts by reason, and the files that did not fit by name."""
    if not result.not_sent:
        return None
    reasons: dict[str, int] = {}
    for n in result.not_sent:
        reasons[n.reason] = reasons.get(n.reason, 0) + 1
    dropped = [n.path for n in result.not_sent if n.reason == "over-budget"]
    return {
        "total": len(result.not_sent),
        "reasons": ", ".join(
            f"{reason} {n}" for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        "dropped": [code_span(p, 400) for p in dropped[:NOT_SENT_SHOWN]],
        "more": max(0, len(dropped) - NOT_SENT_SHOWN),
    }


def _location(path: str | None, start: int | None, end: int | None) -> str:
    if not path:
        return "(no file)"
    if start is None:
        return code_span(path, 400)
    where = f"{path}:{start}" if end is None or end <= start else f"{path}:{start}-{end}"
    return code_span(where, 400)


def _finding_view(f: Finding) -> dict[str, Any]:
    meta = [f.category, LOCATION_TEXT.get(f.location, "placed by " + one_line(f.location, 40))]
    if f.moved_from is not None:
        meta.append(f"moved from line {f.moved_from} to where the quoted code is")
    if f.merged_titles:
        count = len(f.merged_titles)
        meta.append(f"merged with {count} duplicate{'s' if count > 1 else ''}")
    if f.in_diff is not None:
        meta.append("in the diff" if f.in_diff else "outside the diff")
    quote = code_text(f.quote, QUOTE_LIMIT).strip("\n") if f.quote else ""
    body = markdown_text(f.body, BODY_LIMIT).strip()
    suggestion = markdown_text(f.suggestion, BODY_LIMIT).strip() if f.suggestion else ""
    return {
        "title": markdown_inline(f.title, 300) or "Finding",
        "location": _location(f.path, f.start_line, f.end_line),
        "meta": " · ".join(meta),
        "body": blockquote(body) if body else "",
        "quote": quote,
        "fence": backtick_fence(quote),
        "language": language_of(f.path),
        "suggestion": blockquote(suggestion) if suggestion else "",
        "fingerprint": f.fingerprint,
        # The duplicates' other titles, each once (the count is in meta).
        "also": list(
            dict.fromkeys(markdown_inline(t, 300) or "(untitled)" for t in f.merged_titles if t != f.title)
        ),
    }


def _unverified_view(u: Unverified) -> dict[str, Any]:
    reason = one_line(u.reason, 100)
    return {
        "title": markdown_inline(u.title, 300) or "(untitled)",
        "severity": u.severity,
        "category": u.category,
        "location": _location(u.path, u.start_line, u.end_line),
        "reason": code_span(reason, 100),
        "explanation": REASONS.get(reason, "it could not be checked against the code"),
    }


def _footer(result: ReviewResult) -> str:
    parts = [f"Model {code_span(result.model, 200)} at {code_span(safe_url(result.endpoint), 300)}"]
    prompt = f"prompt {result.prompt_tokens:,} tokens ({code_span(result.tokenizer, 100)})"
    if result.endpoint_prompt_tokens is not None:
        prompt += f", endpoint counted {result.endpoint_prompt_tokens:,}"
    parts.append(prompt)
    if result.files_reviewed:
        parts.append(f"{result.files_reviewed:,} files")
    usage = _usage_text(result.usage)
    if usage:
        parts.append(usage)
    if result.cost_usd is not None and math.isfinite(result.cost_usd):
        parts.append(f"cost ${result.cost_usd:,.4f}")
    parts.append(f"wholerepo {code_span(result.tool_version, 50)}")
    return " · ".join(parts)


def _usage_text(usage: Usage | None) -> str:
    if usage is None:
        return ""
    parts = []
    if usage.completion_tokens is not None:
        text = f"completion {usage.completion_tokens:,} tokens"
        if usage.reasoning_tokens:
            text += f" ({usage.reasoning_tokens:,} reasoning)"
        parts.append(text)
    if usage.cache_hit_tokens is not None or usage.cache_miss_tokens is not None:
        hit = f"{usage.cache_hit_tokens:,}" if usage.cache_hit_tokens is not None else "?"
        miss = f"{usage.cache_miss_tokens:,}" if usage.cache_miss_tokens is not None else "?"
        parts.append(f"cache hit {hit} / miss {miss}")
    return ", ".join(parts)
