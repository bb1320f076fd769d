#!/usr/bin/env python3
"""Token cost of line-number formats, measured with the DeepSeek V4 tokenizer on a checkout.

Usage::

    python bench/line_numbers.py CHECKOUT [--intervals 5,10,20]

The files are exactly those ``wholerepo pack CHECKOUT --budget 2000000`` includes (same
discovery, filters and redaction; ``--line-numbers none`` text). Each file is numbered in every
format below and rendered as the xml section wholerepo writes (``<file path="...">`` ... ``</file>``,
``<`` and ``&`` escaped), so the figures are what the prompt really costs; sections add up exactly
(styles.py), so a group's total is the sum of its sections. Reported: tokens and % over the
unnumbered baseline, for src/, testing/ and all files.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from wholerepo import pack
from wholerepo.packer.render import Entry, number_lines, render_section
from wholerepo.tokens import get_tokenizer

Formatter = Callable[[list[str]], list[str]]


def every(fmt: Callable[[int, int], str]) -> Formatter:
    """Every line gets ``fmt(n, width)`` in front (width = digits of the file's last number)."""

    def apply(lines: list[str]) -> list[str]:
        width = len(str(len(lines)))
        return [fmt(n, width) + line for n, line in enumerate(lines, 1)]

    return apply


def sparse(interval: int, sep: str = "|") -> Formatter:
    """Line 1 and every ``interval``-th line get ``N|`` (wholerepo's ``sparse`` mode)."""

    def apply(lines: list[str]) -> list[str]:
        return [f"{n}{sep}{line}" if n == 1 or n % interval == 0 else line for n, line in enumerate(lines, 1)]

    return apply


FORMATS: dict[str, Formatter] = {
    "none (baseline)": lambda lines: lines,
    "every line `N `": every(lambda n, w: f"{n} "),
    "every line `N: `": every(lambda n, w: f"{n}: "),
    "every line `N:`": every(lambda n, w: f"{n}:"),
    "every line `N|` (mode all)": every(lambda n, w: f"{n}|"),
    "every line `N\\t`": every(lambda n, w: f"{n}\t"),
    "every line right-aligned `N| `": every(lambda n, w: f"{n:>{w}}| "),
    "every line right-aligned `N|`": every(lambda n, w: f"{n:>{w}}|"),
}


def numbered(text: str, fmt: Formatter) -> str:
    """Apply ``fmt`` to the lines of ``text`` the way styles.number_lines splits them."""
    if not text:
        return text
    lines = text.split("\n")
    trailing = lines[-1] == ""
    if trailing:
        lines.pop()
    return "\n".join(fmt(lines)) + ("\n" if trailing else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--intervals", default="5,10,20", help="sparse intervals to measure [5,10,20]")
    args = parser.parse_args()

    formats = dict(FORMATS)
    intervals = [int(x) for x in args.intervals.split(",") if x]
    for k in intervals:
        formats[f"sparse `N|`, line 1 + every {k}th" + (" (default)" if k == 10 else "")] = sparse(k)
    if 10 in intervals:
        formats["sparse `N `, line 1 + every 10th"] = sparse(10, " ")

    packed = pack(args.checkout, budget=2_000_000, line_numbers="none", cache=False)
    files = [(f.path, f.text or "", f.lines) for f in packed.included]
    groups = {
        "src/": [i for i, (p, _, _) in enumerate(files) if p.startswith("src/")],
        "testing/": [i for i, (p, _, _) in enumerate(files) if p.startswith("testing/")],
        "all files": list(range(len(files))),
    }
    tk = get_tokenizer("deepseek-v4")

    # The bench's `N|` formatters must be wholerepo's own implementation, byte for byte.
    for path, text, _ in files[:200]:
        assert numbered(text, formats["every line `N|` (mode all)"]) == number_lines(text, "all"), path
        if 10 in intervals:
            assert numbered(text, sparse(10)) == number_lines(text, "sparse", 10), path

    totals: dict[str, dict[str, int]] = {}
    for name, fmt in formats.items():
        sections = [
            render_section("xml", Entry(path, numbered(text, fmt), lines), last=False)
            for path, text, lines in files
        ]
        counts = tk.count_many(sections)
        totals[name] = {g: sum(counts[i] for i in idx) for g, idx in groups.items()}
        print(f"  counted {name}", flush=True)

    base = totals["none (baseline)"]
    header = "| format | " + " | ".join(f"{g} ({len(idx)} files)" for g, idx in groups.items()) + " |"
    print()
    print(header)
    print("|---" * (len(groups) + 1) + "|")
    for name, row in totals.items():
        cells = []
        for g in groups:
            extra = "" if row is base else f" (+{100 * (row[g] - base[g]) / base[g]:.1f} %)"
            cells.append(f"{row[g]:,}{extra}")
        cell = name.replace("|", "\\|")  # a bare | splits a markdown table cell, even inside backticks
        print(f"| {cell} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
