"""Scoring: which findings hit which expected issues, and the figures per context mode.

A verified finding **matches** an expected issue when the paths are equal and the line ranges
overlap once each is widened by ``tolerance`` lines (default 3). A finding that matches any
expected issue is a **hit**; an expected issue that some finding matches is **found**. Per mode,
over every scored case (micro-averaged):

- recall = found / expected issues; precision = hits / verified findings (none: undefined);
  F1 from the two (0 when nothing was found);
- false alarms per clean case = verified findings on clean cases / clean cases;
- verified share = verified findings / all findings the replies held (verified, unanchored and
  unverified);
- recall on cross-file and on local cases apart, tokens, cost and latency;
- with ``--judge``, the same recall and precision counting only the matches the judge confirmed.

With ``--repeat N`` every figure is computed per repeat, and the summary gives the mean and the
spread (min, max, standard deviation) of each.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .corpus import Case, Expected

DEFAULT_TOLERANCE = 3
MODES = ("diff", "repo", "fit")


@dataclass(frozen=True)
class Found:
    """A verified finding, as scored (and kept in the checkpoint and the JSON report)."""

    path: str
    start_line: int
    end_line: int
    severity: str
    category: str
    title: str
    body: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "severity": self.severity,
            "category": self.category,
            "title": self.title,
            "body": self.body,
        }


@dataclass(frozen=True)
class Review:
    """One review of one case in one mode (one repeat): what was found and what it cost.

    ``error`` set: the review failed (the endpoint, a prompt that cannot fit): it is not scored
    and the next run tries it again. ``lasting``: the error comes back on every run with the same
    options (a prompt that does not fit, a usage error), so "run it again" is no advice; it holds
    the error's cause and fix without this case's figures, to group the reviews it failed.
    ``reply_error`` set: the endpoint answered but the reply held no usable findings: scored as a
    review that found nothing.
    """

    case: str
    mode: str
    repeat: int
    findings: tuple[Found, ...] = ()
    unanchored: int = 0
    unverified: int = 0
    prompt_tokens: int = 0  # exact, with the chosen tokenizer
    endpoint_prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    files_sent: int = 0  # whole files sent (none in diff mode)
    files_left_out: int = 0  # files that did not fit the window
    reply_error: str | None = None
    error: str | None = None
    lasting: str | None = None
    reused: str | None = None  # the mode whose reply this is: its request was byte-identical
    cached: bool = False
    judged: tuple[tuple[int, int, bool], ...] = ()  # (finding, expected issue, same issue?)
    notes: tuple[str, ...] = ()

    @property
    def scored(self) -> bool:
        return self.error is None


def matches(finding: Found, issue: Expected, tolerance: int = DEFAULT_TOLERANCE) -> bool:
    return (
        finding.path == issue.path
        and finding.start_line <= issue.end_line + tolerance
        and issue.start_line <= finding.end_line + tolerance
    )


def pairs(
    findings: Sequence[Found], expected: Sequence[Expected], tolerance: int = DEFAULT_TOLERANCE
) -> list[tuple[int, int]]:
    """Every (finding, expected issue) pair that matches by place."""
    return [
        (i, j) for i, f in enumerate(findings) for j, e in enumerate(expected) if matches(f, e, tolerance)
    ]


@dataclass(frozen=True)
class CaseScore:
    case: str
    mode: str
    repeat: int
    clean: bool
    cross_file: bool | None
    expected: int
    found: int
    findings: int
    hits: int
    given: int
    judged_found: int | None = None
    judged_hits: int | None = None
    found_issues: tuple[int, ...] = ()  # indexes of the expected issues found
    hit_findings: tuple[int, ...] = ()  # indexes of the findings that hit

    @property
    def false(self) -> int:
        return self.findings - self.hits


def score_case(case: Case, review: Review, tolerance: int = DEFAULT_TOLERANCE) -> CaseScore:
    matched = pairs(review.findings, case.expected, tolerance)
    found = sorted({j for _, j in matched})
    hits = sorted({i for i, _ in matched})
    judged_found = judged_hits = None
    if review.judged:
        yes = {(i, j) for i, j, same in review.judged if same}
        confirmed = [(i, j) for i, j in matched if (i, j) in yes]
        judged_found = len({j for _, j in confirmed})
        judged_hits = len({i for i, _ in confirmed})
    return CaseScore(
        case=case.id,
        mode=review.mode,
        repeat=review.repeat,
        clean=case.clean,
        cross_file=case.cross_file,
        expected=len(case.expected),
        found=len(found),
        findings=len(review.findings),
        hits=len(hits),
        given=len(review.findings) + review.unanchored + review.unverified,
        judged_found=judged_found,
        judged_hits=judged_hits,
        found_issues=tuple(found),
        hit_findings=tuple(hits),
    )


def _known_sum(values: Iterable[int | None]) -> int | None:
    """The sum of the figures the endpoint reported; None when it reported none."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def f1(precision: float | None, recall: float | None) -> float | None:
    if recall is None:
        return None
    p = precision or 0.0
    return 0.0 if p + recall == 0 else 2 * p * recall / (p + recall)


def figures(scores: Sequence[CaseScore], reviews: Sequence[Review]) -> dict[str, Any]:
    """The figures of one mode in one repeat."""
    expected = sum(s.expected for s in scores)
    found = sum(s.found for s in scores)
    findings = sum(s.findings for s in scores)
    hits = sum(s.hits for s in scores)
    given = sum(s.given for s in scores)
    clean = [s for s in scores if s.clean]
    cross = [s for s in scores if s.cross_file]
    local = [s for s in scores if s.cross_file is False]
    precision = _ratio(hits, findings)
    recall = _ratio(found, expected)
    done = [r for r in reviews if r.scored]
    costs = [r.cost_usd for r in done]
    latencies = [r.latency_s for r in done if r.latency_s is not None]
    result: dict[str, Any] = {
        "cases": len(scores),
        "planted": len(scores) - len(clean),
        "clean": len(clean),
        "expected": expected,
        "found": found,
        "findings": findings,
        "hits": hits,
        "recall": recall,
        "precision": precision,
        "f1": f1(precision, recall),
        "false_alarms": sum(s.findings for s in clean),
        "false_alarms_per_clean_case": _ratio(sum(s.findings for s in clean), len(clean)),
        "recall_cross_file": _ratio(sum(s.found for s in cross), sum(s.expected for s in cross)),
        "recall_local": _ratio(sum(s.found for s in local), sum(s.expected for s in local)),
        "verified_share": _ratio(findings, given),
        "unverified": sum(r.unverified + r.unanchored for r in done),
        "unusable_replies": sum(1 for r in done if r.reply_error),
        "prompt_tokens": sum(r.prompt_tokens for r in done),
        "completion_tokens": _known_sum(r.completion_tokens for r in done),
        "cost_usd": sum(c for c in costs if c is not None) if costs and None not in costs else None,
        "latency_s_mean": statistics.fmean(latencies) if latencies else None,
        "latency_s_max": max(latencies) if latencies else None,
        "failed": sum(1 for r in reviews if not r.scored),
    }
    if any(s.judged_found is not None for s in scores):
        judged_found = sum(s.judged_found or 0 for s in scores)
        judged_hits = sum(s.judged_hits or 0 for s in scores)
        result["judge_recall"] = _ratio(judged_found, expected)
        result["judge_precision"] = _ratio(judged_hits, findings)
    return result


SPREAD_KEYS = (
    "recall",
    "precision",
    "f1",
    "false_alarms_per_clean_case",
    "recall_cross_file",
    "recall_local",
    "verified_share",
    "latency_s_mean",
    "judge_recall",
    "judge_precision",
)


@dataclass(frozen=True)
class ModeSummary:
    mode: str
    repeats: tuple[dict[str, Any], ...]  # figures() per repeat
    spread: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> mean/min/max/stdev

    def value(self, key: str) -> Any:
        """A rate: its mean over the repeats; a count: its total over the repeats (None if unknown)."""
        if key in SPREAD_KEYS:
            return self.spread[key]["mean"] if key in self.spread else None
        values = [r.get(key) for r in self.repeats]
        if not values or any(v is None for v in values):
            return None
        return sum(values)

    def as_dict(self) -> dict[str, Any]:
        totals = {
            key: self.value(key)
            for key in (
                "expected",
                "found",
                "findings",
                "hits",
                "false_alarms",
                "unverified",
                "unusable_replies",
                "prompt_tokens",
                "completion_tokens",
                "cost_usd",
                "failed",
            )
        }
        totals["reviews"] = self.value("cases")
        return {
            "mode": self.mode,
            **{key: self.value(key) for key in SPREAD_KEYS},
            "totals": totals,
            "spread": self.spread if len(self.repeats) > 1 else {},
            "repeats": list(self.repeats),
        }


def summarize(
    cases: Sequence[Case], reviews: Iterable[Review], tolerance: int = DEFAULT_TOLERANCE
) -> tuple[dict[str, ModeSummary], list[CaseScore]]:
    """Per mode, the figures of each repeat and their spread; and every case's score."""
    by_id = {c.id: c for c in cases}
    grouped: dict[tuple[str, int], list[Review]] = {}
    for review in reviews:
        if review.case in by_id:
            grouped.setdefault((review.mode, review.repeat), []).append(review)
    all_scores: list[CaseScore] = []
    per_mode: dict[str, list[dict[str, Any]]] = {}
    for (mode, _repeat), group in sorted(grouped.items(), key=lambda kv: (_mode_rank(kv[0][0]), kv[0][1])):
        scores = [score_case(by_id[r.case], r, tolerance) for r in group if r.scored]
        all_scores.extend(scores)
        per_mode.setdefault(mode, []).append(figures(scores, group))
    summaries = {}
    for mode, repeats in per_mode.items():
        spread = {}
        for key in SPREAD_KEYS:
            values = [r[key] for r in repeats if r.get(key) is not None]
            if values:
                spread[key] = {
                    "mean": statistics.fmean(values),
                    "min": min(values),
                    "max": max(values),
                    "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
                }
        summaries[mode] = ModeSummary(mode, tuple(repeats), spread)
    return summaries, all_scores


def _mode_rank(mode: str) -> int:
    return MODES.index(mode) if mode in MODES else len(MODES)


def by_case(scores: Iterable[CaseScore]) -> Mapping[tuple[str, str], list[CaseScore]]:
    """Scores grouped by (case, mode), repeats in order."""
    grouped: dict[tuple[str, str], list[CaseScore]] = {}
    for s in sorted(scores, key=lambda s: s.repeat):
        grouped.setdefault((s.case, s.mode), []).append(s)
    return grouped
