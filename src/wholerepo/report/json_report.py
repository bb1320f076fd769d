"""The JSON report: every verified, unanchored and unverified finding, usage, cost and token counts.

Named json_report so that it never shadows the standard library's json module.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from ..reviewer.findings import Finding, Unverified
from ..sanitize import clean_text, one_line, safe_url
from . import ReviewResult, severity_counts, sorted_findings, sorted_unverified

SCHEMA_VERSION = 1


def render_json(result: ReviewResult) -> str:
    """The JSON report of ``result`` (sorted keys, UTF-8 text, trailing newline)."""
    return json.dumps(json_report(result), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def json_report(result: ReviewResult) -> dict[str, Any]:
    return {
        "generator": "wholerepo",
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "wholerepo", "version": clean_text(result.tool_version, 100)},
        "summary": clean_text(result.summary, 50_000),
        "verified": [_finding(f) for f in sorted_findings(result.verified)],
        "unverified": [_unverified(u) for u in sorted_unverified(result.unverified)],
        "unanchored": [_unverified(u) for u in sorted_unverified(result.unanchored)],
        "merged": result.merged,
        "counts": severity_counts(result.verified),
        "usage": asdict(result.usage) if result.usage is not None else None,
        "cost_usd": finite_or_none(result.cost_usd),
        "prompt_tokens": result.prompt_tokens,
        "endpoint_prompt_tokens": result.endpoint_prompt_tokens,
        "tokenizer": one_line(result.tokenizer, 200),
        "model": one_line(result.model, 200),
        "endpoint": safe_url(result.endpoint),
        "partial": result.partial,
        "partial_reason": one_line(result.partial_reason, 1000) if result.partial_reason else None,
        "base_ref": one_line(result.base_ref, 200) if result.base_ref else None,
        "files_reviewed": result.files_reviewed,
        "prompt_name": one_line(result.prompt_name, 200),
        "warnings": [one_line(w, 1000) for w in result.warnings],
        # Every file the repository lists that the model did not see, and why.
        "not_sent": [{"path": n.path, "reason": n.reason} for n in result.not_sent],
    }


def finite_or_none(value: float | None) -> float | None:
    """A number JSON can hold: NaN and infinities become null."""
    if value is None or not math.isfinite(value):
        return None
    return value


def _finding(f: Finding) -> dict[str, Any]:
    data = _clean(asdict(f))
    data["line"] = f.start_line
    return data


def _unverified(u: Unverified) -> dict[str, Any]:
    return _clean(asdict(u))


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    # Model text may carry escape sequences that `jq -r` would hand to a terminal.
    return {k: _clean_value(v) for k, v in data.items()}


def _clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, (list, tuple)):
        return [_clean_value(v) for v in value]
    return value
