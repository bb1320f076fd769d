"""Findings: parse the model's reply, verify every finding against the packed code, fingerprint it.

The reply is hostile data. parse_reply() only extracts the findings object and never raises on a
bad item; verify() only looks paths up in the mapping of packed files (it never touches the file
system), checks lines and quotes, moves a finding whose quote sits elsewhere, and merges duplicates.
"""

from __future__ import annotations

import bisect
import hashlib
import html
import itertools
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import BlankReplyError, ReplyParseError
from .sanitize import clean_text, one_line

SEVERITIES = ("info", "low", "medium", "high", "critical")  # ascending
CATEGORIES = ("bug", "security", "performance", "maintainability", "style", "docs", "test")
FINGERPRINT_VERSION = "wholerepo/v1"

TITLE_LIMIT = 300
TEXT_LIMIT = 20_000
SUMMARY_LIMIT = 50_000
PATH_LIMIT = 1_000
MAX_ITEMS = 10_000  # more than any honest reply; keeps a hostile one from costing minutes

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


@dataclass(frozen=True)
class Unverified:
    """A finding that could not be anchored in the code, and why (``reason``)."""

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
    verified: tuple[Finding, ...]
    unverified: tuple[Unverified, ...]


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
class _Fields:
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


def verify(
    items: Sequence[Mapping[str, Any]],
    files: Mapping[str, str],
    *,
    changed_lines: Mapping[str, frozenset[int]] | None = None,
    elided: Mapping[str, Sequence[tuple[int, int]]] | None = None,
) -> Verification:
    """Check every item against the packed files; anchored findings are verified, the rest not.

    Only ``files`` is consulted: a path is verified only if it is a key there, never opened.
    ``elided`` gives, for files sent compressed, the line ranges the model did not see: quotes
    are still checked against the whole file, but a finding on those lines is unverified
    (reason ``elided``).
    """
    verified: list[Finding] = []
    unverified: list[Unverified] = []
    line_cache: dict[str, list[str]] = {}
    index_cache: dict[str, _LineIndex] = {}
    for raw in items:
        outcome = _verify_one(raw, files, line_cache, index_cache, elided or {})
        if isinstance(outcome, Unverified):
            unverified.append(outcome)
        else:
            verified.append(outcome)
    merged = _merge_duplicates(verified)
    merged = _assign_fingerprints(merged, line_cache)
    if changed_lines is not None:
        merged = [
            replace(f, in_diff=_touches(changed_lines.get(f.path, frozenset()), f.start_line, f.end_line))
            for f in merged
        ]
    merged.sort(key=finding_sort_key)
    return Verification(verified=tuple(merged), unverified=tuple(unverified))


def finding_sort_key(f: Finding) -> tuple[int, str, int, int, str, str]:
    """Severity descending, then path, line, title: the order every report uses."""
    return (-severity_rank(f.severity), f.path, f.start_line, f.end_line, f.category, f.title)


def _touches(lines: frozenset[int], start: int, end: int) -> bool:
    if end - start < len(lines):
        return any(n in lines for n in range(start, end + 1))
    return any(start <= n <= end for n in lines)


def _verify_one(
    raw: object,
    files: Mapping[str, str],
    line_cache: dict[str, list[str]],
    index_cache: dict[str, _LineIndex],
    elided: Mapping[str, Sequence[tuple[int, int]]],
) -> Finding | Unverified:
    item = _clean_item(raw)
    if item is None:
        return Unverified("invalid-finding", None, None, None, "info", "maintainability", "", "", None, None)
    fields = _coerce(item)
    severity = fields.severity
    category = fields.category

    def reject(reason: str, path: str | None = fields.path) -> Unverified:
        return Unverified(
            reason=reason,
            path=path,
            start_line=fields.start,
            end_line=fields.end,
            severity=severity or "info",
            category=category or "maintainability",
            title=fields.title,
            body=fields.body,
            suggestion=fields.suggestion,
            quote=fields.quote,
        )

    if not fields.title:
        return reject("missing-title")
    if severity is None:
        return reject("invalid-severity")
    if category is None:
        return reject("invalid-category")
    if fields.path is None:
        return reject("missing-path")
    resolved, reason = resolve_path(fields.path, files)
    if resolved is None:
        return reject(reason)
    path = resolved
    if path not in line_cache:
        line_cache[path] = _split_lines(files[path])
    lines = line_cache[path]
    total = len(lines)
    unseen = elided.get(path, ())

    start, end = fields.start, fields.end
    range_ok = start is not None and start >= 1 and (end is None or end >= start)
    if start is not None and end is None:
        end = start
    if fields.quote is not None:
        if path not in index_cache:
            index_cache[path] = _LineIndex.of(lines)
        match = _quote_spans(fields.quote_raw, index_cache[path])
        if match is None:  # nothing but whitespace or line numbers: treat as no quote
            fields = replace(fields, quote=None)
        elif not match[1]:
            return reject("quote-not-found", path)
        else:
            # Keep the quote as it matched: without copied line numbers or XML escapes.
            fields = replace(fields, quote=clean_text(match[0], TEXT_LIMIT))
            spans = [span for span in match[1] if not _overlaps(unseen, *span)]
            if not spans:  # the quote is only where the model was shown an elision marker
                return reject("elided", path)
            if range_ok and start is not None and end is not None and start <= total:
                for s, e in spans:
                    if s <= end and e >= start:
                        return _finding(path, start, min(end, total), severity, category, fields)
            # The quote is not at the cited lines: move to its occurrence nearest to them.
            anchor = start if start is not None and start >= 1 else 1
            s, e = min(spans, key=lambda span: (abs(span[0] - anchor), span[0]))
            moved = start if start is not None and start >= 1 else None
            return _finding(path, s, e, severity, category, fields, moved_from=moved)
    if start is None or end is None:
        return reject("missing-line", path)
    if not range_ok:
        return reject("invalid-line", path)
    if start > total:
        return reject("line-out-of-range", path)
    if _overlaps(unseen, start, min(end, total)):
        return reject("elided", path)
    return _finding(path, start, min(end, total), severity, category, fields)


def _overlaps(ranges: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    """Whether lines ``start``-``end`` touch any of ``ranges`` (compressed files' elided lines)."""
    return any(a <= end and start <= b for a, b in ranges)


def _finding(
    path: str,
    start: int,
    end: int,
    severity: str,
    category: str,
    fields: _Fields,
    moved_from: int | None = None,
) -> Finding:
    return Finding(
        path=path,
        start_line=start,
        end_line=max(start, end),
        severity=severity,
        category=category,
        title=fields.title,
        body=fields.body,
        suggestion=fields.suggestion,
        quote=fields.quote,
        moved_from=moved_from,
    )


def _coerce(raw: Mapping[str, Any]) -> _Fields:
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
    return _Fields(
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
        text = value.strip()
        if re.fullmatch(r"[+-]?\d{1,12}", text):
            return int(text)
    return None


def _normalise_choice(value: Any, choices: tuple[str, ...], aliases: Mapping[str, str]) -> str | None:
    if not isinstance(value, str):
        return None
    key = value.strip().lower()
    if key in choices:
        return key
    return aliases.get(key)


_DRIVE = re.compile(r"^[A-Za-z]:")
_PATH_LINE = re.compile(r"^(.+?):(\d+)(?:-\d+)?$")


def resolve_path(value: object, files: Mapping[str, str]) -> tuple[str | None, str]:
    """The packed path a model meant, or (None, reason): "unsafe-path" or "unknown-path".

    Only ``files`` is consulted; nothing is opened.
    """
    if not isinstance(value, str) or not value.strip():
        return None, "missing-path"
    if len(value) > PATH_LIMIT * 4 or any(ord(c) < 32 or c == "\x7f" for c in value):
        return None, "unsafe-path"
    path = value.strip().replace("\\", "/")
    lowered = path.lower()
    if path.startswith(("/", "~")) or _DRIVE.match(path) or "://" in lowered or lowered.startswith("file:"):
        return None, "unsafe-path"
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None, "unsafe-path"
    candidate = "/".join(parts)
    for option in _path_options(candidate):
        if option in files:
            return option, ""
    return None, "unknown-path"


def _path_options(candidate: str) -> Iterator[str]:
    yield candidate
    nfc = unicodedata.normalize("NFC", candidate)
    if nfc != candidate:
        yield nfc
    if candidate.startswith(("a/", "b/")):  # a path copied from a diff header
        yield candidate[2:]
    match = _PATH_LINE.match(candidate)
    if match:
        yield match.group(1)


def _split_lines(text: str) -> list[str]:
    """Lines as an editor and GitHub number them ("\\n"-separated, a final newline ends a line)."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


_WS = re.compile(r"\s+")
_LINE_NUMBER = re.compile(r"^\s*\d+\|")


def _norm_line(line: str) -> str:
    return _WS.sub(" ", line).strip()


def _quote_variants(quote: str) -> list[tuple[str, list[str]]]:
    """The quote as given and as repaired (line numbers, XML escapes removed), with its lines
    whitespace-normalised and blank ends dropped."""
    variants: list[tuple[str, list[str]]] = []
    stripped_numbers = "\n".join(_LINE_NUMBER.sub("", line) for line in quote.split("\n"))
    for text in (quote, stripped_numbers, html.unescape(quote), html.unescape(stripped_numbers)):
        lines = [_norm_line(line) for line in _split_lines(text)]
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        if lines and all(lines != seen for _, seen in variants):
            variants.append((text.strip("\n"), lines))
    return variants


@dataclass(frozen=True)
class _LineIndex:
    """A file's whitespace-normalised lines, joined once for fast substring search."""

    lines: list[str]
    joined: str
    starts: list[int]  # offset of each line in ``joined``

    @classmethod
    def of(cls, lines: Sequence[str]) -> _LineIndex:
        normalised = [_norm_line(line) for line in lines]
        starts = list(itertools.accumulate((len(line) + 1 for line in normalised[:-1]), initial=0))
        return cls(normalised, "\n".join(normalised), starts if normalised else [])


def _quote_spans(quote: str, normalised: _LineIndex) -> tuple[str, list[tuple[int, int]]] | None:
    """The quote text that matched and every 1-based (start, end) span where it occurs in the
    whitespace-normalised lines (none: an empty list); None when the quote holds no code at all."""
    variants = _quote_variants(quote)
    if not variants:
        return None
    for text, wanted in variants:
        spans = _find_spans(wanted, normalised)
        if spans:
            return text, spans
    return variants[0][0], []


def _find_spans(wanted: Sequence[str], index: _LineIndex) -> list[tuple[int, int]]:
    """Spans where ``wanted`` matches: its first and last lines may be parts of a file line."""
    lines, joined, starts = index.lines, index.joined, index.starts
    k = len(wanted)
    spans: list[tuple[int, int]] = []
    if k == 0 or k > len(lines):
        return spans
    first, last = wanted[0], wanted[-1]
    # Find the first line with str.find over the joined text (C speed), then check the rest.
    position = joined.find(first)
    while position >= 0:
        i = bisect.bisect_right(starts, position) - 1
        line_end = starts[i + 1] - 1 if i + 1 < len(starts) else len(joined)
        if k == 1:
            spans.append((i + 1, i + 1))
            position = joined.find(first, line_end + 1)
            continue
        if (
            position + len(first) == line_end
            and i + k <= len(lines)
            and lines[i + k - 1].startswith(last)
            and all(lines[i + j] == wanted[j] for j in range(1, k - 1))
        ):
            spans.append((i + 1, i + k))
        position = joined.find(first, position + 1)
    return spans


def _merge_duplicates(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per (path, category, title) and overlapping lines; the most severe one wins."""
    kept: list[Finding] = []
    for finding in findings:
        key = (finding.path, finding.category, _norm_title(finding.title))
        for index, other in enumerate(kept):
            if (other.path, other.category, _norm_title(other.title)) != key:
                continue
            if other.start_line <= finding.end_line and finding.start_line <= other.end_line:
                if severity_rank(finding.severity) > severity_rank(other.severity):
                    kept[index] = finding
                break
        else:
            kept.append(finding)
    return kept


def _norm_title(title: str) -> str:
    return _WS.sub(" ", title.casefold()).strip().rstrip(".!:;")


def fingerprint(path: str, category: str, title: str, code: str) -> str:
    """A stable id for a finding: its path, category, title and code, never its line numbers."""
    code_norm = "\n".join(n for n in (_norm_line(line) for line in code.split("\n")) if n)
    payload = "\x1f".join((FINGERPRINT_VERSION, path, category, _norm_title(title), code_norm))
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _assign_fingerprints(findings: Sequence[Finding], line_cache: Mapping[str, list[str]]) -> list[Finding]:
    # Identical code reported twice in one file gets ":2", ":3" in line order, as GitHub does.
    ordered = sorted(findings, key=lambda f: (f.path, f.start_line, f.end_line, f.category, f.title))
    seen: dict[str, int] = {}
    out: list[Finding] = []
    for f in ordered:
        code = f.quote if f.quote else "\n".join(line_cache[f.path][f.start_line - 1 : f.end_line])
        digest = fingerprint(f.path, f.category, f.title, code)
        seen[digest] = seen.get(digest, 0) + 1
        value = digest if seen[digest] == 1 else f"{digest}:{seen[digest]}"
        out.append(replace(f, fingerprint=value))
    return out


# --------------------------------------------------------------------------- for the prompt


def response_schema() -> dict[str, Any]:
    """The JSON schema of the reply the model is asked for."""
    finding = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "repository-relative path of a packed file"},
            "start_line": {"type": "integer", "minimum": 1},
            "end_line": {"type": "integer", "minimum": 1},
            "severity": {"type": "string", "enum": list(reversed(SEVERITIES))},
            "category": {"type": "string", "enum": list(CATEGORIES)},
            "title": {"type": "string", "description": "one line"},
            "body": {"type": "string", "description": "what is wrong and why it matters"},
            "suggestion": {"type": ["string", "null"], "description": "how to fix it"},
            "quote": {
                "type": ["string", "null"],
                "description": "the cited code copied verbatim, without line numbers",
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
            }
        ],
    }
    return json.dumps(example, indent=2, ensure_ascii=False)
