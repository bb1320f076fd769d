"""Fit files into a token budget: rank them by value, take the best that fit, assemble the text.

Order of value: README, manifests and entry points; then source; tests; configuration; docs;
everything else. Within a class, shallower paths first, then by path, so the choice is
deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import BudgetError
from ..git.listing import Listing
from ..settings import Settings
from ..tokens.counter import TokenCounter
from . import render as styles

if TYPE_CHECKING:
    from .run import _Work

MANIFESTS = frozenset(
    {
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "package.json",
        "Cargo.toml",
        "go.mod",
        "pom.xml",
        "build.gradle",
        "build.gradle.kts",
        "Gemfile",
        "composer.json",
        "CMakeLists.txt",
        "Makefile",
        "Dockerfile",
        "requirements.txt",
        "tsconfig.json",
        "deno.json",
        "mix.exs",
        "Package.swift",
        "meson.build",
    }
)
ENTRY_POINTS = frozenset(
    {
        "__main__.py",
        "main.py",
        "cli.py",
        "app.py",
        "manage.py",
        "main.go",
        "main.rs",
        "lib.rs",
        "index.js",
        "index.ts",
        "main.ts",
        "main.js",
        "server.js",
        "Main.java",
        "Program.cs",
    }
)
SOURCE_EXT = frozenset(
    [
        "py",
        "pyi",
        "js",
        "jsx",
        "mjs",
        "cjs",
        "ts",
        "tsx",
        "rs",
        "go",
        "java",
        "kt",
        "kts",
        "scala",
        "c",
        "h",
        "cc",
        "cpp",
        "cxx",
        "hpp",
        "hh",
        "cs",
        "rb",
        "php",
        "swift",
        "m",
        "mm",
        "lua",
        "r",
        "jl",
        "ex",
        "exs",
        "erl",
        "hs",
        "ml",
        "mli",
        "clj",
        "dart",
        "zig",
        "nim",
        "sh",
        "bash",
        "zsh",
        "ps1",
        "sql",
        "vue",
        "svelte",
        "pl",
        "pm",
    ]
)
CONFIG_EXT = frozenset(
    ["toml", "yaml", "yml", "json", "ini", "cfg", "conf", "xml", "properties", "gradle", "env"]
)
DOC_EXT = frozenset(["md", "rst", "txt", "adoc", "org", "tex"])
_TEST = re.compile(
    r"(^|/)(tests?|testing|spec|__tests__|testdata|fixtures?)/|(^|/)(test_[^/]*|[^/]*_test\.\w+|[^/]*\.(test|spec)\.\w+|conftest\.py)$"
)
_DOC_DIR = re.compile(r"(^|/)(docs?|documentation|examples?|changelog\.d)/", re.IGNORECASE)


def rank_class(path: str) -> int:
    """0 = most valuable. README, manifests and entry points; source; tests; config; docs; rest."""
    name = path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    depth = path.count("/")
    if (depth == 0 and name.lower().startswith("readme")) or name in MANIFESTS:
        return 0
    if name in ENTRY_POINTS:
        return 0
    if _TEST.search(path):
        return 2
    if _DOC_DIR.search(path):
        return 4
    if ext in SOURCE_EXT:
        return 1
    if ext in CONFIG_EXT or name.startswith("."):
        return 3
    if ext in DOC_EXT or name.upper().startswith(("CHANGELOG", "LICENSE", "AUTHORS", "CONTRIBUTING")):
        return 4
    return 5


@dataclass(frozen=True, slots=True)
class Item:
    """A candidate for the budget: its path and what including it costs."""

    path: str
    tokens: int  # the file's section


def rank_order(items: Sequence[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (rank_class(i.path), i.path.count("/"), i.path))


def select(items: Sequence[Item], budget: int) -> set[str]:
    """Greedy by rank: take every file that still fits, skipping those that do not."""
    chosen: set[str] = set()
    used = 0
    for item in rank_order(items):
        cost = item.tokens
        if used + cost <= budget:
            chosen.add(item.path)
            used += cost
    return chosen


def header(listing: Listing, paths: list[str], settings: Settings, skipped: int, dropped: int) -> str:
    notes = []
    if not listing.in_git:
        notes.append("The directory is not a git repository: files were chosen by its .gitignore files.")
    if skipped:
        notes.append(f"{skipped} listed files are not shown (binary, generated, too large, ...).")
    if dropped:
        notes.append(f"{dropped} files did not fit the token budget and are not shown.")
    header = styles.Header(
        styles.render_tree(paths), tuple(notes), settings.line_numbers, settings.line_number_interval
    )
    return styles.render_header(settings.style, header, len(paths))


def fit(
    listing: Listing, work: list[_Work], kept: list[_Work], settings: Settings, counter: TokenCounter
) -> tuple[set[str], tuple[str, ...], int]:
    """Choose the files that fit and render the output; returns (chosen, text, exact tokens)."""
    style, limit = settings.style, settings.pack_budget
    skipped = len(work) - len(kept)
    by_path = {w.candidate.path: w for w in kept}
    footer = styles.render_footer(style)

    def assemble(chosen: set[str]) -> tuple[tuple[str, ...], int]:
        paths = sorted(chosen)
        head = counter.defang(header(listing, paths, settings, skipped, len(kept) - len(chosen)))
        sections = [by_path[p].section for p in paths]
        if style == "json" and paths:
            # The last array element has no trailing comma: "},\n" becomes "}\n".
            sections[-1] = sections[-1][:-2] + "\n"
            head_n, last_n, foot_n = counter.count_many([head, sections[-1], footer])
            body = sum(by_path[p].tokens for p in paths[:-1]) + last_n
        else:
            head_n, foot_n = counter.count_many([head, footer])
            body = sum(by_path[p].tokens for p in paths)
        return (head, *sections, footer), head_n + body + foot_n

    everything = set(by_path)
    text, n = assemble(everything)
    if n <= limit:
        return everything, text, n

    _empty_text, empty_n = assemble(set())
    if empty_n > limit:
        raise BudgetError(
            f"budget of {limit} tokens is too small for even the prompt's frame ({empty_n} tokens)",
            "raise --budget",
        )
    # The header with every file in its tree bounds the header of any subset from above.
    full_header = n - sum(w.tokens for w in kept)
    items = [Item(p, w.tokens) for p, w in by_path.items()]
    chosen = select(items, max(0, limit - full_header))
    # Fill what the smaller tree left free, estimating each extra file's tree line, then verify.
    text, n = assemble(chosen)
    for item in rank_order(items):
        if item.path in chosen:
            continue
        estimate = item.tokens + len(item.path) // 2 + 4
        if n + estimate <= limit:
            chosen.add(item.path)
            n += estimate
    text, n = assemble(chosen)
    order = rank_order([i for i in items if i.path in chosen])
    while n > limit and order:
        chosen.discard(order.pop().path)
        text, n = assemble(chosen)
    return chosen, text, n
