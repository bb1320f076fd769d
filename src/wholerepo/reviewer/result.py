"""The single currency of a review: every report, publisher and scorer reads a ReviewResult."""

from __future__ import annotations

from dataclasses import dataclass

from ..llm.base import Usage
from .findings import Finding, Unverified

__all__ = ["NotSent", "ReviewResult", "Usage"]


@dataclass(frozen=True)
class NotSent:
    """A file the repository lists that the model did not see, and why."""

    path: str
    reason: str


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
    not_sent: tuple[NotSent, ...] = ()
    unanchored: tuple[Unverified, ...] = ()  # may be true, place not confirmed: never shown as verified
    command: str = "review"  # "audit" for an audit's merged result: the Markdown report's title

    @property
    def merged(self) -> int:
        """How many findings were merged into others as duplicates."""
        return sum(len(f.merged_titles) for f in self.verified)
