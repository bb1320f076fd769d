"""Inline review comments: which findings get one, where, and the suggestion they may carry.

A finding gets an inline comment only when its whole range lies inside one hunk of the pull
request's diff (RIGHT side), it is at least ``min_severity``, it was never posted or dismissed
before, and the cap leaves room; every other finding stays in the summary with the reason.
A ```suggestion block is offered only when the model's ``replacement`` applies as it stands:
the lines exist at the head, the replacement changes them, and it is plain code (no control
characters, nothing that could close a fence or forge a marker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..reviewer.findings import Finding, severity_at_least, severity_rank
from ..sanitize import backtick_fence, clean_text, code_span
from .hunks import Anchor, DiffMap
from .state import finding_marker
from .text import markdown_inline, markdown_text

ICONS = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵", "info": "⚪"}
BODY_LIMIT = 6_000
SUGGESTION_LIMIT = 8_000


@dataclass(frozen=True)
class Planned:
    """A finding that will get an inline comment."""

    finding: Finding
    anchor: Anchor
    suggestion: str | None

    def comment(self) -> dict[str, Any]:
        return {**self.anchor.comment_fields(), "body": comment_body(self.finding, self.suggestion)}


@dataclass(frozen=True)
class Held:
    """A finding kept to the summary, and why."""

    finding: Finding
    reason: str


def suggestion_for(f: Finding, head_lines: Sequence[str] | None) -> str | None:
    """The replacement text, when it applies to lines start..end of the head file as they are."""
    replacement = f.replacement
    if replacement is None or head_lines is None:
        return None
    if f.end_line > len(head_lines) or f.start_line < 1:
        return None
    if len(replacement) > SUGGESTION_LIMIT:
        return None
    text = replacement.replace("\r\n", "\n").removesuffix("\n")
    # Plain code only: what sanitising would change (control characters, markers) is refused
    # rather than altered, since a suggestion is applied by a click.
    if clean_text(text, SUGGESTION_LIMIT + 10) != text or "<!" in text:
        return None
    current = "\n".join(head_lines[f.start_line - 1 : f.end_line])
    if text == current:
        return None
    return text


def comment_body(f: Finding, suggestion: str | None) -> str:
    """An inline comment: severity, title, the explanation, the suggestion, the hidden marker."""
    lines = [
        f"{ICONS.get(f.severity, '')} **{f.severity.capitalize()}** · {f.category} · "
        f"**{markdown_inline(f.title, 300) or 'Finding'}**"
    ]
    body = markdown_text(f.body, BODY_LIMIT).strip()
    if body:
        lines += ["", body]
    if suggestion is not None:
        fence = backtick_fence(suggestion)
        lines += (
            ["", f"{fence}suggestion", suggestion, fence] if suggestion else ["", f"{fence}suggestion", fence]
        )
    elif f.suggestion:
        lines += ["", "**Suggestion:** " + markdown_text(f.suggestion, BODY_LIMIT).strip()]
    lines += [
        "",
        f"<sub>wholerepo · {code_span(f.fingerprint[:12], 40)}</sub>",
        finding_marker(f.fingerprint),
    ]
    return "\n".join(lines)


def select(
    candidates: Sequence[Finding],
    diff: DiffMap,
    head_files: Mapping[str, Sequence[str]],
    *,
    enabled: bool,
    cap: int,
    min_severity: str,
) -> tuple[list[Planned], list[Held]]:
    """Which new findings get inline comments (most severe first), and why the others do not."""
    planned: list[Planned] = []
    held: list[Held] = []
    ordered = sorted(candidates, key=lambda f: (-severity_rank(f.severity), f.path, f.start_line))
    for f in ordered:
        if not enabled:
            held.append(Held(f, "inline comments are off"))
            continue
        if not severity_at_least(f.severity, min_severity):
            held.append(Held(f, f"below the inline threshold ({min_severity})"))
            continue
        anchor, why = diff.anchor(f.path, f.start_line, f.end_line)
        if anchor is None:
            held.append(Held(f, why))
            continue
        if len(planned) >= cap:
            held.append(Held(f, f"over the cap of {cap} inline comments"))
            continue
        planned.append(Planned(f, anchor, suggestion_for(f, head_files.get(f.path))))
    return planned, held


def revalidate(
    planned: Sequence[Planned], diff: DiffMap, refused_paths: set[str]
) -> tuple[list[Planned], list[Held]]:
    """After a 422: keep the comments a fresh diff still accepts, off the paths GitHub named."""
    kept: list[Planned] = []
    dropped: list[Held] = []
    for p in planned:
        anchor, why = diff.anchor(p.finding.path, p.finding.start_line, p.finding.end_line)
        if p.finding.path in refused_paths:
            dropped.append(Held(p.finding, "GitHub refused a comment on this file"))
        elif anchor is None:
            dropped.append(Held(p.finding, why))
        else:
            kept.append(Planned(p.finding, anchor, p.suggestion))
    return kept, dropped
