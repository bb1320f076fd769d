"""What the detectors share: a secret's shape, the placeholder, and where in a text to look.

Rules run only on the lines that can hold a token (a run of 16+ token characters with a digit
or a capital in it), found with ``bytes.translate`` and ``bytes.find``, both in C.
"""

from __future__ import annotations

import bisect
import string
from collections.abc import Iterable
from typing import NamedTuple


def placeholder(kind: str) -> str:
    """The text a secret of ``kind`` is replaced with."""
    return f"[REDACTED:{kind}]"


class Secret(NamedTuple):
    """One secret: its kind and the spans of text it occupies (a PEM block has one per line)."""

    kind: str
    spans: tuple[tuple[int, int], ...]


_RUN_MIN = 16
_RUN_CHARS = (string.ascii_letters + string.digits + "+/=_-").encode()
_RUN_TABLE = bytes(0x78 if c in _RUN_CHARS else 0x20 for c in range(256))
_PLAIN_RUN_CHARS = (string.ascii_lowercase + "+/=_-").encode()


def long_run_lines(text: str) -> list[tuple[int, int]]:
    """Spans (without the newline) of the lines that may hold a token-shaped secret.

    That is a run of 16+ base64/token characters with a digit or a capital in it: every token
    format has one, while snake_case names, the bulk of long runs in code, do not.
    """
    ascii_only = text.isascii()
    data = text.encode("ascii") if ascii_only else text.encode("utf-8", "surrogatepass")
    mapped = data.translate(_RUN_TABLE)
    needle = b"x" * _RUN_MIN
    spans: list[tuple[int, int]] = []
    i = mapped.find(needle)
    while i >= 0:
        j = mapped.find(b" ", i)
        if j < 0:
            j = len(data)
        if not data[i:j].translate(None, _PLAIN_RUN_CHARS):
            i = mapped.find(needle, j)
            continue
        a = data.rfind(b"\n", 0, i) + 1
        b = data.find(b"\n", j)
        if b < 0:
            b = len(data)
        spans.append((a, b))
        i = mapped.find(needle, b)
    if spans and not ascii_only:  # byte offsets become character offsets
        chars, at, out = 0, 0, []
        for a, b in spans:
            chars += len(data[at:a].decode("utf-8", "surrogatepass"))
            start = chars
            chars += len(data[a:b].decode("utf-8", "surrogatepass"))
            out.append((start, chars))
            at = b
        spans = out
    return spans


def lines_with(text: str, markers: Iterable[str]) -> list[tuple[int, int]]:
    """Spans of the lines that hold any of ``markers``, in order, without duplicates."""
    found: set[tuple[int, int]] = set()
    for marker in markers:
        i = text.find(marker)
        while i >= 0:
            a = text.rfind("\n", 0, i) + 1
            b = text.find("\n", i)
            if b < 0:
                b = len(text)
            found.add((a, b))
            i = text.find(marker, b)
    return sorted(found)


class Lines:
    """Some of a text's lines joined by newlines, with a map back to the text's offsets."""

    def __init__(self, text: str, spans: list[tuple[int, int]]) -> None:
        self.spans = spans
        self.text = "\n".join(text[a:b] for a, b in spans)
        self.starts: list[int] = []
        at = 0
        for a, b in spans:
            self.starts.append(at)
            at += b - a + 1

    def locate(self, pos: int) -> tuple[int, str, int]:
        """For joined offset ``pos``: the text offset, the line that holds it, the column."""
        i = bisect.bisect_right(self.starts, pos) - 1
        a, b = self.spans[i]
        start = self.starts[i]
        return a + pos - start, self.text[start : start + b - a], pos - start


def lowered(text: str) -> str:
    """``text`` in lower case with every offset kept (a few characters lower to two)."""
    low = text.lower()
    if len(low) != len(text):
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    return low


def replace(text: str, secrets: list[Secret]) -> str:
    """``text`` with each secret's spans replaced by its placeholder (spans must not overlap)."""
    pieces: list[str] = []
    at = 0
    marks: dict[str, str] = {}
    for a, b, kind in sorted((a, b, s.kind) for s in secrets for a, b in s.spans):
        mark = marks.get(kind) or marks.setdefault(kind, placeholder(kind))
        pieces += (text[at:a], mark)
        at = b
    pieces.append(text[at:])
    return "".join(pieces)


def resolve(text: str, found: list[Secret]) -> list[Secret]:
    """Drop secrets that overlap an earlier (higher-priority) one; spans never hold a newline."""
    return resolve_all(text, found)[0]


def resolve_all(text: str, found: list[Secret]) -> tuple[list[Secret], bool]:
    """``resolve``, and whether every candidate was kept whole (none dropped or cut)."""
    whole = True
    starts: list[int] = []  # the spans taken: sorted, disjoint, as two parallel lists
    ends: list[int] = []
    kept: list[Secret] = []
    for secret in found:
        spans = secret.spans
        if len(spans) != 1 or spans[0][1] <= spans[0][0] or text.find("\n", *spans[0]) >= 0:
            clean = tuple((a, b) for a, b in spans if b > a and text.find("\n", a, b) < 0)
            if clean != spans:
                whole = False
                if not clean:
                    continue
                spans = clean
                secret = Secret(secret.kind, spans)
        if len(spans) == 1 and (not ends or spans[0][0] >= ends[-1]):  # after all taken: append
            starts.append(spans[0][0])
            ends.append(spans[0][1])
            kept.append(secret)
            continue
        places = []
        for a, b in spans:
            i = bisect.bisect_left(starts, a)
            if (i > 0 and ends[i - 1] > a) or (i < len(starts) and starts[i] < b):
                break
            places.append(i)
        else:
            for (a, b), i in sorted(zip(spans, places, strict=True), key=lambda p: (-p[1], -p[0][0])):
                starts.insert(i, a)
                ends.insert(i, b)
            kept.append(secret)
            continue
        whole = False
    kept.sort(key=lambda s: s.spans[0])
    return kept, whole
