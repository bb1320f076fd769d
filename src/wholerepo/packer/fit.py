"""Fit files into a token budget: rank them by value, take the best that fit. Pure.

Order of value: README, manifests and entry points; then source; tests; configuration; docs;
everything else. Within a class, shallower paths first, then by path, so the choice is
deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

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
    extra: int = 0  # its share of the header (its tree line), an estimate refined by the caller


def rank_order(items: Sequence[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (rank_class(i.path), i.path.count("/"), i.path))


def select(items: Sequence[Item], budget: int) -> set[str]:
    """Greedy by rank: take every file that still fits, skipping those that do not."""
    chosen: set[str] = set()
    used = 0
    for item in rank_order(items):
        cost = item.tokens + item.extra
        if used + cost <= budget:
            chosen.add(item.path)
            used += cost
    return chosen
