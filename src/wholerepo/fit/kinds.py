"""What kind of file a path names: the file-name and extension lists rank.py ranks with, and a
coarse class order. Pure."""

from __future__ import annotations

import re

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
    """0 = most valuable. The README and manifests at the root, entry points; source; tests;
    config; docs; rest. A manifest below the root (a Makefile in doc/) is not a project's."""
    name = path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    depth = path.count("/")
    if depth == 0 and (name.lower().startswith("readme") or name in MANIFESTS):
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
