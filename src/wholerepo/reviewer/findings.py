"""Findings: the data types, parsing the model's reply, the reply's schema, fingerprints.

The reply is hostile data. parse_reply() only extracts the findings object and never raises on a
bad item. verify() (its work is in wholerepo.verify) only looks paths up in the mapping of packed
files, never the file system, anchors each finding by its quote or its cited lines, records how,
sets apart what it cannot anchor, and merges duplicates.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BlankReplyError, ReplyParseError
from ..sanitize import clean_text, one_line
from ..types import CATEGORIES, SEVERITIES

__all__ = ["CATEGORIES", "SEVERITIES"]  # the reports read them here too
FINGERPRINT_VERSION = "wholerepo/v1"

TITLE_LIMIT = 300
TEXT_LIMIT = 20_000
SUMMARY_LIMIT = 50_000
PATH_LIMIT = 1_000
MAX_ITEMS = 10_000  # more than any honest reply; keeps a hostile one from costing minutes

# How a verified finding's location was decided, most certain first: its quote found verbatim
# (whitespace and copied line numbers aside), found after repairs (fence, escapes, Unicode quotes,
# an ellipsis, whitespace ignored), found as a near match at the cited lines, or no quote and the
# cited lines name what the finding talks about.
LOCATIONS = ("quote-exact", "quote-normalised", "quote-near", "cited-lines")

_SEVERITY_ALIASES = {
    "blocker": "critical",
    "crit": "critical",
    "fatal": "critical",
    "error": "high",
    "major": "high",
    "severe": "high",
    "serious": "high",
    "warning": "medium",
    "warn": "medium",
    "moderate": "medium",
    "med": "medium",
    "minor": "low",
    "note": "info",
    "information": "info",
    "informational": "info",
    "trivial": "info",
    "nit": "info",
    "nitpick": "info",
}
_CATEGORY_ALIASES = {
    "bugs": "bug",
    "correctness": "bug",
    "logic": "bug",
    "error": "bug",
    "reliability": "bug",
    "sec": "security",
    "vulnerability": "security",
    "perf": "performance",
    "efficiency": "performance",
    "design": "maintainability",
    "architecture": "maintainability",
    "readability": "maintainability",
    "complexity": "maintainability",
    "refactor": "maintainability",
    "refactoring": "maintainability",
    "formatting": "style",
    "naming": "style",
    "lint": "style",
    "doc": "docs",
    "documentation": "docs",
    "comments": "docs",
    "tests": "test",
    "testing": "test",
}
# Keys a model commonly uses instead of ours.
_KEY_ALIASES = {
    "file": "path",
    "filename": "path",
    "file_path": "path",
    "filepath": "path",
    "line": "start_line",
    "line_start": "start_line",
    "startline": "start_line",
    "line_end": "end_line",
    "endline": "end_line",
    "description": "body",
    "message": "body",
    "code": "quote",
}
FINDING_KEYS = (
    "path",
    "start_line",
    "end_line",
    "severity",
    "category",
    "title",
    "body",
    "suggestion",
    "quote",
    "replacement",
)


def severity_at_least(severity: str, threshold: str) -> bool:
    """True when ``severity`` is ``threshold`` or above; the threshold "none" never matches."""
    if threshold == "none" or threshold not in SEVERITIES or severity not in SEVERITIES:
        return False
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


def severity_rank(severity: str) -> int:
    """Position in SEVERITIES (0 for info); unknown values rank lowest."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


@dataclass(frozen=True)
class Finding:
    """A finding whose path, lines and quote were checked against the packed code."""

    path: str
    start_line: int
    end_line: int
    severity: str
    category: str
    title: str
    body: str
    suggestion: str | None
    quote: str | None
    in_diff: bool | None = None
    moved_from: int | None = None
    fingerprint: str = ""
    location: str = "cited-lines"  # how the lines were decided: one of LOCATIONS
    merged_titles: tuple[str, ...] = ()  # the titles of the duplicates merged into this one
    # The exact code that replaces start_line..end_line, when the model gave one (None: none;
    # "": delete the lines). Kept verbatim: publishers check it applies before offering it.
    replacement: str | None = None


@dataclass(frozen=True)
class Unverified:
    """A finding that was not verified, and why (``reason``): rejected, or its location unconfirmed."""

    reason: str
    path: str | None
    start_line: int | None
    end_line: int | None
    severity: str
    category: str
    title: str
    body: str
    suggestion: str | None
    quote: str | None


@dataclass(frozen=True)
class ParsedReply:
    """The findings object of a reply: its summary and raw finding items (not yet verified)."""

    summary: str
    items: tuple[dict[str, Any], ...]
    partial: bool = False
    ignored: int = 0


@dataclass(frozen=True)
class Verification:
    """What verification made of a reply's findings."""

    verified: tuple[Finding, ...]
    unverified: tuple[Unverified, ...]  # rejected: no such file, the quote is not there, invalid
    unanchored: tuple[Unverified, ...] = ()  # may be true, but where it applies is not confirmed

    @property
    def merged(self) -> int:
        """How many findings were merged into others as duplicates."""
        return sum(len(f.merged_titles) for f in self.verified)


# --------------------------------------------------------------------------- parsing the reply

_FENCE = re.compile(r"(`{3,}|~{3,})[ \t]*[A-Za-z0-9_+-]*[ \t]*\r?\n(.*?)(?:\r?\n[ \t]*\1|\Z)", re.DOTALL)
_MAX_DECODE_ATTEMPTS = 400
_DECODER = json.JSONDecoder()


def parse_reply(text: str, *, allow_partial: bool = False) -> ParsedReply:
    """Find the findings object in a reply: bare JSON, fenced, or wrapped in prose.

    Raises BlankReplyError for a blank reply and ReplyParseError when no findings object is found;
    with ``allow_partial`` a reply cut mid-stream yields its complete findings, marked partial.
    """
    if not isinstance(text, str) or not text.strip():
        raise BlankReplyError("the model's reply was blank")
    text = text.lstrip("\ufeff")
    found = _find_findings_object(text)
    if found is not None:
        return _to_parsed(found)
    if allow_partial:
        recovered = _recover_partial(text)
        if recovered is not None:
            return recovered
    raise ReplyParseError(
        "the model's reply holds no findings JSON",
        hint='expected {"summary": ..., "findings": [...]}',
    )


def _find_findings_object(text: str) -> Mapping[str, Any] | list[Any] | None:
    stripped = text.strip()
    candidates: list[str] = [stripped]
    candidates.extend(m.group(2) for m in _FENCE.finditer(text))
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        found = _findings_holder(value)
        if found is not None:
            return found
    # JSON wrapped in prose: decode at each "{" (and "[") in turn.
    attempts = 0
    position = 0
    fallback: list[Any] | None = None
    while attempts < _MAX_DECODE_ATTEMPTS:
        start = _next_opening(text, position)
        if start < 0:
            break
        attempts += 1
        try:
            value, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            position = start + 1
            continue
        found = _findings_holder(value)
        if isinstance(found, Mapping):
            return found
        if found is not None and fallback is None:
            fallback = found
        position = max(end, start + 1)
    return fallback


def _next_opening(text: str, position: int) -> int:
    brace = text.find("{", position)
    bracket = text.find("[", position)
    if brace < 0:
        return bracket
    if bracket < 0:
        return brace
    return min(brace, bracket)


def _findings_holder(value: Any, depth: int = 0) -> Mapping[str, Any] | list[Any] | None:
    """The object holding "findings" (itself or one nested a level or two down), or a bare list."""
    if isinstance(value, Mapping):
        if isinstance(value.get("findings"), list):
            return value
        if depth < 2:
            for child in value.values():
                found = _findings_holder(child, depth + 1)
                if isinstance(found, Mapping):
                    return found
        return None
    # A bare array of finding objects: accepted when every element looks like a finding.
    if depth == 0 and isinstance(value, list) and value and all(_looks_like_finding(v) for v in value):
        return value
    return None


def _looks_like_finding(value: Any) -> bool:
    return isinstance(value, Mapping) and any(_canonical_key(k) in ("path", "title") for k in value)


def _canonical_key(key: Any) -> str:
    if not isinstance(key, str):
        return ""
    name = key.strip().lower().replace("-", "_")
    return _KEY_ALIASES.get(name, name)


def _to_parsed(found: Mapping[str, Any] | list[Any], partial: bool = False) -> ParsedReply:
    if isinstance(found, Mapping):
        summary = _summary_text(found.get("summary"))
        raw_items: list[Any] = found.get("findings") or []
    else:
        summary, raw_items = "", found
    items, ignored = _clean_items(raw_items)
    return ParsedReply(summary=summary, items=items, partial=partial, ignored=ignored)


def _summary_text(value: Any) -> str:
    if isinstance(value, str):
        return clean_text(value, SUMMARY_LIMIT).strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def _clean_items(raw_items: Sequence[Any]) -> tuple[tuple[dict[str, Any], ...], int]:
    items: list[dict[str, Any]] = []
    ignored = 0
    for raw in raw_items:
        item = _clean_item(raw) if len(items) < MAX_ITEMS else None
        if item is None:
            ignored += 1
        else:
            items.append(item)
    return tuple(items), ignored


def _clean_item(raw: Any) -> dict[str, Any] | None:
    """Keep only the schema's keys (aliases mapped); anything else is not a finding."""
    if not isinstance(raw, Mapping):
        return None
    item: dict[str, Any] = {}
    for key, value in raw.items():
        name = _canonical_key(key)
        if name in FINDING_KEYS and name not in item:
            item[name] = value
    if not any(k in item for k in ("path", "title", "body")):
        return None
    return item


def _recover_partial(text: str) -> ParsedReply | None:
    """From a reply cut mid-stream: the summary if complete and every complete finding object."""
    match = re.search(r'"findings"\s*:\s*\[', text)
    if match is None:
        return None
    opening = text.rfind("{", 0, match.start())
    if opening < 0:
        return None
    summary = ""
    summary_match = re.compile(r'"summary"\s*:\s*"').search(text, opening)
    if summary_match is not None:
        try:
            value, _ = _DECODER.raw_decode(text, summary_match.end() - 1)
            summary = _summary_text(value)
        except ValueError:
            summary = ""
    raw_items: list[Any] = []
    ignored = 0
    position = match.end()
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            break
        try:
            value, position = _DECODER.raw_decode(text, position)
        except (ValueError, RecursionError):
            break
        raw_items.append(value)
    items, ignored = _clean_items(raw_items)
    return ParsedReply(summary=summary, items=items, partial=True, ignored=ignored)


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Fields:
    """A finding item's fields, coerced and cleaned (severity/category None when unknown)."""

    path: str | None
    start: int | None
    end: int | None
    severity: str | None
    category: str | None
    title: str
    body: str
    suggestion: str | None
    quote: str | None
    quote_raw: str
    severity_given: str = ""  # the severity and category as the model wrote them (for rejects)
    category_given: str = ""
    replacement: str | None = None


def read_item(raw: object) -> Fields | None:
    """The fields of one reply item, or None when it is not a finding object."""
    item = _clean_item(raw)
    return None if item is None else _coerce(item)


def verify(
    items: Sequence[Mapping[str, Any]],
    files: Mapping[str, str],
    *,
    changed_lines: Mapping[str, frozenset[int]] | None = None,
    elided: Mapping[str, Sequence[tuple[int, int]]] | None = None,
) -> Verification:
    """Check every item against the packed files: verified, unanchored or unverified.

    Only ``files`` is consulted: a path is verified only if it is a key there, never opened.
    The work is done in reviewer/verify.py; this name stays for its callers.
    """
    from .verify import verify_items

    return verify_items(items, files, changed_lines=changed_lines, elided=elided)


def resolve_path(value: object, files: Mapping[str, str]) -> tuple[str | None, str]:
    """The packed path a model meant, or (None, reason); see wholerepo.verify.resolve_path."""
    from .verify import resolve_path as resolve

    return resolve(value, files)


def finding_sort_key(f: Finding) -> tuple[int, str, int, int, str, str]:
    """Severity descending, then path, line, title: the order every report uses."""
    return (-severity_rank(f.severity), f.path, f.start_line, f.end_line, f.category, f.title)


def _coerce(raw: Mapping[str, Any]) -> Fields:
    title = one_line(_as_text(raw.get("title")), TITLE_LIMIT)
    body = clean_text(_as_text(raw.get("body")), TEXT_LIMIT).strip()
    if not title and body:
        title = one_line(re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0], 120)
    suggestion = clean_text(_as_text(raw.get("suggestion")), TEXT_LIMIT).strip() or None
    quote_raw = _as_text(raw.get("quote"))
    quote = clean_text(quote_raw, TEXT_LIMIT) if quote_raw.strip() else None
    path_value = raw.get("path")
    path = path_value[: PATH_LIMIT * 4] if isinstance(path_value, str) and path_value.strip() else None
    start = _as_line(raw.get("start_line"))
    end = _as_line(raw.get("end_line"))
    replacement_value = raw.get("replacement")
    replacement = (
        _as_text(replacement_value)[: TEXT_LIMIT * 2]
        if isinstance(replacement_value, str)
        or (isinstance(replacement_value, list) and all(isinstance(v, str) for v in replacement_value))
        else None
    )
    return Fields(
        path=path,
        start=start,
        end=end,
        severity=_normalise_choice(raw.get("severity"), SEVERITIES, _SEVERITY_ALIASES),
        category=_normalise_choice(raw.get("category"), CATEGORIES, _CATEGORY_ALIASES),
        title=title,
        body=body,
        suggestion=suggestion,
        quote=quote,
        quote_raw=quote_raw[: TEXT_LIMIT * 4],
        severity_given=one_line(_as_text(raw.get("severity")), 40),
        category_given=one_line(_as_text(raw.get("category")), 40),
        replacement=replacement,
    )


def _as_text(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)  # a quote or suggestion given as a list of lines
    return ""


def _as_line(value: Any) -> int | None:
    """An integer line number from an int, an integral float or a digit string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 1e12 else None
    if isinstance(value, str):
        # "12", and as models also write it: "12.0", "L12", "line 12", "12-14" (its start).
        match = re.fullmatch(
            r"(?:lines?\s*|L)?([+-]?\d{1,12})(?:\.0+|\s*[-–]\s*L?\d{1,12})?", value.strip(), re.I
        )
        if match:
            return int(match.group(1))
    return None


def _normalise_choice(value: Any, choices: tuple[str, ...], aliases: Mapping[str, str]) -> str | None:
    if not isinstance(value, str):
        return None
    key = value.strip().lower()
    if key in choices:
        return key
    return aliases.get(key)


_WS = re.compile(r"\s+")


def norm_line(line: str) -> str:
    """A line with each run of whitespace made one space, and trimmed."""
    return _WS.sub(" ", line).strip()


def norm_title(title: str) -> str:
    return _WS.sub(" ", title.casefold()).strip().rstrip(".!:;")


def fingerprint(path: str, category: str, title: str, code: str) -> str:
    """A stable id for a finding: its path, category, title and code, never its line numbers."""
    code_norm = "\n".join(n for n in (norm_line(line) for line in code.split("\n")) if n)
    payload = "\x1f".join((FINGERPRINT_VERSION, path, category, norm_title(title), code_norm))
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# --------------------------------------------------------------------------- for the prompt


def response_schema() -> dict[str, Any]:
    """The JSON schema of the reply the model is asked for."""
    finding = {
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "description": "the full repository-relative path of a packed file, as written in the"
                " repository (no leading /)",
            },
            "start_line": {"type": "integer", "minimum": 1},
            "end_line": {
                "type": "integer",
                "minimum": 1,
                "description": "not before start_line, not past the file's last line",
            },
            "severity": {"type": "string", "enum": list(reversed(SEVERITIES))},
            "category": {"type": "string", "enum": list(CATEGORIES)},
            "title": {"type": "string", "description": "one line"},
            "body": {"type": "string", "description": "what is wrong and why it matters"},
            "suggestion": {"type": ["string", "null"], "description": "how to fix it"},
            "quote": {
                "type": ["string", "null"],
                "description": "one to three consecutive lines of the cited code copied verbatim: no"
                " line numbers, no ``` fence, no ... or … to shorten it, nothing renamed; null only"
                " for a finding about no particular code",
            },
            "replacement": {
                "type": ["string", "null"],
                "description": "only when certain: the exact code that replaces lines start_line..end_line"
                " (whole lines, indentation kept, no line numbers); null otherwise",
            },
        },
        "required": list(FINDING_KEYS),
        "additionalProperties": False,
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "findings": {"type": "array", "items": finding},
        },
        "required": ["summary", "findings"],
        "additionalProperties": False,
    }


def example_reply() -> str:
    """A short valid reply, shown to the model as the shape to follow."""
    example = {
        "summary": "One off-by-one error in pagination; otherwise the code is sound.",
        "findings": [
            {
                "path": "src/app/pages.py",
                "start_line": 42,
                "end_line": 42,
                "severity": "medium",
                "category": "bug",
                "title": "Last page is skipped",
                "body": "range() stops before total_pages, so the final page is never fetched.",
                "suggestion": "Iterate over range(1, total_pages + 1).",
                "quote": "for page in range(1, total_pages):",
                "replacement": "    for page in range(1, total_pages + 1):",
            }
        ],
    }
    return json.dumps(example, indent=2, ensure_ascii=False)
