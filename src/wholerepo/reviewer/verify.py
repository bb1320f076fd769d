"""Verification: anchor each finding a model returned in the packed code, or say why it cannot be.

A finding is **verified** when its path names a packed file and its location is confirmed, and it
records how (``Finding.location``):

* ``quote-exact``: its quote occurs verbatim, whitespace and copied ``N|`` line numbers aside;
* ``quote-normalised``: it occurs after repairs: a code fence stripped, XML escapes decoded,
  Unicode quotes and dashes made ASCII, ``...``/``…`` read as a gap of a few lines, and as a last
  resort all whitespace ignored;
* ``quote-near``: nothing occurs, but the cited lines (give or take ``NEAR_LINES``) are a near
  match: similarity >= ``NEAR_SIMILARITY`` with at most one line differing a little, or one
  identifier renamed in an otherwise identical line;
* ``cited-lines``: no quote; the cited lines contain what the finding names, and no neighbouring
  lines contain more of it.

When the quote is found its lines win over the cited ones. A quote found away from the cited
lines moves the finding there only when it matched line by line (not with whitespace or ellipses
ignored), is long enough, and is found once, or when one of its copies is picked by a copied
``N|`` number, by the function or class the finding names, or by the cited lines being clearly
nearest to it. A finding whose claim may be true but whose place is not confirmed is
**unanchored** (set apart, never reported as verified); the rest are **unverified** (rejected)
with a reason.

Only the ``files`` mapping is consulted: a path is a key there or nothing; no file is opened.
Cost is near-linear: searches start at the cited lines, each file is indexed once, and merging
buckets findings by path, lines, quote and title.
"""

from __future__ import annotations

import bisect
import difflib
import html
import itertools
import keyword
import re
import textwrap
import unicodedata
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rapidfuzz import fuzz

from ..sanitize import clean_text
from .findings import (
    LOCATIONS,
    PATH_LIMIT,
    TEXT_LIMIT,
    Fields,
    Finding,
    Unverified,
    Verification,
    finding_sort_key,
    fingerprint,
    norm_line,
    norm_title,
    read_item,
    severity_rank,
)

QUOTE_EXACT, QUOTE_NORMALISED, QUOTE_NEAR, CITED_LINES = LOCATIONS

NEAR_LINES = 3  # how far from the cited lines a quote still counts as "at" them
NEAR_SIMILARITY = 90.0  # rapidfuzz ratio (0-100) for a near match; 85 let fabrications through
NEAR_LINE_SIMILARITY = 75.0  # the one line of a near match that may differ, against its original
GAP_LINES = 6  # how many lines an ellipsis in a quote may stand for
GAP_MAX_PIECES = 16  # a quote cut into more pieces than this is not read as gaps
NEAR_MAX_LINES = 12  # near matching is for short quotes (the model is asked for one to three lines)
NEAR_MAX_CHARS = 2_000
SHORT_QUOTE = 12  # a quote with fewer non-space characters is too short to move a finding
COMMON_QUOTE = 6  # a quote found this often is too common to move a finding
PICK_REACH = 60  # a repeated quote: its copy nearest the cited lines, if at most this far ...
PICK_RATIO = 5  # ... and every other copy at least this many times farther
CITED_SPAN_CAP = 200  # cited lines beyond this many past the start are not searched as "at" them
SUPPORT_REACH = 10  # no quote: neighbouring windows up to this far compete with the cited lines
SUPPORT_MAX_LINES = 50  # no quote: more cited lines than this say nothing about where
RARE_NAME = 0.05  # a name on more than this share of a file's lines does not anchor a finding

# Reasons for the unanchored list (reports explain them).
UNANCHORED_REASONS = {
    "repeated-quote": "the quoted code occurs more than once and nothing says which copy is meant",
    "weak-quote": "the quoted code is too short or too common to confirm the place, and the finding"
    " names nothing on those lines",
    "unsupported-lines": "there is no quote, and the cited lines do not contain what the finding names",
    "lines-past-end": "there is no quote, and the cited lines run past the end of the file",
}

Span = tuple[int, int]  # 1-based first and last line


# --------------------------------------------------------------------------- the entry point


def verify_items(
    items: Sequence[Any],
    files: Mapping[str, str],
    *,
    changed_lines: Mapping[str, frozenset[int]] | None = None,
    elided: Mapping[str, Sequence[tuple[int, int]]] | None = None,
) -> Verification:
    """Check every item against the packed files: verified, unanchored or unverified (rejected).

    ``elided``: for files sent compressed, the line ranges the model was not shown. Quotes are
    checked against the whole file, but a finding placed on those lines is unverified (reason
    ``elided``): the model cannot have seen them.
    """
    context = _Context(files)
    unseen = elided or {}
    verified: list[Finding] = []
    unverified: list[Unverified] = []
    unanchored: list[Unverified] = []
    for raw in items:
        kind, outcome = _verify_one(raw, context)
        if isinstance(outcome, Finding) and _overlaps(unseen.get(outcome.path, ()), outcome):
            unverified.append(_on_elided_lines(outcome))
        elif isinstance(outcome, Finding):
            verified.append(outcome)
        elif kind == "unanchored" and _cites_unseen(unseen, outcome):
            unverified.append(replace(outcome, reason="elided"))
        elif kind == "unanchored":
            unanchored.append(outcome)
        else:
            unverified.append(outcome)
    merged = merge_duplicates(verified)
    merged = _assign_fingerprints(merged, context)
    if changed_lines is not None:
        merged = [
            replace(f, in_diff=_touches(changed_lines.get(f.path, frozenset()), f.start_line, f.end_line))
            for f in merged
        ]
    merged.sort(key=finding_sort_key)
    return Verification(verified=tuple(merged), unverified=tuple(unverified), unanchored=tuple(unanchored))


class _Context:
    """The packed files of one verification, indexed lazily (only the files findings name)."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files
        self._indexes: dict[str, FileIndex] = {}
        self._paths: _PathIndex | None = None

    def index(self, path: str) -> FileIndex:
        found = self._indexes.get(path)
        if found is None:
            found = self._indexes[path] = FileIndex(self.files[path])
        return found

    def resolve(self, value: object) -> tuple[str | None, str]:
        if self._paths is None:
            self._paths = _PathIndex(self.files)
        return self._paths.resolve(value)


def _verify_one(raw: object, context: _Context) -> tuple[str, Finding | Unverified]:
    fields = read_item(raw)
    if fields is None:
        return "unverified", Unverified(
            "invalid-finding", None, None, None, "info", "maintainability", "", "", None, None
        )

    def set_apart(kind: str, reason: str, path: str | None = fields.path) -> tuple[str, Unverified]:
        return kind, Unverified(
            reason=reason,
            path=path,
            start_line=fields.start,
            end_line=fields.end,
            # An invalid value stays visible as the model gave it, never shown as another one.
            severity=fields.severity or fields.severity_given or "(none)",
            category=fields.category or fields.category_given or "(none)",
            title=fields.title,
            body=fields.body,
            suggestion=fields.suggestion,
            quote=fields.quote,
        )

    if not fields.title:
        return set_apart("unverified", "missing-title")
    if fields.severity is None:
        return set_apart("unverified", "invalid-severity")
    if fields.category is None:
        return set_apart("unverified", "invalid-category")
    if fields.path is None:
        return set_apart("unverified", "missing-path")
    path, reason = context.resolve(fields.path)
    if path is None:
        return set_apart("unverified", reason)
    index = context.index(path)
    cited = _cited(fields, index.total)
    quote = prepare_quote(fields.quote_raw) if fields.quote is not None else None

    if quote is not None:
        anchored = anchor_quote(quote, index, cited, fields)
        if isinstance(anchored, str):
            return set_apart("unanchored", anchored, path)
        if anchored is None:
            return set_apart("unverified", "quote-not-found", path)
        span, method, shown = anchored
        # An exact quote is kept as it matched; otherwise the code it stands for is shown.
        text = (
            shown if method == QUOTE_EXACT else textwrap.dedent("\n".join(index.raw[span[0] - 1 : span[1]]))
        )
        given = min(fields.start, fields.end or fields.start) if fields.start is not None else None
        moved = given if given is not None and given >= 1 and given != span[0] else None
        return "verified", _finding(fields, path, span, method, clean_text(text, TEXT_LIMIT), moved)

    # No quote: the cited lines must stand on their own.
    if fields.start is None:
        return set_apart("unverified", "missing-line", path)
    if fields.start < 1 or (fields.end is not None and fields.end < 1):
        return set_apart("unverified", "invalid-line", path)
    if cited is None:
        return set_apart("unverified", "line-out-of-range", path)
    start, end = cited
    if max(fields.start, fields.end or fields.start) > index.total:
        return set_apart("unanchored", "lines-past-end", path)
    if not index.supports(named_in(fields), start, end, compete=True):
        return set_apart("unanchored", "unsupported-lines", path)
    return "verified", _finding(fields, path, (start, end), CITED_LINES, fields.quote, None)


def _cited(fields: Fields, total: int) -> Span | None:
    """The cited lines as a span within the file (start and end swapped back), or None."""
    start, end = fields.start, fields.end
    if start is None or start < 1:
        return None
    if end is None or end < 1:
        end = start
    if end < start:
        start, end = end, start
    if start > total:
        return None
    return start, min(end, total)


def _finding(
    fields: Fields, path: str, span: Span, location: str, quote: str | None, moved_from: int | None
) -> Finding:
    assert fields.severity is not None and fields.category is not None
    return Finding(
        path=path,
        start_line=span[0],
        end_line=max(span),
        severity=fields.severity,
        category=fields.category,
        title=fields.title,
        body=fields.body,
        suggestion=fields.suggestion,
        quote=quote,
        moved_from=moved_from,
        location=location,
        replacement=fields.replacement,
    )


def _overlaps(ranges: Sequence[tuple[int, int]], f: Finding) -> bool:
    """Whether ``f``'s lines touch any of ``ranges`` (a compressed file's elided lines)."""
    return any(a <= f.end_line and f.start_line <= b for a, b in ranges)


def _cites_unseen(unseen: Mapping[str, Sequence[tuple[int, int]]], u: Unverified) -> bool:
    """Whether an unplaced finding cites lines the model was not shown."""
    if not u.path or u.start_line is None:
        return False
    end = u.end_line if u.end_line is not None else u.start_line
    return any(a <= end and u.start_line <= b for a, b in unseen.get(u.path, ()))


def _on_elided_lines(f: Finding) -> Unverified:
    return Unverified(
        "elided",
        f.path,
        f.start_line,
        f.end_line,
        f.severity,
        f.category,
        f.title,
        f.body,
        f.suggestion,
        f.quote,
    )


def _touches(lines: frozenset[int], start: int, end: int) -> bool:
    if end - start < len(lines):
        return any(n in lines for n in range(start, end + 1))
    return any(start <= n <= end for n in lines)


# --------------------------------------------------------------------------- paths

_DRIVE = re.compile(r"^[A-Za-z]:")
_PATH_LINE = re.compile(r"^(.+?):(\d+)(?:-\d+)?$")


def resolve_path(value: object, files: Mapping[str, str]) -> tuple[str | None, str]:
    """The packed path a model meant, or (None, reason): "unsafe-path", "unknown-path",
    "ambiguous-path" or "missing-path". Only the keys of ``files`` are consulted; nothing is opened.

    Tried in turn: the path as given (also without a diff's ``a/``/``b/`` or a ``:line``), then a
    case-insensitive match, then a unique suffix (``click/core.py`` for ``src/click/core.py``). A
    leading ``/`` means the repository root: such a path gets no suffix match, and is refused as
    unsafe when no packed file has it; so are ``..``, ``~``, drives and URLs.
    """
    return _PathIndex(files).resolve(value)


class _PathIndex:
    """The packed paths by exact, case-folded, suffix and case-folded suffix lookup (built lazily)."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files
        self._tables: tuple[dict[str, list[str]], ...] | None = None

    def resolve(self, value: object) -> tuple[str | None, str]:
        if not isinstance(value, str) or not value.strip():
            return None, "missing-path"
        if value.strip() in self.files:  # exactly as packed: names shown escaped hold a backslash
            return value.strip(), ""
        if len(value) > PATH_LIMIT * 4 or any(ord(c) < 32 or c == "\x7f" for c in value):
            return None, "unsafe-path"
        path = _unwrapped(value).replace("\\", "/")
        lowered = path.lower()
        if path.startswith("~") or _DRIVE.match(path) or "://" in lowered or lowered.startswith("file:"):
            return None, "unsafe-path"
        rooted = path.startswith("/")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            return None, "unsafe-path"
        options = list(dict.fromkeys(_path_options("/".join(parts))))
        for option in options:
            if option in self.files:
                return option, ""
        folded, suffixes, folded_suffixes = self._lookups()
        # A root-relative path may differ in case only; any other may also lack leading folders.
        tables = ((folded, True),) if rooted else ((folded, True), (suffixes, False), (folded_suffixes, True))
        ambiguous = False
        for table, fold in tables:
            for option in options:
                found = table.get(option.casefold() if fold else option, [])
                if len(found) == 1:
                    return found[0], ""
                ambiguous = ambiguous or len(found) > 1
        if not rooted and not ambiguous and len(parts) > 2:
            # The repository's own folder in front ("flask/src/flask/app.py"): one folder dropped,
            # and what is left must be a packed path as it is.
            found = [o for o in _path_options("/".join(parts[1:])) if o in self.files]
            if found:
                return found[0], ""
        if rooted:
            return None, "unsafe-path"
        return None, "ambiguous-path" if ambiguous else "unknown-path"

    def _lookups(self) -> tuple[dict[str, list[str]], ...]:
        if self._tables is None:
            folded: dict[str, list[str]] = {}
            suffixes: dict[str, list[str]] = {}
            folded_suffixes: dict[str, list[str]] = {}
            for key in self.files:
                folded.setdefault(key.casefold(), []).append(key)
                pieces = key.split("/")
                for i in range(1, len(pieces)):
                    suffix = "/".join(pieces[i:])
                    suffixes.setdefault(suffix, []).append(key)
                    folded_suffixes.setdefault(suffix.casefold(), []).append(key)
            self._tables = (folded, suffixes, folded_suffixes)
        return self._tables


_WRAPPERS = ("`", '"', "'")
_LOCATION_SUFFIX = re.compile(
    r"(?:#L\d+(?:-L?\d+)?|:L?\d+(?:[-:]L?\d+)*|,? \(?lines? \d+(?:-\d+)?\)?)$", re.I
)


def _unwrapped(value: str) -> str:
    """A path without backticks or quotes round it, URL escapes decoded."""
    path = value.strip()
    while len(path) > 2 and path[0] == path[-1] and path[0] in _WRAPPERS:
        path = path[1:-1].strip()
    if "%" in path:
        path = urllib.parse.unquote(path)
    return path


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
    bare = _LOCATION_SUFFIX.sub("", candidate).rstrip()
    if bare and bare != candidate:  # "path#L12-L14", "path:12:14", "path (line 12)"
        yield bare


# --------------------------------------------------------------------------- a file's index

_WS = re.compile(r"\s+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFINED = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_][A-Za-z0-9_]*)")
_UNICODE = str.maketrans(
    {
        **dict.fromkeys("“”„‟″«»", '"'),
        **dict.fromkeys("‘’‚‛′´", "'"),
        **dict.fromkeys("–—―‐‑‒−", "-"),
        "…": "...",
        "\u00a0": " ",
        "\u200b": "",
        "\ufeff": "",
    }
)


def split_lines(text: str) -> list[str]:
    """Lines as an editor and GitHub number them ("\\n"-separated, a final newline ends a line)."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def canonical(text: str) -> str:
    """Unicode quotes, dashes and ellipses as ASCII (applied to the quote and the code alike)."""
    return text.translate(_UNICODE)


class _Lines:
    """A file's lines in one normal form, joined once for fast substring search."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.joined = "\n".join(lines)
        self.starts = list(itertools.accumulate((len(x) + 1 for x in lines[:-1]), initial=0)) if lines else []

    def spans(self, wanted: Sequence[str], lo: int, hi: int) -> list[Span]:
        """Where ``wanted`` occurs with its first line in lo..hi: its first line may be the end of a
        file line and its last line the start of one; the lines between match whole."""
        lines, joined, starts = self.lines, self.joined, self.starts
        k = len(wanted)
        lo, hi = max(lo, 1), min(hi, len(lines) - k + 1)
        if k == 0 or lo > hi:
            return []
        first, last = wanted[0], wanted[-1]
        limit = starts[hi] - 1 if hi < len(lines) else len(joined)
        found: list[Span] = []
        position = joined.find(first, starts[lo - 1], limit)
        while position >= 0:
            i = bisect.bisect_right(starts, position) - 1
            line_end = starts[i + 1] - 1 if i + 1 < len(starts) else len(joined)
            if k == 1:
                found.append((i + 1, i + 1))
                position = joined.find(first, line_end + 1, limit)
                continue
            if (
                position + len(first) == line_end
                and lines[i + k - 1].startswith(last)
                and all(lines[i + j] == wanted[j] for j in range(1, k - 1))
            ):
                found.append((i + 1, i + k))
            position = joined.find(first, position + 1, limit)
        return found


class _Flat:
    """A file's canonical text with every whitespace character removed, and where each line starts."""

    def __init__(self, lines: Sequence[str]) -> None:
        parts = ["".join(line.split()) for line in lines]
        self.parts = parts
        self.text = "".join(parts)
        self.starts = list(itertools.accumulate((len(p) for p in parts[:-1]), initial=0)) if parts else []

    def line_of(self, position: int) -> int:
        return bisect.bisect_right(self.starts, position)

    def bounds(self, lo: int, hi: int) -> tuple[int, int]:
        """Offsets of lines lo..hi (1-based, inclusive), clamped to the file."""
        n = len(self.starts)
        lo, hi = max(lo, 1), min(hi, n)
        if lo > hi:
            return 0, 0
        return self.starts[lo - 1], self.starts[hi] if hi < n else len(self.text)

    def _find(self, needle: Needle, begin: int, stop: int) -> int:
        """The first occurrence of ``needle`` starting in begin..stop-1 whose line breaks fall where
        the quote had whitespace or between two tokens (never inside a word), or -1."""
        text, starts = self.text, self.starts
        position = text.find(needle.text, begin, stop + len(needle.text) - 1)
        while 0 <= position < stop:
            first = bisect.bisect_right(starts, position)
            last = bisect.bisect_left(starts, position + len(needle.text))
            if all(needle.may_break(starts[i] - position) for i in range(first, last)):
                return position
            position = text.find(needle.text, position + 1, stop + len(needle.text) - 1)
        return -1

    def spans(self, needle: Needle, lo: int, hi: int) -> list[Span]:
        """Where ``needle`` occurs starting on lines lo..hi."""
        if not needle.text:
            return []
        begin, stop = self.bounds(lo, hi)
        found: list[Span] = []
        position = self._find(needle, begin, stop)
        while position >= 0:
            span = (self.line_of(position), self.line_of(position + len(needle.text) - 1))
            if not found or found[-1] != span:
                found.append(span)
            position = self._find(needle, position + 1, stop)
        return found

    def gap_spans(self, pieces: Sequence[Needle], lo: int, hi: int) -> list[Span]:
        """Where ``pieces`` occur in order, each within GAP_LINES lines of the one before."""
        found: list[Span] = []
        begin, stop = self.bounds(lo, hi)
        position = self._find(pieces[0], begin, stop)
        while position >= 0:
            end = position + len(pieces[0].text)
            for piece in pieces[1:]:
                _, limit = self.bounds(1, self.line_of(end - 1) + GAP_LINES)
                at = self._find(piece, end, max(end, limit - len(piece.text) + 1))
                if at < 0:
                    break
                end = at + len(piece.text)
            else:
                span = (self.line_of(position), self.line_of(end - 1))
                if not found or found[-1][0] != span[0]:
                    found.append(span)
            position = self._find(pieces[0], position + 1, stop)
        return found


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


@dataclass(frozen=True)
class Needle:
    """Text with its whitespace removed, remembering where the whitespace was."""

    text: str
    breaks: frozenset[int]  # offsets in ``text`` that had whitespace before them

    @classmethod
    def of(cls, text: str) -> Needle:
        out: list[str] = []
        breaks: set[int] = set()
        for ch in text:
            if ch.isspace():
                breaks.add(len(out))
            else:
                out.append(ch)
        return cls("".join(out), frozenset(breaks))

    def may_break(self, offset: int) -> bool:
        """Whether a line of the file may end just before ``offset``."""
        return offset in self.breaks or not (_word(self.text[offset - 1]) and _word(self.text[offset]))


class FileIndex:
    """One packed file, as the verifier searches it: built once per verification, on first use."""

    def __init__(self, text: str) -> None:
        self.raw = split_lines(text)
        self.total = len(self.raw)
        self.plain = _Lines([norm_line(line) for line in self.raw])
        self._canon: _Lines | None = None
        self._flat: _Flat | None = None
        self._names: list[frozenset[str]] | None = None
        self._frequency: Counter[str] | None = None
        self._defined: frozenset[str] = frozenset()
        self._enclosing: list[str | None] | None = None

    @property
    def canon(self) -> _Lines:
        if self._canon is None:
            self._canon = _Lines([norm_line(canonical(line)) for line in self.raw])
        return self._canon

    @property
    def flat(self) -> _Flat:
        if self._flat is None:
            self._flat = _Flat(self.canon.lines)
        return self._flat

    def _name_table(self) -> tuple[list[frozenset[str]], Counter[str]]:
        if self._names is None or self._frequency is None:
            self._names = [frozenset(w.lower() for w in _IDENT.findall(x)) for x in self.raw]
            self._frequency = Counter(w for names in self._names for w in names)
            self._defined = frozenset(m.lower() for x in self.raw for m in _DEFINED.findall(x))
        return self._names, self._frequency

    def names(self, line: int) -> frozenset[str]:
        """The identifiers on a line (1-based), lower-cased."""
        return self._name_table()[0][line - 1]

    def enclosing(self, line: int) -> str | None:
        """The name of the innermost function or class a line (1-based) belongs to, lower-cased."""
        if self._enclosing is None:
            owners: list[str | None] = []
            stack: list[tuple[int, str]] = []
            for text in self.raw:
                if text.strip():
                    indent = len(text) - len(text.lstrip())
                    while stack and stack[-1][0] >= indent:
                        stack.pop()
                    defined = _DEFINED.match(text)
                    if defined:
                        stack.append((indent, defined.group(1).lower()))
                owners.append(stack[-1][1] if stack else None)
            self._enclosing = owners
        return self._enclosing[line - 1]

    def rare(self, name: str) -> bool:
        """A name on few enough of the file's lines to say where a finding is."""
        count = self._name_table()[1][name]
        return 0 < count <= max(3, int(self.total * RARE_NAME))

    def _found(self, named: frozenset[str], start: int, end: int) -> frozenset[str]:
        found: set[str] = set()
        for n in range(max(start, 1), min(end, self.total) + 1):
            found |= named & self.names(n)
        return frozenset(found)

    def supports(self, named: frozenset[str], start: int, end: int, *, compete: bool) -> bool:
        """True when lines start..end hold a rare name the finding's text names and, with
        ``compete``, no window of the same size up to SUPPORT_REACH lines away holds those names
        and more of them."""
        named = frozenset(n for n in named if self.rare(n))
        if not named or self.total == 0 or end - start >= SUPPORT_MAX_LINES:
            return False
        own = self._found(named, start, end)
        if not own:
            return False
        if compete:
            # The name of a function or class says which one, not which of its lines.
            local = named - self._defined
            mine = own & local
            for delta in range(-SUPPORT_REACH, SUPPORT_REACH + 1):
                inside = start + delta >= 1 and end + delta <= self.total
                if delta and inside and self._found(local, start + delta, end + delta) > mine:
                    return False
        return True


# --------------------------------------------------------------------------- quotes

_NUMBERED = re.compile(r"^\s*(\d{1,7})\|")
_OPENING_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n`]*$")
_ELLIPSIS = re.compile(r"\.\.\.|…")


@dataclass(frozen=True)
class Quote:
    """A finding's quote, prepared for every way of matching it."""

    exact: tuple[tuple[str, tuple[str, ...]], ...]  # (text as shown, whitespace-normalised lines)
    canon: tuple[tuple[str, ...], ...]  # the repaired variants' lines, canonical
    flat: Needle  # the repaired quote without any whitespace
    pieces: tuple[Needle, ...]  # between the ellipses, without whitespace; () when there are none
    hint: int | None  # the first line a copied "N|" number says the quote starts at
    strength: int  # non-space characters of code (ellipses aside)
    cut: bool  # it ends in an ellipsis: the code it stands for may go on for a line or two

    @property
    def lines(self) -> int:
        return len(self.canon[0]) if self.canon else 1


def _trimmed(lines: Sequence[str]) -> tuple[str, ...]:
    out = [norm_line(line) for line in lines]
    while out and not out[0]:
        out.pop(0)
    while out and not out[-1]:
        out.pop()
    return tuple(out)


# Line numbers as other tools show them ("12 | ", "12: ", "L12 ", "12<tab>"), taken off only when
# every line of the quote has one and they count up one by one: "42: 'x'," may be code.
_OTHER_NUMBERED = re.compile(r"^\s*(L?)(\d{1,7})(\s+\|\s?|:\s|\t|\s{2,}|\s)")


def _counted(lines: Sequence[str]) -> int | None:
    """The first number when every non-blank line starts with another tool's line number and they
    count up one by one (a single line only with a separator other than one space)."""
    found = [_OTHER_NUMBERED.match(line) for line in lines if line.strip()]
    numbers = [int(m.group(2)) for m in found if m is not None]
    if not numbers or len(numbers) < len(found):
        return None
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return None
    if len(numbers) == 1 and all(m is not None and not m.group(1) and m.group(3) == " " for m in found):
        return None
    return numbers[0]


def _unnumbered(lines: Sequence[str]) -> tuple[list[str], int | None]:
    """The lines without copied "N|" numbers (or another tool's, all counting up), and the start
    line the numbers agree on (if any)."""
    first = _counted(lines)
    if first is not None:
        return [_OTHER_NUMBERED.sub("", line, count=1) for line in lines], first
    out: list[str] = []
    starts: set[int] = set()
    first_content: int | None = None
    for j, line in enumerate(lines):
        match = _NUMBERED.match(line)
        content = line[match.end() :] if match else line
        if first_content is None and content.strip():
            first_content = j
        if match:
            starts.add(int(match.group(1)) - j)
        out.append(content)
    offset = first_content or 0
    hint = next(iter(starts)) + offset if len(starts) == 1 else None
    return out, hint


def _unfenced(lines: list[str]) -> list[str]:
    """Without a surrounding Markdown code fence (closed or not), or single backticks round it all."""
    body = list(lines)
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    if body and _OPENING_FENCE.match(body[0]):
        fence = _OPENING_FENCE.match(body[0])
        assert fence is not None
        body.pop(0)
        if body and body[-1].strip().startswith(fence.group(1)[:3]) and not body[-1].strip().strip("`~"):
            body.pop()
    elif len(body) == 1:
        one = body[0].strip()
        if len(one) > 2 and one[0] == one[-1] == "`" and "`" not in one[1:-1]:
            body = [one[1:-1]]
    return body


def prepare_quote(raw: str) -> Quote | None:
    """The quote in each form the matcher tries; None when it holds no code at all."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    unnumbered, _ = _unnumbered(lines)
    exact: list[tuple[str, tuple[str, ...]]] = []
    for shown in (lines, unnumbered):
        wanted = _trimmed(shown)
        if wanted and all(wanted != seen for _, seen in exact):
            exact.append(("\n".join(shown).strip("\n"), wanted))
    repaired, hint = _unnumbered(_unfenced(lines))
    canon: list[tuple[str, ...]] = []
    for variant in (html.unescape("\n".join(repaired)), "\n".join(repaired)):
        wanted = _trimmed(canonical(variant).split("\n"))
        if wanted and wanted not in canon:
            canon.append(wanted)
    if not canon:
        return None
    joined = "\n".join(canon[0])
    flat = Needle.of(joined)
    pieces: tuple[Needle, ...] = ()
    if _ELLIPSIS.search(joined):
        pieces = tuple(p for p in (Needle.of(part) for part in _ELLIPSIS.split(joined)) if p.text)
    strength = sum(len(p.text) for p in pieces) if pieces else len(flat.text)
    cut = bool(pieces) and flat.text.endswith("...")
    return Quote(tuple(exact), tuple(canon), flat, pieces, hint, strength, cut)


@dataclass(frozen=True)
class _Match:
    """How a quote matched (``tier``: 0 line by line as given, 1 line by line after repairs,
    2 with all whitespace ignored, 3 with its ellipses as gaps) and where."""

    tier: int
    spans: list[Span]
    shown: str  # the quote as it matched, for tier 0

    @property
    def location(self) -> str:
        return QUOTE_EXACT if self.tier == 0 else QUOTE_NORMALISED


def _search(quote: Quote, index: FileIndex, lo: int, hi: int, *, tiers: int = 4) -> _Match | None:
    """The first tier in which the quote matches with its first line in lo..hi."""
    for shown, wanted in quote.exact:
        spans = index.plain.spans(wanted, lo, hi)
        if spans:
            return _Match(0, spans, shown)
    for wanted in quote.canon if tiers > 1 else ():
        spans = index.canon.spans(wanted, lo, hi)
        if spans:
            return _Match(1, spans, "")
    if tiers > 2:
        spans = index.flat.spans(quote.flat, lo, hi)
        if spans:
            return _Match(2, spans, "")
    if tiers > 3 and 0 < len(quote.pieces) <= GAP_MAX_PIECES:
        spans = index.flat.gap_spans(quote.pieces, lo, hi)
        if spans:
            return _Match(3, spans, "")
    return None


def _distance(span: Span, start: int, end: int) -> int:
    """Lines between a span and the cited lines (0 when they overlap)."""
    if span[1] < start:
        return start - span[1]
    if span[0] > end:
        return span[0] - end
    return 0


Anchored = tuple[Span, str, str]  # span, location, quote as shown (exact matches)


def anchor_quote(quote: Quote, index: FileIndex, cited: Span | None, fields: Fields) -> Anchored | str | None:
    """Where the quote puts the finding; a reason string when it cannot say (unanchored); None
    when the quote is not in the file at all (or not near enough to count)."""
    total = index.total
    short = quote.strength < SHORT_QUOTE
    # 1. A copied "N|" number names the very line.
    if quote.hint is not None and 1 <= quote.hint <= total:
        found = _search(quote, index, quote.hint, quote.hint)
        if found is not None:
            return found.spans[0], found.location, found.shown
    # 2. At or near the cited lines: the quote's lines win over the cited ones.
    if cited is not None:
        start, end = cited[0], min(cited[1], cited[0] + CITED_SPAN_CAP)
        found = _search(quote, index, start - NEAR_LINES - (quote.lines - 1), end + NEAR_LINES)
        if found is not None:
            span = min(found.spans, key=lambda s: (_distance(s, start, end), abs(s[0] - start), s[0]))
            if found.tier >= 2 and _everywhere(quote, index, tiers=2):
                # Here only with line breaks or ellipses ignored, but line by line elsewhere.
                return "repeated-quote"
            # A short quote found more than once confirms nothing by itself: the finding must
            # name what is at its lines, or the function or class holding just this copy.
            copies = _everywhere(quote, index, tiers=found.tier + 1) if short else []
            if len(copies) > 1:
                named = named_in(fields)
                owner = index.enclosing(span[0])
                holds_one = owner in named and sum(index.enclosing(c[0]) == owner for c in copies) == 1
                if not holds_one and not index.supports(named, span[0], span[1], compete=False):
                    return "weak-quote"
            if found.tier == 3 and quote.cut and span[0] == start and span[1] < end <= span[1] + GAP_LINES:
                span = (start, end)  # the cited lines say where the cut quote ends
            return span, found.location, found.shown
        near = _near_match(quote, index, start, end)
        if near is not None:
            return near, QUOTE_NEAR, ""
    # 3. Anywhere: move the finding only on firm evidence. A quote that matches only with its
    # whitespace or ellipses ignored is too loose to place a finding away from the cited lines.
    found = _search(quote, index, 1, total, tiers=2)
    if found is None:
        return None
    spans = found.spans
    if short or len(spans) >= COMMON_QUOTE:
        return "weak-quote"
    if len(spans) == 1:
        return spans[0], found.location, found.shown
    # The finding names the function or class that holds exactly one of the copies.
    named = named_in(fields)
    owned = [s for s in spans if index.enclosing(s[0]) in named]
    if len(owned) == 1:
        return owned[0], found.location, found.shown
    target = cited if cited is not None else ((quote.hint, quote.hint) if quote.hint else None)
    if target is None:
        return "repeated-quote"
    ranked = sorted(spans, key=lambda s: (_distance(s, *target), s[0]))
    nearest, runner_up = (_distance(s, *target) for s in ranked[:2])
    if nearest <= PICK_REACH and runner_up >= PICK_RATIO * max(nearest, 1):
        return ranked[0], found.location, found.shown
    return "repeated-quote"


def _everywhere(quote: Quote, index: FileIndex, *, tiers: int = 4) -> list[Span]:
    found = _search(quote, index, 1, index.total, tiers=tiers)
    return found.spans if found is not None else []


_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]")


def _near_match(quote: Quote, index: FileIndex, start: int, end: int) -> Span | None:
    """A window of the quote's size at or near the cited lines that nearly matches it."""
    if quote.strength < SHORT_QUOTE or quote.lines > NEAR_MAX_LINES or len(quote.flat.text) > NEAR_MAX_CHARS:
        return None
    wanted = quote.canon[0]
    k = len(wanted)
    wanted_flat = ["".join(line.split()) for line in wanted]
    flat = index.flat
    best: tuple[float, int, Span] | None = None
    best_raw = 0.0
    altered = 0.0  # the best similarity of a window that differs from the quote in its logic
    for s in range(max(1, start - NEAR_LINES), min(end, start + CITED_SPAN_CAP) + NEAR_LINES + 1):
        e = s + k - 1
        if e > index.total:
            break
        lines = flat.parts[s - 1 : e]
        similarity = fuzz.ratio(quote.flat.text, "".join(lines))
        window = index.canon.lines[s - 1 : e]
        if not _same_logic(wanted, window):
            altered = max(altered, similarity)
            continue
        raw = similarity
        if similarity >= NEAR_SIMILARITY and _lines_agree(wanted_flat, lines):
            pass
        elif _renamed(wanted, window):
            similarity = max(similarity, NEAR_SIMILARITY)
        else:
            continue
        rank = (-similarity, abs(s - start), (s, e))
        if best is None or rank < best:
            best, best_raw = rank, raw
    # The quote is closer to other code with its logic changed: it claims that code, altered.
    if best is None or altered >= best_raw:
        return None
    return best[2]


def _lines_agree(wanted: Sequence[str], lines: Sequence[str]) -> bool:
    """At most one line differs, and that one only a little: a made-up line between two real ones
    does not pass."""
    differ = [(a, b) for a, b in zip(wanted, lines, strict=True) if a != b]
    return len(differ) <= 1 and all(fuzz.ratio(a, b) >= NEAR_LINE_SIMILARITY for a, b in differ)


_LOGIC_WORDS = frozenset(keyword.kwlist) | {"true", "false", "null", "nil", "none", "undefined"}


def _same_logic(wanted: Sequence[str], lines: Sequence[str]) -> bool:
    """Whether the quote differs from the lines in names only: an operator, keyword, number or
    literal changed (``==`` for ``!=``, ``is`` for ``is not``, ``True`` for ``False``) makes it
    other code, a made-up finding's, however similar."""
    ta = _TOKEN.findall("\n".join(wanted))
    tb = _TOKEN.findall("\n".join(lines))
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            continue
        changed = [*ta[a0:a1], *tb[b0:b1]]
        if op != "replace" or not all(_IDENT.fullmatch(t) and t.lower() not in _LOGIC_WORDS for t in changed):
            return False
    return True


def _renamed(wanted: Sequence[str], lines: Sequence[str]) -> bool:
    """The lines are the same but for one identifier renamed, and keep at least two other names
    (keywords and ``self`` aside): ``rv = self.run(ctx)`` for ``rv = self.invoke(ctx)``, never
    ``if self.b:`` for ``if self.a:``."""
    renamed: tuple[str, str] | None = None
    kept: set[str] = set()
    for a, b in zip(wanted, lines, strict=True):
        ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
        if len(ta) != len(tb):
            return False
        for x, y in zip(ta, tb, strict=True):
            if x == y:
                if _IDENT.fullmatch(y) and y.lower() not in _NOT_NAMES:
                    kept.add(y)
            elif renamed is None and _IDENT.fullmatch(x) and _IDENT.fullmatch(y):
                renamed = (x, y)
            else:
                return False
    return renamed is not None and len(kept - set(renamed)) >= 2


# --------------------------------------------------------------------------- what a finding names

# Words of review prose that name no code, whatever the code's identifiers happen to be.
_PROSE = frozenset(
    (
        "about", "above", "added", "adding", "after", "again", "against", "all", "also", "always",
        "among", "another", "any", "anything", "are", "around", "because", "been", "before", "being",
        "below", "better", "between", "both", "bug", "bugs", "but", "call", "called", "calls", "can",
        "cannot", "case", "cases", "change", "changes", "check", "checked", "checks", "clean",
        "cleaner", "code", "consider", "could", "current", "data", "does", "doing", "done", "each",
        "edge", "edges", "else", "error", "errors", "even", "ever", "every", "example", "fail",
        "fails", "failure", "first", "fix", "fixed", "fixes", "for", "from", "function", "functions",
        "further", "handle", "handled", "handles", "handling", "have", "here", "how", "however",
        "improve", "improved", "incorrect", "instead", "into", "issue", "issues", "its", "itself",
        "just", "keep", "later", "less", "like", "line", "lines", "logic", "make", "makes", "many",
        "may", "maybe", "method", "methods", "might", "more", "most", "much", "must", "need", "needed",
        "needs", "never", "new", "next", "not", "nothing", "now", "only", "other", "otherwise", "over",
        "part", "possible", "possibly", "potential", "potentially", "problem", "problems", "rather",
        "readability", "really", "refactor", "refactoring", "restructure", "robust", "same", "should",
        "since", "some", "something", "still", "structure", "such", "than", "that", "the", "their",
        "them", "then", "there", "these", "they", "this", "those", "through", "too", "under", "unless",
        "until", "use", "used", "uses", "using", "value", "values", "very", "was", "way", "well",
        "were", "what", "when", "where", "whether", "which", "while", "will", "with", "within",
        "without", "would", "wrong", "yet", "your",
    )
)  # fmt: skip
_CODE_SPAN = re.compile(r"`+([^`]+?)`+")
_ATTRIBUTE_BEFORE = re.compile(r"\w\.")  # obj.name
_CALL_OR_ATTRIBUTE_AFTER = re.compile(r"\(|\.\w")  # name( or name.attr
_NOT_NAMES = frozenset(keyword.kwlist) | {"self", "cls", "none", "true", "false"}


def named_in(fields: Fields) -> frozenset[str]:
    """The identifiers a finding's title, body and suggestion name, lower-cased: everything in
    backticks, and outside them the words that look like code or are not common review prose."""
    text = "\n".join(t for t in (fields.title, fields.body, fields.suggestion or "") if t)
    names: set[str] = set()
    for match in _CODE_SPAN.finditer(text):
        names.update(_IDENT.findall(match.group(1)))
    prose = _CODE_SPAN.sub(" ", text)
    for match in _IDENT.finditer(prose):
        word = match.group()
        before = prose[max(match.start() - 2, 0) : match.start()]
        after = prose[match.end() : match.end() + 2]
        code_like = (
            "_" in word
            or any(c.isdigit() for c in word)
            or any(a.islower() and b.isupper() for a, b in itertools.pairwise(word))
            or bool(_ATTRIBUTE_BEFORE.fullmatch(before))
            or bool(_CALL_OR_ATTRIBUTE_AFTER.match(after))
        )
        if code_like or (len(word) >= 4 and word.lower() not in _PROSE):
            names.add(word)
    return frozenset(w.lower() for w in names if len(w) >= 2 and w.lower() not in _NOT_NAMES)


# --------------------------------------------------------------------------- merging

_RANK = {location: i for i, location in enumerate(LOCATIONS)}


def merge_duplicates(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per group of duplicates: the same category and path, and either the same lines
    and quote (whatever the titles) or the same title on overlapping lines. The most severe finding
    of a group stands for it (then the most certain location, then the first); it keeps every other
    title in ``merged_titles``. Bucketed, so near-linear in the number of findings."""
    parent = list(range(len(findings)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    by_quote: dict[tuple[str, str, int, int, str], int] = {}
    by_title: dict[tuple[str, str, str], list[int]] = {}
    for i, f in enumerate(findings):
        if f.quote:
            key = (f.path, f.category, f.start_line, f.end_line, "".join(f.quote.split()))
            if key in by_quote:
                join(by_quote[key], i)
            else:
                by_quote[key] = i
        by_title.setdefault((f.path, f.category, norm_title(f.title)), []).append(i)
    for members in by_title.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: (findings[i].start_line, findings[i].end_line, i))
        anchor = members[0]
        for i in members[1:]:
            if findings[i].start_line <= findings[anchor].end_line:
                join(anchor, i)
            else:
                anchor = i
    groups: dict[int, list[int]] = {}
    for i in range(len(findings)):
        groups.setdefault(root(i), []).append(i)
    merged: list[Finding] = []
    for members in groups.values():
        best = min(
            members,
            key=lambda i: (-severity_rank(findings[i].severity), _RANK.get(findings[i].location, 9), i),
        )
        titles = [t for i in members if i != best for t in (findings[i].title, *findings[i].merged_titles)]
        kept = findings[best]
        if titles:
            kept = replace(kept, merged_titles=(*kept.merged_titles, *titles))
        merged.append(kept)
    return merged


# --------------------------------------------------------------------------- fingerprints


def _assign_fingerprints(findings: Sequence[Finding], context: _Context) -> list[Finding]:
    # Identical code reported twice in one file gets ":2", ":3" in line order, as GitHub does.
    ordered = sorted(findings, key=lambda f: (f.path, f.start_line, f.end_line, f.category, f.title))
    seen: dict[str, int] = {}
    out: list[Finding] = []
    for f in ordered:
        code = f.quote if f.quote else "\n".join(context.index(f.path).raw[f.start_line - 1 : f.end_line])
        digest = fingerprint(f.path, f.category, f.title, code)
        seen[digest] = seen.get(digest, 0) + 1
        value = digest if seen[digest] == 1 else f"{digest}:{seen[digest]}"
        out.append(replace(f, fingerprint=value))
    return out
