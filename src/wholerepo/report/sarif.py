"""SARIF 2.1.0 for GitHub code scanning: one run, a rule per category, verified findings only
(never the unanchored or unverified ones).

Shape follows the OASIS errata01 schema and GitHub's ingestion rules: relative percent-encoded
URIs under %SRCROOT%, explicit levels, security-severity on the security rule, stable
partialFingerprints. Rules are derived from the results, as semgrep's formatter does.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from ..reviewer.findings import FINGERPRINT_VERSION, SEVERITIES, Finding, severity_rank
from ..sanitize import clean_text, one_line, safe_url, unescape_path
from . import ReviewResult, sorted_findings

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/wholerepo/wholerepo"
SRCROOT = "%SRCROOT%"
MAX_RESULTS = 25_000  # GitHub rejects a run with more
MESSAGE_LIMIT = 8_000

LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.0", "high": "7.0", "medium": "5.0", "low": "3.0", "info": "1.0"}
_PROBLEM_SEVERITY = {"error": "error", "warning": "warning", "note": "recommendation"}

_RULE_TEXT = {
    "bug": ("Bug", "Incorrect behaviour", "Code that does not do what it is meant to do."),
    "security": ("Security", "Security weakness", "Code that an attacker could abuse, or that exposes data."),
    "performance": ("Performance", "Performance problem", "Code that wastes time, memory or I/O."),
    "maintainability": (
        "Maintainability",
        "Maintainability problem",
        "Code that is hard to understand, change or reuse safely.",
    ),
    "style": ("Style", "Style issue", "Code that departs from the project's conventions."),
    "docs": ("Docs", "Documentation problem", "Documentation that is missing, wrong or out of date."),
    "test": ("Test", "Testing gap", "Tests that are missing, wrong or do not check what they claim."),
}


def rule_id(category: str) -> str:
    return f"wholerepo/{category}"


def artifact_uri(path: str) -> str:
    """A repository-relative path as a relative URI reference (spaces, unicode percent-encoded).

    A name shown escaped (``caf\\xe9.py``, a newline as ``\\n``) points at the file itself: its
    original bytes, percent-encoded (``caf%E9.py``).
    """
    raw = unescape_path(path)
    # Verified paths are already relative and clean; this keeps any other input relative too.
    parts = [p for p in raw.split("/") if p not in ("", ".", "..")]
    relative = "/".join(parts) or "unknown"
    try:
        # Paths decoded with surrogateescape keep their original bytes.
        return quote(relative, safe="/", errors="surrogateescape")
    except UnicodeEncodeError:
        return quote(relative, safe="/", errors="replace")


def render_sarif(result: ReviewResult) -> str:
    """The SARIF log of ``result`` as JSON text (sorted keys, trailing newline)."""
    return json.dumps(sarif_log(result), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def sarif_log(result: ReviewResult) -> dict[str, Any]:
    findings = sorted_findings(result.verified)[:MAX_RESULTS]
    categories = sorted({f.category for f in findings})
    rules = [_rule(c, [f for f in findings if f.category == c]) for c in categories]
    index = {c: i for i, c in enumerate(categories)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "wholerepo",
                "version": clean_text(result.tool_version, 100) or "0",
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "automationDetails": {"id": f"wholerepo/{_slug(result.prompt_name)}/"},
        "originalUriBaseIds": {SRCROOT: {"description": {"text": "The root of the reviewed repository."}}},
        "columnKind": "unicodeCodePoints",
        "invocations": [_invocation(result)],
        "results": [_result(f, index[f.category]) for f in findings],
        "properties": _run_properties(result),
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _rule(category: str, findings: list[Finding]) -> dict[str, Any]:
    name, short, full = _RULE_TEXT.get(category, (category.title(), category, category))
    top = max((f.severity for f in findings), key=severity_rank, default="medium")
    level = LEVELS.get(top, "warning")
    help_text = (
        f"{full} Found by a model reviewing the whole repository with wholerepo; the location and "
        "quoted code were verified against the repository, the judgement was not."
    )
    properties: dict[str, Any] = {"precision": "medium"}
    if category == "security":
        properties["tags"] = ["security"]
        # GitHub reads severity per rule, so the rule carries its most severe result's score;
        # each result also carries its own in its property bag.
        properties["security-severity"] = SECURITY_SEVERITY.get(top, "5.0")
    else:
        properties["tags"] = [category]
        properties["problem.severity"] = _PROBLEM_SEVERITY[level]
    return {
        "id": rule_id(category),
        "name": name,
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "help": {"text": help_text, "markdown": help_text},
        "defaultConfiguration": {"level": level},
        "properties": properties,
    }


def _result(f: Finding, rule_index: int) -> dict[str, Any]:
    start = max(1, f.start_line)
    region: dict[str, Any] = {"startLine": start, "endLine": max(start, f.end_line)}
    snippet = clean_text(f.quote or "", MESSAGE_LIMIT)
    if snippet.strip():
        region["snippet"] = {"text": snippet}
    properties: dict[str, Any] = {"severity": f.severity, "category": f.category}
    if f.category == "security":
        properties["security-severity"] = SECURITY_SEVERITY.get(f.severity, "5.0")
    if f.in_diff is not None:
        properties["in_diff"] = f.in_diff
    if f.moved_from is not None:
        properties["moved_from"] = f.moved_from
    # How the region was decided: quote-exact, quote-normalised, quote-near or cited-lines.
    properties["location"] = f.location
    if f.merged_titles:
        properties["merged_titles"] = [one_line(t, 300) for t in f.merged_titles]
    return {
        "ruleId": rule_id(f.category),
        "ruleIndex": rule_index,
        "level": LEVELS.get(f.severity, "warning"),
        "message": {"text": _message(f)},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": artifact_uri(f.path), "uriBaseId": SRCROOT},
                    "region": region,
                }
            }
        ],
        "partialFingerprints": {FINGERPRINT_VERSION: f.fingerprint or "0"},
        "properties": properties,
    }


def _message(f: Finding) -> str:
    title = one_line(f.title, 300) or "Finding"
    parts = [title if title.endswith((".", "!", "?")) else title + "."]
    body = clean_text(f.body, MESSAGE_LIMIT).strip()
    if body:
        parts.append(body)
    suggestion = clean_text(f.suggestion or "", MESSAGE_LIMIT).strip()
    if suggestion:
        parts.append("Suggestion: " + suggestion)
    return clean_text("\n\n".join(parts), MESSAGE_LIMIT)


def _invocation(result: ReviewResult) -> dict[str, Any]:
    invocation: dict[str, Any] = {"executionSuccessful": not result.partial}
    notes = []
    if result.partial:
        reason = one_line(result.partial_reason or "the reply was cut off", 500)
        notes.append({"level": "error", "message": {"text": f"Partial result: {reason}"}})
    notes.extend(
        {"level": "warning", "message": {"text": one_line(w, 1000) or "warning"}} for w in result.warnings
    )
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return invocation


def _run_properties(result: ReviewResult) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "model": one_line(result.model, 200),
        "endpoint": safe_url(result.endpoint),
        "tokenizer": one_line(result.tokenizer, 200),
        "prompt_tokens": result.prompt_tokens,
        "prompt": one_line(result.prompt_name, 200),
        "files_reviewed": result.files_reviewed,
        "unverified_findings": len(result.unverified),
        "unanchored_findings": len(result.unanchored),
        "merged_findings": result.merged,
        "partial": result.partial,
    }
    if result.base_ref:
        properties["base_ref"] = one_line(result.base_ref, 200)
    counts = {s: 0 for s in SEVERITIES}
    for f in result.verified:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    properties["counts"] = counts
    return properties


def _slug(name: str) -> str:
    text = one_line(name, 200).rsplit("/", 1)[-1]
    text = re.sub(r"\.(j2|jinja2?|md|txt)$", "", text)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "review"
