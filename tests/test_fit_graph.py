"""fit/: the import graph and the ranking, on generated repositories with a known structure.

Each language gets a repository where one file is changed (against HEAD), imports two files and
is imported by one (or more, where the language's module system says so), beside a cluster of
unrelated files that import each other heavily (so they are more central). With ``--base HEAD``
the changed file ranks first and exactly its imports and importers rank right after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import MakeRepo
from wholerepo.cli import main


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def body(name: str, lines: int = 24, comment: str = "#", indent: str = "    ") -> str:
    """A function body long enough for an outline to elide."""
    return "".join(f"{indent}{comment} step {i} of {name}: keep the work going along\n" for i in range(lines))


def py_fn(name: str) -> str:
    return f"def {name}(value):\n    total = value\n" + body(name) + "    return total\n"


def c_fn(name: str, ret: str = "int") -> str:
    return (
        f"{ret} {name}(int value)\n{{\n\tint total = value;\n"
        + body(name, comment="//", indent="\t")
        + "\treturn total;\n}\n"
    )


def js_fn(name: str) -> str:
    return (
        f"export function {name}(value) {{\n  let total = value;\n"
        + body(name, comment="//", indent="  ")
        + "  return total;\n}\n"
    )


def go_fn(name: str) -> str:
    return (
        f"func {name}(value int) int {{\n\ttotal := value\n"
        + body(name, comment="//", indent="\t")
        + "\treturn total\n}\n"
    )


def rs_fn(name: str) -> str:
    return (
        f"pub fn {name}(value: i64) -> i64 {{\n    let total = value;\n"
        + body(name, comment="//")
        + "    total\n}\n"
    )


def java_class(package: str, name: str, imports: list[str]) -> str:
    head = f"package {package};\n\n" + "".join(f"import {i};\n" for i in imports)
    method = (
        f"  public int run{name}(int value) {{\n    int total = value;\n"
        + body(name, comment="//")
        + "    return total;\n  }\n"
    )
    return head + f"\npublic class {name} {{\n" + method + "}\n"


Layout = tuple[dict[str, str], str, set[str]]  # files, the changed file, its imports and importers


def cluster(path: str, hub: str, other: str, fn: Callable[[int], str]) -> dict[str, str]:
    """Six files that import the hub and each other: more central than anything near the change.
    ``path``, ``other`` and ``fn`` are formatted with the file's number ``i`` / another's ``j``."""
    return {
        path.format(i=i): hub + "".join(other.format(j=j) for j in range(6) if j != i) + "\n" + fn(i)
        for i in range(6)
    }


def python_repo() -> Layout:
    files = {
        "pyproject.toml": '[project]\nname = "proj"\n',
        "src/proj/__init__.py": "",
        "src/proj/changed.py": "from .dep_a import a_fn\nimport proj.sub.dep_b\n\n" + py_fn("changed_fn"),
        "src/proj/dep_a.py": py_fn("a_fn"),
        "src/proj/sub/__init__.py": "",
        "src/proj/sub/dep_b.py": py_fn("b_fn"),
        "src/proj/user.py": "from proj.changed import changed_fn\n\n" + py_fn("user_fn"),
        "src/proj/hub.py": py_fn("hub_fn"),
    }
    files |= cluster("src/proj/other{i}.py", "from proj import hub\n", "from proj import other{j}\n",
                     lambda i: py_fn(f"other_fn{i}"))  # fmt: skip
    return files, "src/proj/changed.py", {"src/proj/dep_a.py", "src/proj/sub/dep_b.py", "src/proj/user.py"}


def javascript_repo() -> Layout:
    files = {
        "package.json": '{"name": "proj", "version": "1.0.0"}\n',
        "lib/changed.js": 'import { aFn } from "./dep_a.js";\nconst b = require("./dep_b");\n\n'
        + js_fn("changedFn"),
        "lib/dep_a.js": js_fn("aFn"),
        "lib/dep_b/index.js": js_fn("bFn"),
        "lib/user.mjs": 'import { changedFn } from "./changed.js";\n\n' + js_fn("userFn"),
        "lib/hub.js": js_fn("hubFn"),
    }
    files |= cluster("lib/other{i}.js", 'import { hubFn } from "./hub.js";\n',
                     'import {{ o{j} }} from "./other{j}.js";\n', lambda i: js_fn(f"o{i}"))  # fmt: skip
    return files, "lib/changed.js", {"lib/dep_a.js", "lib/dep_b/index.js", "lib/user.mjs"}


def typescript_repo() -> Layout:
    files = {
        "tsconfig.json": (  # with a comment and trailing commas, as tsconfig allows
            '{\n  // paths\n  "compilerOptions": {"baseUrl": ".", "paths": {"@lib/*": ["src/lib/*"]},},\n}\n'
        ),
        "src/changed.ts": 'import { aFn } from "@lib/dep_a";\nimport { bFn } from "./dep_b.js";\n\n'
        + js_fn("changedFn"),
        "src/lib/dep_a.ts": js_fn("aFn"),
        "src/dep_b.ts": js_fn("bFn"),
        "src/view/user.tsx": 'import { changedFn } from "../changed";\n\n' + js_fn("userFn"),
        "src/hub.ts": js_fn("hubFn"),
    }
    files |= cluster("src/other{i}.ts", 'import { hubFn } from "./hub";\n',
                     'import {{ o{j} }} from "./other{j}";\n', lambda i: js_fn(f"o{i}"))  # fmt: skip
    return files, "src/changed.ts", {"src/lib/dep_a.ts", "src/dep_b.ts", "src/view/user.tsx"}


def go_repo() -> Layout:
    files = {
        "go.mod": "module example.com/proj\n\ngo 1.22\n",
        "internal/core/changed.go": 'package core\n\nimport (\n\t"fmt"\n\t"example.com/proj/internal/depa"\n'
        '\t"example.com/proj/depb"\n)\n\n' + go_fn("Changed"),
        "internal/depa/a.go": "package depa\n\n" + go_fn("A"),
        "depb/b.go": "package depb\n\n" + go_fn("B"),
        "cmd/user/main.go": 'package main\n\nimport "example.com/proj/internal/core"\n\n' + go_fn("User"),
        "hub/hub.go": "package hub\n\n" + go_fn("Hub"),
    }
    hub = 'import (\n\t"example.com/proj/hub"\n'
    others = cluster("other{i}/o.go", hub, '\t"example.com/proj/other{j}"\n', lambda i: go_fn(f"O{i}"))
    files |= {
        p: f"package {p.split('/')[0]}\n\n" + text.replace("\n\nfunc", ")\n\nfunc", 1)
        for p, text in others.items()
    }
    return files, "internal/core/changed.go", {"internal/depa/a.go", "depb/b.go", "cmd/user/main.go"}


def java_repo() -> Layout:
    root = "src/main/java/com/ex"
    files = {
        "pom.xml": "<project><artifactId>proj</artifactId></project>\n",
        f"{root}/core/Changed.java": java_class(
            "com.ex.core", "Changed", ["com.ex.dep.DepA", "com.ex.dep.DepB"]
        ),
        f"{root}/dep/DepA.java": java_class("com.ex.dep", "DepA", []),
        f"{root}/dep/DepB.java": java_class("com.ex.dep", "DepB", []),
        f"{root}/app/User.java": java_class("com.ex.app", "User", ["com.ex.core.Changed"]),
        f"{root}/hub/Hub.java": java_class("com.ex.hub", "Hub", []),
    }
    for i in range(6):
        imports = ["com.ex.hub.Hub", *(f"com.ex.other.Other{j}" for j in range(6) if j != i)]
        files[f"{root}/other/Other{i}.java"] = java_class("com.ex.other", f"Other{i}", imports)
    expected = {f"{root}/dep/DepA.java", f"{root}/dep/DepB.java", f"{root}/app/User.java"}
    return files, f"{root}/core/Changed.java", expected


def rust_repo() -> Layout:
    mods = ["changed", "dep_a", "user", "hub", *(f"other{i}" for i in range(6))]
    files = {
        "Cargo.toml": '[package]\nname = "proj"\nversion = "0.1.0"\n',
        "src/lib.rs": "".join(f"pub mod {m};\n" for m in mods),
        "src/changed.rs": "use crate::dep_a::a_fn;\nuse crate::dep_a::nested::deep;\n\n"
        + rs_fn("changed_fn"),
        "src/dep_a/mod.rs": "pub mod nested;\n\n" + rs_fn("a_fn"),
        "src/dep_a/nested.rs": rs_fn("deep"),
        "src/user.rs": "use crate::changed::changed_fn;\n\n" + rs_fn("user_fn"),
        "src/hub.rs": rs_fn("hub_fn"),
    }
    files |= cluster("src/other{i}.rs", "use crate::hub::hub_fn;\n", "use crate::other{j}::o{j};\n",
                     lambda i: rs_fn(f"o{i}"))  # fmt: skip
    # lib.rs declares `mod changed;`: it imports the changed file too.
    return files, "src/changed.rs", {"src/dep_a/mod.rs", "src/dep_a/nested.rs", "src/user.rs", "src/lib.rs"}


def c_repo(ext: str = "c", header: str = "h") -> Layout:
    files = {
        "Makefile": "all:\n\tcc -o proj src/*.c\n",
        f"include/changed.{header}": f'#include "dep_a.{header}"\n#include "util/dep_b.{header}"\n\n'
        + c_fn("changed_fn"),
        f"include/dep_a.{header}": c_fn("a_fn"),
        f"include/util/dep_b.{header}": c_fn("b_fn"),
        f"src/user.{ext}": f'#include <stdio.h>\n#include "changed.{header}"\n\n' + c_fn("user_fn"),
        f"src/hub.{header}": c_fn("hub_fn"),
    }
    hub, other = f'#include "hub.{header}"\n', f'#include "other{{j}}.{header}"\n'
    files |= cluster(f"src/other{{i}}.{header}", hub, other, lambda i: c_fn(f"o{i}"))
    expected = {f"include/dep_a.{header}", f"include/util/dep_b.{header}", f"src/user.{ext}"}
    return files, f"include/changed.{header}", expected


LANGUAGES: dict[str, Callable[[], Layout]] = {
    "python": python_repo,
    "javascript": javascript_repo,
    "typescript": typescript_repo,
    "go": go_repo,
    "java": java_repo,
    "rust": rust_repo,
    "c": c_repo,
    "cpp": lambda: c_repo("cpp", "hpp"),
}


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_a_changed_file_its_imports_and_its_importers_rank_first(
    make_repo: MakeRepo, tmp_path: Path, language: str
) -> None:
    files, changed, neighbours = LANGUAGES[language]()
    root = make_repo(files, name=language)
    (root / changed).write_text(files[changed] + "\n// or # changed in the working tree\n", encoding="utf-8")
    whole = json.loads(_pack(root, tmp_path, "--budget", "10000000").read_text())
    budget = whole["prompt_tokens"] * 2 // 5  # over the budget: fitting ranks every file
    manifest = json.loads(_pack(root, tmp_path, "--budget", str(budget), "--base", "HEAD").read_text())
    ranked = sorted((f for f in manifest["files"] if f.get("rank")), key=lambda f: f["rank"])
    order = [f["path"] for f in ranked]
    assert order[0] == changed, order
    assert ranked[0]["why"][0] == "changed since HEAD"
    assert set(order[1 : 1 + len(neighbours)]) == neighbours, order
    for f in ranked[1 : 1 + len(neighbours)]:
        assert any(w.startswith(("imported by", "imports")) and "(changed)" in w for w in f["why"]), f
    # The unrelated cluster is more central than the neighbours: only the focus put them first.
    others = [f for f in ranked if "other" in f["path"] or "hub" in f["path"].lower()]
    assert all(f["rank"] > 1 + len(neighbours) for f in others)
    assert manifest["prompt_tokens"] <= budget


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_without_a_focus_the_most_imported_file_is_the_most_central(
    make_repo: MakeRepo, tmp_path: Path, language: str
) -> None:
    files, _changed, _neighbours = LANGUAGES[language]()
    root = make_repo(files, name=language)
    result = run("pack", str(root), "-o", str(tmp_path / "out.txt"), "--explain-ranking", "-q")
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()[:1].isdigit()]
    source = [line.split()[3] for line in lines if "(source" in line]
    # hub is imported by all six "other" files; every other source file by at most five.
    assert "hub" in source[0].lower(), lines


def _pack(root: Path, tmp_path: Path, *flags: str) -> Path:
    manifest = tmp_path / "manifest.json"
    result = run(
        "pack", str(root), "-o", str(tmp_path / "out.txt"), "--manifest", str(manifest), "-q", *flags
    )
    assert result.exit_code == 0, result.stderr
    return manifest
