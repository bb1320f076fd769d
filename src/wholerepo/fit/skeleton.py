"""A compressed file as sent: its kept lines, with one marker line for each elided range.

Kept lines are the file's own lines (redacted, as the full text would be sent) and keep their
original numbers: with ``--line-numbers all`` every kept line carries its number; with
``sparse`` line 1, every ``interval``-th line and the first kept line after a marker do; with
``none`` none does. A marker is the elided range's indentation, then ``⋮ lines A-B elided``
(``⋮ line A elided`` for one line); it carries no number of its own, since it is not a line of the
file. The result is the text of a section like any other (styles.py frames it), so its token
count adds up with the others exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

MARK = "⋮"
NOTE = (
    "Files marked compressed show an outline or their first lines: a line"
    f" '{MARK} lines A-B elided' stands for the original lines A to B, which are not shown;"
    " every other line is the file's own, at its original line number."
)

Range = tuple[int, int]


def marker(first: int, last: int, indent: str = "") -> str:
    if first == last:
        return f"{indent}{MARK} line {first} elided"
    return f"{indent}{MARK} lines {first}-{last} elided"


def render(text: str, elided: Sequence[Range], mode: str, interval: int = 10) -> str:
    """``text`` with the ``elided`` line ranges (1-based, inclusive, sorted) replaced by markers,
    numbered as ``mode`` says (all | sparse | none)."""
    lines = text.split("\n")
    trailing = lines[-1] == ""
    if trailing:
        lines.pop()
    out: list[str] = []
    ranges = iter(elided)
    upcoming = next(ranges, None)
    after_marker = False
    n = 1
    total = len(lines)
    while n <= total:
        if upcoming is not None and n == upcoming[0]:
            last = min(upcoming[1], total)
            out.append(marker(n, last, _indent(lines, n, last)))
            n = last + 1
            upcoming = next(ranges, None)
            after_marker = True
            continue
        line = lines[n - 1]
        if mode == "all" or (mode == "sparse" and (n == 1 or n % interval == 0 or after_marker)):
            line = f"{n}|{line}"
        out.append(line)
        after_marker = False
        n += 1
    return "\n".join(out) + ("\n" if trailing or (out and elided and elided[-1][1] >= total) else "")


def _indent(lines: list[str], first: int, last: int) -> str:
    """The indentation of the first non-blank elided line (looking at a few at most)."""
    for i in range(first - 1, min(last, first + 4)):
        line = lines[i]
        if line.strip():
            return line[: len(line) - len(line.lstrip(" \t"))]
    return ""


def elided_lines(elided: Sequence[Range]) -> int:
    return sum(b - a + 1 for a, b in elided)
