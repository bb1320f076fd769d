"""What the detectors share: a secret's shape, the placeholder, and where in a text to look.

Rules run only on the lines that can hold a token (a run of 16+ token characters with a digit
or a capital in it), found with ``bytes.translate`` and ``bytes.find``, both in C.
"""

from __future__ import annotations

import bisect
import string
from collections.abc import Iterable
from dataclasses import dataclass


def placeholder(kind: str) -> str:
    """The text a secret of ``kind`` is replaced with."""
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True, slots=True)
class Secret:
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
    pieces, at = [], 0
    for a, b, kind in sorted((a, b, s.kind) for s in secrets for a, b in s.spans):
        pieces += [text[at:a], placeholder(kind)]
        at = b
    pieces.append(text[at:])
    return "".join(pieces)


def resolve(text: str, found: list[Secret]) -> list[Secret]:
    """Drop secrets that overlap an earlier (higher-priority) one; spans never hold a newline."""
    taken: list[tuple[int, int]] = []  # sorted, disjoint
    kept: list[Secret] = []
    for secret in found:
        spans = [(a, b) for a, b in secret.spans if b > a and "\n" not in text[a:b]]
        if not spans or any(_overlaps(taken, a, b) for a, b in spans):
            continue
        for a, b in spans:
            bisect.insort(taken, (a, b))
        kept.append(Secret(secret.kind, tuple(spans)))
    kept.sort(key=lambda s: s.spans[0])
    return kept


def _overlaps(taken: list[tuple[int, int]], a: int, b: int) -> bool:
    i = bisect.bisect_left(taken, (a, b))
    return (i > 0 and taken[i - 1][1] > a) or (i < len(taken) and taken[i][0] < b)
