"""The evaluation report: a Markdown table per mode and per case, the same as JSON, and a chart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..sanitize import one_line
from .corpus import Case, Corpus
from .score import CaseScore, ModeSummary, Review, by_case

CHART_NEEDS = "--chart needs matplotlib"
CHART_FIX = "pip install 'wholerepo[chart]', or leave out --chart"


@dataclass(frozen=True)
class Report:
    corpus: Corpus
    cases: tuple[Case, ...]
    modes: tuple[str, ...]
    reviews: tuple[Review, ...]
    summaries: Mapping[str, ModeSummary]
    scores: tuple[CaseScore, ...]
    endpoint: str
    model: str
    window: int
    tokenizer: str
    repeat: int
    tolerance: int
    tool_version: str
    judge: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> tuple[Review, ...]:
        return tuple(r for r in self.reviews if r.error is not None)


def as_json(report: Report) -> dict[str, Any]:
    scores = {(s.case, s.mode, s.repeat): s for s in report.scores}
    cases = []
    for case in report.cases:
        runs = []
        for review in report.reviews:
            if review.case != case.id:
                continue
            score = scores.get((case.id, review.mode, review.repeat))
            hits = set(score.hit_findings) if score else set()
            runs.append(
                {
                    "mode": review.mode,
                    "repeat": review.repeat,
                    "status": "failed" if review.error else "done",
                    "error": review.error,
                    "error_repeats": review.lasting is not None,  # the same options fail the same way
                    "reply_error": review.reply_error,
                    "found": list(score.found_issues) if score else [],
                    "findings": [{**f.as_dict(), "hit": i in hits} for i, f in enumerate(review.findings)],
                    "unanchored": review.unanchored,
                    "unverified": review.unverified,
                    "judged": [{"finding": i, "expected": j, "same_issue": v} for i, j, v in review.judged],
                    "prompt_tokens": review.prompt_tokens,
                    "endpoint_prompt_tokens": review.endpoint_prompt_tokens,
                    "completion_tokens": review.completion_tokens,
                    "cost_usd": review.cost_usd,
                    "latency_s": review.latency_s,
                    "files_sent": review.files_sent,
                    "files_left_out": review.files_left_out,
                    "from_checkpoint": review.cached,
                    "reply_of": review.reused,  # the mode whose byte-identical request was sent
                    "notes": list(review.notes),
                }
            )
        cases.append({**case.as_dict(), "reviews": runs})
    planted = [c for c in report.cases if not c.clean]
    return {
        "generator": "wholerepo eval",
        "tool_version": report.tool_version,
        "corpus": {
            "name": report.corpus.name,
            "file": str(report.corpus.file),
            "cases": len(report.cases),
            "planted": len(planted),
            "clean": len(report.cases) - len(planted),
            "cross_file": sum(1 for c in planted if c.cross_file),
        },
        "endpoint": report.endpoint,
        "model": report.model,
        "context_window": report.window,
        "tokenizer": report.tokenizer,
        "modes": list(report.modes),
        "repeat": report.repeat,
        "tolerance": report.tolerance,
        "judge": report.judge,
        "summary": {
            mode: report.summaries[mode].as_dict() for mode in report.modes if mode in report.summaries
        },
        "cases": cases,
        "notes": list(report.notes),
    }


# -- Markdown -----------------------------------------------------------------------------------


def _rate(summary: ModeSummary, key: str) -> str:
    spread = summary.spread.get(key)
    if spread is None:
        return "–"
    text = f"{spread['mean']:.2f}"
    if len(summary.repeats) > 1:
        text += f" ±{spread['stdev']:.2f}"
    return text


def _number(value: Any, form: str = "{:,}") -> str:
    return "–" if value is None else form.format(value)


def _cell(text: str) -> str:
    return one_line(text, 200).replace("|", "\\|")


def as_markdown(report: Report) -> str:
    planted = [c for c in report.cases if not c.clean]
    cross = sum(1 for c in planted if c.cross_file)
    lines = [
        f"# wholerepo eval: {_cell(report.corpus.name)}",
        "",
        f"{len(report.cases)} cases ({len(planted)} with planted or known issues, {cross} of them cross-file;"
        f" {len(report.cases) - len(planted)} clean), model `{_cell(report.model)}`"
        f" at {_cell(report.endpoint)},"
        f" {report.window:,}-token window, {report.tokenizer} tokens; a finding matches an expected issue"
        f" on the same path within {report.tolerance} lines"
        + (f"; {report.repeat} repeats (mean ±standard deviation)" if report.repeat > 1 else "")
        + ".",
        "",
        "| mode | recall | precision | F1 | false alarms / clean case | recall cross-file | recall local"
        " | verified share | prompt tokens | output tokens | cost | mean latency | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in report.modes:
        s = report.summaries.get(mode)
        if s is None:
            lines.append(f"| {mode} | – | – | – | – | – | – | – | – | – | – | – | all |")
            continue
        cost = s.value("cost_usd")
        latency = s.value("latency_s_mean")
        lines.append(
            "| "
            + " | ".join(
                [
                    mode,
                    _rate(s, "recall"),
                    _rate(s, "precision"),
                    _rate(s, "f1"),
                    _rate(s, "false_alarms_per_clean_case"),
                    _rate(s, "recall_cross_file"),
                    _rate(s, "recall_local"),
                    _rate(s, "verified_share"),
                    _number(s.value("prompt_tokens")),
                    _number(s.value("completion_tokens")),
                    "unknown" if cost is None else f"${cost:.4f}",
                    _number(latency, "{:.1f} s"),
                    str(s.value("failed") or 0),
                ]
            )
            + " |"
        )
    if any("judge_recall" in s.spread for s in report.summaries.values()):
        lines += ["", f"Judged by `{_cell(report.judge or '')}` (a place match the judge confirmed):", ""]
        lines += ["| mode | recall (judged) | precision (judged) |", "|---|---|---|"]
        for mode in report.modes:
            s = report.summaries.get(mode)
            if s is not None:
                lines.append(f"| {mode} | {_rate(s, 'judge_recall')} | {_rate(s, 'judge_precision')} |")
    lines += _case_table(report)
    lines += _notes(report)
    return "\n".join(lines) + "\n"


def _case_table(report: Report) -> list[str]:
    grouped = by_case(report.scores)
    failures = {(r.case, r.mode) for r in report.reviews if r.error is not None}
    lines = [
        "",
        "## Cases",
        "",
        "Per mode: expected issues found / expected, and verified findings that match nothing"
        + (" (summed over the repeats)" if report.repeat > 1 else "")
        + ".",
        "",
        "| case | kind | cross-file | expected | " + " | ".join(report.modes) + " |",
        "|---|---|---|---|" + "---|" * len(report.modes),
    ]
    for case in report.cases:
        cells = []
        for mode in report.modes:
            runs = grouped.get((case.id, mode), [])
            if not runs:
                cells.append("failed" if (case.id, mode) in failures else "–")
                continue
            found = sum(s.found for s in runs)
            expected = sum(s.expected for s in runs)
            false = sum(s.false for s in runs)
            text = f"{found}/{expected}" if expected else "clean"
            text += f", {false} false"
            if (case.id, mode) in failures:
                text += " (some failed)"
            cells.append(text)
        kind = _cell(case.kind or ("clean" if case.clean else "–"))
        cross = "yes" if case.cross_file else ("no" if case.cross_file is False else "–")
        lines.append(
            f"| {_cell(case.id)} | {kind} | {cross} | {len(case.expected)} | " + " | ".join(cells) + " |"
        )
    return lines


def _notes(report: Report) -> list[str]:
    notes = list(dict.fromkeys([*report.notes, *(n for r in report.reviews for n in r.notes)]))
    for mode in report.modes:
        of = {r.case for r in report.reviews if r.mode == mode}
        same = {r.case: r.reused for r in report.reviews if r.mode == mode and r.reused}
        if same:
            other = ", ".join(sorted(set(same.values())))
            notes.append(
                f"{mode}: {len(same)} of {len(of)} cases fitted the window the same way as {other}, the"
                f" same request byte for byte; {other}'s reply is reused for {mode}, not sent again (its"
                " figures are repeated in both rows)"
            )
    for mode in report.modes:
        runs = [r for r in report.reviews if r.mode == mode and r.error is None and r.files_left_out]
        if runs:
            sent = sum(r.files_sent for r in runs) / len(runs)
            left = sum(r.files_left_out for r in runs) / len(runs)
            notes.append(
                f"{mode}: the {report.window:,}-token window held {sent:.1f} files on average; {left:.1f}"
                f" did not fit and were not sent ({len(runs)} of the reviews)"
            )
    if not any(r.completion_tokens is not None for r in report.reviews if r.error is None):
        notes.append("the endpoint reported no token usage: output tokens and cost are unknown")
    unusable = [r for r in report.reviews if r.reply_error]
    if unusable:
        notes.append(
            f"{len(unusable)} replies held no usable findings and count as reviews that found nothing"
            f" (first: {unusable[0].case} {unusable[0].mode}: {unusable[0].reply_error})"
        )
    lasting: dict[str, list[Review]] = {}
    for r in report.failed:
        if r.lasting is not None:
            lasting.setdefault(r.lasting, []).append(r)
        else:
            notes.append(
                f"failed, not scored, retried on the next run: {r.case} {r.mode} #{r.repeat}: {r.error}"
            )
    for cause, runs in lasting.items():  # said once: every run with these options repeats it
        first = runs[0]
        notes.append(
            f"{len(runs)} reviews failed, not scored, and fail again on every run with these options:"
            f" {cause}; the first, {first.case} {first.mode}: {first.error}"
        )
    if not notes:
        return []
    return ["", "## Notes", "", *(f"- {one_line(n, 600)}" for n in notes)]


# -- chart --------------------------------------------------------------------------------------


def check_chart() -> None:
    """Raise the usage error ``--chart`` gives without matplotlib: asked before any review is
    sent, so a run does not pay for every review and then fail on the last step."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(CHART_NEEDS, CHART_FIX)


def write_chart(report: Report, target: Path) -> None:
    """Precision, recall and F1 per mode as a bar chart (PNG); needs the ``chart`` extra."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise UsageError(CHART_NEEDS, CHART_FIX) from exc
    modes = [m for m in report.modes if m in report.summaries]
    keys = ("recall", "precision", "f1")
    figure, axes = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    width = 0.8 / len(keys)
    for n, key in enumerate(keys):
        values = [report.summaries[m].spread.get(key, {}).get("mean", 0.0) for m in modes]
        errors = [report.summaries[m].spread.get(key, {}).get("stdev", 0.0) for m in modes]
        positions = [i + (n - 1) * width for i in range(len(modes))]
        axes.bar(positions, values, width, yerr=errors if report.repeat > 1 else None, label=key, capsize=3)
    axes.set_xticks(range(len(modes)), modes)
    axes.set_ylim(0, 1.18)
    axes.set_ylabel("score")
    axes.set_title(f"{report.corpus.name}: {report.model}", fontsize=10)
    axes.legend(loc="upper center", fontsize=8, ncol=3, frameon=False)
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png")
    plt.close(figure)


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        import json

        return json.dumps(as_json(report), indent=2, ensure_ascii=False) + "\n"
    return as_markdown(report)


__all__ = ["Report", "as_json", "as_markdown", "check_chart", "render", "write_chart"]
