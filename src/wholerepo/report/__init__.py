"""Reports of a review: Markdown, SARIF 2.1.0 and JSON. Pure functions of a ReviewResult."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..findings import SEVERITIES, Finding, Unverified, finding_sort_key, severity_rank


@dataclass(frozen=True)
class Usage:
    """Token usage as the endpoint reported it (any figure may be missing)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_hit_tokens: int | None = None
    cache_miss_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True)
class ReviewResult:
    """Everything a report shows about one review."""

    summary: str
    verified: tuple[Finding, ...]
    unverified: tuple[Unverified, ...]  # rejected
    model: str
    endpoint: str
    tokenizer: str
    prompt_tokens: int
    tool_version: str
    endpoint_prompt_tokens: int | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    partial: bool = False
    partial_reason: str | None = None
    base_ref: str | None = None
    files_reviewed: int = 0
    prompt_name: str = "review"
    warnings: tuple[str, ...] = ()
    unanchored: tuple[Unverified, ...] = ()  # may be true, place not confirmed: never shown as verified

    @property
    def merged(self) -> int:
        """How many findings were merged into others as duplicates."""
        return sum(len(f.merged_titles) for f in self.verified)


FORMAT_FILENAMES = {"markdown": "review.md", "sarif": "review.sarif", "json": "review.json"}
FORMATS = tuple(FORMAT_FILENAMES)


def render(fmt: str, result: ReviewResult) -> str:
    """The report of ``result`` in format ``fmt`` ("markdown", "sarif" or "json"); deterministic."""
    return _renderer(fmt)(result)


def _renderer(fmt: str) -> Callable[[ReviewResult], str]:
    # Imported here: the submodules import this module's types.
    if fmt == "markdown":
        from .markdown import render_markdown

        return render_markdown
    if fmt == "sarif":
        from .sarif import render_sarif

        return render_sarif
    if fmt == "json":
        from .json_report import render_json

        return render_json
    raise ValueError(f"unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")


def sorted_findings(findings: tuple[Finding, ...]) -> list[Finding]:
    """Severity descending, then path and line."""
    return sorted(findings, key=finding_sort_key)


def unverified_sort_key(u: Unverified) -> tuple[int, str, int, str, str, str]:
    return (-severity_rank(u.severity), u.path or "", u.start_line or 0, u.reason, u.title, u.body)


def sorted_unverified(items: tuple[Unverified, ...]) -> list[Unverified]:
    return sorted(items, key=unverified_sort_key)


def severity_counts(findings: tuple[Finding, ...]) -> dict[str, int]:
    """Verified findings per severity, every severity present, most severe first."""
    counts = {s: 0 for s in reversed(SEVERITIES)}
    for f in findings:
        if f.severity in counts:
            counts[f.severity] += 1
    return counts


__all__ = [
    "FORMATS",
    "FORMAT_FILENAMES",
    "ReviewResult",
    "Usage",
    "render",
    "severity_counts",
    "sorted_findings",
    "sorted_unverified",
]
