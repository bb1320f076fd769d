"""Spend what the whole-file choice left of the budget, at line granularity.

plan.py chooses whole files and whole outlines, so up to one file's worth of the budget can stay
unused. ``Filler`` then takes the most important files not sent whole, in rank order: a
compressed file gets its elided lines back, from the top, as far as the room allows; a file left
out goes in as its first lines. Every candidate form is rendered and counted exactly, and every
change is checked against the exact count of the whole output before it is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import plan
from .rank import Ranked
from .skeleton import Range, elided_lines

FILL_MIN = 24  # room left (tokens) worth filling with part of a file
FILL_FILES = 4  # files tried for it

Count = Callable[[list[str]], list[int]]
Reread = Callable[[list[str]], Mapping[str, str]]
Render = Callable[[str, str, tuple[Range, ...]], str]  # (path, text, elided) -> section
Output = tuple[tuple[str, ...], int]  # the output's parts and its exact tokens


@dataclass(frozen=True)
class Compressed:
    """A file's compressed section as sent: the section, its tokens, what it leaves out and why."""

    section: str
    tokens: int
    elided: tuple[Range, ...]
    method: str  # "outline" | "head"
    note: str | None

    @property
    def reason(self) -> str:
        what = "outline" if self.method == "outline" else "first lines only"
        return f"{what} ({self.note})" if self.note else what


class Filler:
    """Fills ``choice`` and ``compressed`` (in place) up to the limit."""

    def __init__(
        self,
        choice: dict[str, str],
        compressed: dict[str, Compressed],
        whole: Mapping[str, int],
        render: Render,
        count: Count,
        reread: Reread,
    ) -> None:
        self.choice, self.compressed, self.whole = choice, compressed, whole
        self.render, self.count, self.reread = render, count, reread

    def fill(self, ranking: list[Ranked], limit: int, done: Output, assemble: Callable[[], Output]) -> Output:
        tried = 0
        for r in ranking:
            room = limit - done[1]
            if room < FILL_MIN or tried >= FILL_FILES:
                break
            form = self.choice.get(r.path)
            if form == plan.FULL or (form == plan.COMPRESSED and not self.compressed[r.path].elided):
                continue
            tried += 1
            text = self.reread([r.path]).get(r.path)
            if text is None:
                continue
            before = (self.choice.get(r.path), self.compressed.get(r.path))
            if form == plan.COMPRESSED:
                allowance = self.compressed[r.path].tokens + room
            else:  # its tree line, and maybe the header's note on compressed files, cost too
                allowance = room - plan.tree_line(r.path)
            for _ in range(3):
                if form == plan.COMPRESSED:
                    self._restore(r.path, text, allowance)
                else:
                    self._head(r.path, text, allowance)
                if (self.choice.get(r.path), self.compressed.get(r.path)) == before:
                    break
                trial = assemble()
                if trial[1] <= limit:
                    done = trial
                    break
                self._set(r.path, *before)  # the estimates were short: try again with less
                allowance -= trial[1] - limit
        return done

    def _set(self, path: str, form: str | None, compressed: Compressed | None) -> None:
        if form is None:
            self.choice.pop(path, None)
        else:
            self.choice[path] = form
        if compressed is None:
            self.compressed.pop(path, None)
        else:
            self.compressed[path] = compressed

    @staticmethod
    def _largest(forms: int, tokens: Callable[[int], int], allowance: int) -> int | None:
        """The largest ``i`` in 0..forms-1 whose form costs at most ``allowance`` (forms grow with
        ``i``, roughly: the answer is counted, not assumed)."""
        lo, hi, best = 0, forms - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if tokens(mid) <= allowance:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return best

    def _restore(self, path: str, text: str, allowance: int) -> None:
        c = self.compressed[path]
        if self.whole[path] <= allowance:  # it fits whole after all
            self._set(path, plan.FULL, None)
            return
        hidden = elided_lines(c.elided)
        too_long = self._too_long(text, c.elided, allowance)
        forms: dict[int, tuple[str, int]] = {}

        def tokens(restored: int) -> int:  # the first ``restored`` elided lines shown again
            if restored not in forms:
                forms[restored] = self._section(path, text, show_first(c.elided, restored, too_long))
            return forms[restored][1]

        best = self._largest(hidden - len(too_long), tokens, allowance)
        if best:
            section, n = forms[best]
            note = f"{best} of its {hidden} elided lines shown again to fill the budget"
            note = f"{c.note}; {note}" if c.note else note
            elided = show_first(c.elided, best, too_long)
            self.compressed[path] = Compressed(section, n, elided, c.method, note)

    def _head(self, path: str, text: str, allowance: int) -> None:
        total = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        if total < 2 or allowance <= 0:
            return
        whole = ((1, total),)
        too_long = self._too_long(text, whole, allowance)
        forms: dict[int, tuple[str, int]] = {}

        def tokens(kept: int) -> int:  # the first ``kept`` + 1 lines
            if kept not in forms:
                forms[kept] = self._section(path, text, show_first(whole, kept + 1, too_long))
            return forms[kept][1]

        best = self._largest(total - len(too_long) - 1, tokens, allowance)
        if best is not None:
            section, n = forms[best]
            note = "cut to fit what was left of the budget"
            elided = show_first(whole, best + 1, too_long)
            self._set(path, plan.COMPRESSED, Compressed(section, n, elided, "head", note))

    def _too_long(self, text: str, elided: tuple[Range, ...], allowance: int) -> frozenset[int]:
        """The elided lines that alone cost more than ``allowance`` (a minified line, a data blob):
        they stay elided, and the lines after them are shown again in their stead."""
        lines = text.split("\n")
        # A token is at least one character but for rare scripts: only lines longer than the
        # allowance are counted.
        long = [
            n for a, b in elided for n in range(a, min(b, len(lines)) + 1) if len(lines[n - 1]) > allowance
        ]
        if not long:
            return frozenset()
        counts = self.count([lines[n - 1] for n in long])
        return frozenset(n for n, tokens in zip(long, counts, strict=True) if tokens > allowance)

    def _section(self, path: str, text: str, elided: tuple[Range, ...]) -> tuple[str, int]:
        section = self.render(path, text, elided)
        return section, self.count([section])[0]


def show_first(
    elided: tuple[Range, ...], lines: int, hidden: frozenset[int] = frozenset()
) -> tuple[Range, ...]:
    """``elided`` with its first ``lines`` elided lines shown again, passing over the lines of
    ``hidden``, which stay elided."""
    if hidden:
        out: list[Range] = []
        for a, b in elided:
            for n in range(a, b + 1):
                if lines > 0 and n not in hidden:
                    lines -= 1
                elif out and out[-1][1] == n - 1:
                    out[-1] = (out[-1][0], n)
                else:
                    out.append((n, n))
        return tuple(out)
    kept = []
    for a, b in elided:
        if lines >= b - a + 1:
            lines -= b - a + 1
            continue
        kept.append((a + lines, b))
        lines = 0
    return tuple(kept)
