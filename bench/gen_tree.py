#!/usr/bin/env python3
"""Generate a large git repository with a known import structure, for bench_fit.py.

Usage::

    python bench/gen_tree.py DEST [--files 100000] [--seed 1]

The tree is a monorepo of ``packages/pkgNNN/`` (Python) and ``web/appNNN/`` (TypeScript), each
with source modules that import a few modules of their own package and of a shared ``core``
package, tests importing the module they cover, fixtures, docs and a few scripts: about 60 % source,
25 % tests and fixtures, 15 % docs and other files, 300-600 bytes each (so ~45 MB for 100,000
files, the size of babel or git/git). Deterministic for a seed. The result is committed in one
commit (git's index is what wholerepo lists), which takes a minute or two for 100,000 files.
"""

from __future__ import annotations

import argparse
import random
import subprocess
from pathlib import Path


def python_module(rng: random.Random, package: str, name: str, imports: list[str]) -> str:
    lines = [f'"""{package}.{name}: generated module."""\n', *(f"import {i}\n" for i in imports)]
    for f in range(rng.randint(2, 4)):
        lines.append(f"\n\ndef {name}_fn{f}(value):\n    total = value\n")
        lines.extend(f"    total = total * {k} + {f}\n" for k in range(rng.randint(3, 8)))
        lines.append("    return total\n")
    return "".join(lines)


def ts_module(rng: random.Random, name: str, imports: list[str]) -> str:
    lines = [f'import {{ helper }} from "{i}";\n' for i in imports]
    for f in range(rng.randint(2, 4)):
        lines.append(f"\nexport function {name}Fn{f}(value: number): number {{\n  let total = value;\n")
        lines.extend(f"  total = total * {k} + {f};\n" for k in range(rng.randint(3, 8)))
        lines.append("  return total;\n}\n")
    return "".join(lines)


def generate(dest: Path, files: int, seed: int) -> int:
    rng = random.Random(seed)
    written = 0

    def write(rel: str, text: str) -> None:
        nonlocal written
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written += 1

    write("README.md", "# generated monorepo\n\nFor wholerepo's benchmarks.\n")
    write("pyproject.toml", '[project]\nname = "generated"\nversion = "0.0.0"\n')
    write("package.json", '{"name": "generated", "private": true}\n')
    write("tsconfig.json", '{"compilerOptions": {"baseUrl": ".", "paths": {"@core/*": ["web/core/*"]}}}\n')
    for i in range(40):
        write(f"packages/core/core/m{i:02d}.py", python_module(rng, "core", f"m{i:02d}", ["os"]))
        write(f"web/core/c{i:02d}.ts", ts_module(rng, f"c{i:02d}", []))
    write("packages/core/core/__init__.py", "")
    per_package = 50  # files in one package, tests and docs included
    index = 0
    while written < files:
        kind = "packages" if index % 2 == 0 else "web"
        name = f"pkg{index:04d}" if kind == "packages" else f"app{index:04d}"
        base = f"{kind}/{name}"
        count = min(per_package, files - written)
        modules = max(1, int(count * 0.6))
        for m in range(modules):
            if kind == "packages":
                imports = [f"{name}.mod{rng.randrange(modules)}" for _ in range(2)] + [
                    f"core.m{rng.randrange(40):02d}"
                ]
                write(f"{base}/{name}/mod{m}.py", python_module(rng, name, f"mod{m}", imports))
            else:
                imports = [f"./mod{rng.randrange(modules)}", f"@core/c{rng.randrange(40):02d}"]
                write(f"{base}/src/mod{m}.ts", ts_module(rng, f"mod{m}", imports))
        tests = int(count * 0.25)
        for t in range(tests):
            covered = t % modules
            if kind == "packages":
                text = python_module(rng, name, f"test_mod{t}", [f"{name}.mod{covered}"])
                write(f"{base}/tests/test_mod{t}.py", text)
            else:
                write(f"{base}/test/mod{t}.test.ts", ts_module(rng, f"test{t}", [f"../src/mod{covered}"]))
        for d in range(count - modules - tests - (kind == "packages")):
            write(f"{base}/docs/page{d}.md", f"# {name}\n\n" + "Words about it.\n" * rng.randint(5, 20))
        if kind == "packages":
            write(f"{base}/{name}/__init__.py", "")
        index += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dest", type=Path)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.dest.exists() and any(args.dest.iterdir()):
        raise SystemExit(f"{args.dest} exists and is not empty")
    args.dest.mkdir(parents=True, exist_ok=True)
    n = generate(args.dest, args.files, args.seed)
    git = ["git", "-C", str(args.dest), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "--no-gpg-sign", "-m", "generated"], check=True)
    print(f"{n} files in {args.dest}")


if __name__ == "__main__":
    main()
