"""The dependency graph: each file's imports resolved to files of the repository, plus edges from
a file that uses a name to the few files that define it.

Resolution, per language (paths are the pack's, relative to the packed directory):

- Python: modules from the package layout (``src/`` layouts, package ``__init__``: a module's
  import root is the parent of its outermost package directory), relative imports by directory,
  ``from a import b`` to the submodule ``a.b`` when there is one, else to ``a``.
- JavaScript/TypeScript: relative specifiers with the usual extensions and ``index`` files (a
  ``.js`` specifier also finds the ``.ts`` source), ``compilerOptions.paths``/``baseUrl`` of the
  nearest tsconfig/jsconfig, and workspace packages by their package.json name (entry from
  ``source``/``module``/``main``/``types``, ``lib/`` mapped to ``src/`` when the build is absent).
- Go: import paths under a go.mod's module path, to every non-test file of the package directory.
- Java: fully qualified names from each file's package declaration; ``a.b.*`` to the package.
- Rust: ``mod x;`` to x.rs or x/mod.rs; ``use crate::/self::/super::`` and workspace crates
  (Cargo.toml names) to module files.
- C/C++: ``#include`` beside the includer first, else the file with that path suffix nearest to
  it; a header also leads to its implementation file (``x.h`` -> ``x.c``).

Reference edges follow aider's repo map: a file that uses a name defined in at most
``MAX_DEFINERS`` files of the same language family points at them, the weight shared among them.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .parse import Facts

MAX_DEFINERS = 5  # a name defined in more files says little about who depends on whom
REF_WEIGHT = 0.25  # one shared name, against 1.0 for an import
COMPANION_WEIGHT = 0.5  # header -> implementation

_JS_EXTS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts", ".json")
_JS_SOURCE_FOR = {".js": (".ts", ".tsx"), ".jsx": (".tsx",), ".mjs": (".mts",), ".cjs": (".cts",)}
_FAMILY = {
    "python": "python",
    "javascript": "js",
    "typescript": "js",
    "tsx": "js",
    "go": "go",
    "java": "java",
    "rust": "rust",
    "c": "c",
    "cpp": "c",
}
_C_SOURCE = (".c", ".cc", ".cpp", ".cxx", ".m", ".mm")
_C_HEADER = (".h", ".hh", ".hpp", ".hxx")


@dataclass
class Graph:
    """Weighted edges between the pack's files (by path), and who imports whom."""

    paths: list[str]
    edges: dict[str, dict[str, float]] = field(default_factory=dict)  # src -> dst -> weight
    imports: dict[str, set[str]] = field(default_factory=dict)  # src -> files it imports
    importers: dict[str, set[str]] = field(default_factory=dict)  # dst -> files importing it
    referrers: dict[str, int] = field(default_factory=dict)  # dst -> files using its names

    def add(self, src: str, dst: str, weight: float, imported: bool = True) -> None:
        if src == dst or weight <= 0:
            return
        out = self.edges.setdefault(src, {})
        out[dst] = out.get(dst, 0.0) + weight
        if imported:
            self.imports.setdefault(src, set()).add(dst)
            self.importers.setdefault(dst, set()).add(src)


def build(facts: Mapping[str, Facts]) -> Graph:
    """The graph of the files in ``facts`` (every path of the pack, parsed or not)."""
    paths = sorted(facts)
    graph = Graph(paths)
    index = _Index(paths, facts)
    for path in paths:
        f = facts[path]
        if not f.imports or f.language is None:
            continue
        family = _FAMILY.get(f.language)
        for spec in f.imports:
            targets = index.resolve(family, path, spec)
            for target in targets:
                graph.add(path, target, 1.0 / len(targets))
    for header, source in index.companions():
        graph.add(header, source, COMPANION_WEIGHT, imported=False)
    _reference_edges(graph, facts)
    return graph


def _reference_edges(graph: Graph, facts: Mapping[str, Facts]) -> None:
    definers: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in graph.paths:
        f = facts[path]
        family = _FAMILY.get(f.language or "")
        if family is None:
            continue
        for name in f.defs:
            definers[(family, name)].append(path)
    referrers: dict[str, set[str]] = defaultdict(set)
    for path in graph.paths:
        f = facts[path]
        family = _FAMILY.get(f.language or "")
        if family is None or not f.refs:
            continue
        weights: dict[str, float] = {}
        for name in f.refs:
            found = definers.get((family, name))
            if not found or len(found) > MAX_DEFINERS:
                continue
            share = REF_WEIGHT / len(found)
            for target in found:
                if target != path:
                    weights[target] = weights.get(target, 0.0) + share
        for target, weight in sorted(weights.items()):
            graph.add(path, target, min(weight, 1.0), imported=False)
            referrers[target].add(path)
    graph.referrers = {p: len(s) for p, s in referrers.items()}


class _Index:
    """Lookup tables for resolving imports, built once per graph."""

    def __init__(self, paths: list[str], facts: Mapping[str, Facts]) -> None:
        self.files = set(paths)
        self.facts = facts
        self.dirs: dict[str, list[str]] = defaultdict(list)
        self.by_name: dict[str, list[str]] = defaultdict(list)  # basename -> paths
        for p in paths:
            self.dirs[posixpath.dirname(p)].append(p)
            self.by_name[p.rsplit("/", 1)[-1]].append(p)
        self._python: dict[str, list[str]] | None = None
        self._manifests: dict[str, list[tuple[str, dict[str, object]]]] | None = None
        self._java: dict[str, str] | None = None
        self._java_packages: dict[str, list[str]] | None = None

    # -- shared --------------------------------------------------------------------------------

    def resolve(self, family: str | None, path: str, spec: str) -> list[str]:
        if family == "python":
            return self._python_import(path, spec)
        if family == "js":
            return self._js_import(path, spec)
        if family == "go":
            return self._go_import(spec)
        if family == "java":
            return self._java_import(spec)
        if family == "rust":
            return self._rust_import(path, spec)
        if family == "c":
            return self._c_include(path, spec)
        return []

    def manifests(self, kind: str) -> list[tuple[str, dict[str, object]]]:
        """(directory, declaration) of every manifest declaring ``kind`` (go, npm, ts, crate)."""
        if self._manifests is None:
            found: dict[str, list[tuple[str, dict[str, object]]]] = defaultdict(list)
            for p in sorted(self.files):
                provides = self.facts[p].provides
                if not provides:
                    continue
                try:
                    data = json.loads(provides)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    for key in ("go", "npm", "ts", "crate"):
                        if key in data:
                            found[key].append((posixpath.dirname(p), data))
            self._manifests = found
        return self._manifests.get(kind, [])

    def nearest(self, path: str, candidates: Iterable[str]) -> str | None:
        """The candidate sharing the longest directory prefix with ``path`` (then shortest, first)."""
        here = path.split("/")[:-1]

        def key(c: str) -> tuple[int, int, str]:
            parts = c.split("/")[:-1]
            common = 0
            for a, b in zip(here, parts, strict=False):
                if a != b:
                    break
                common += 1
            return (-common, len(parts), c)

        ordered = sorted(candidates, key=key)
        return ordered[0] if ordered else None

    def first_file(self, base: str, suffixes: Iterable[str]) -> str | None:
        for suffix in suffixes:
            candidate = posixpath.normpath(base + suffix) if base + suffix else ""
            if candidate in self.files:
                return candidate
        return None

    # -- Python --------------------------------------------------------------------------------

    def python_modules(self) -> dict[str, list[str]]:
        if self._python is None:
            modules: dict[str, list[str]] = defaultdict(list)
            packages = {posixpath.dirname(p) for p in self.files if p.endswith("/__init__.py")}
            if "__init__.py" in self.files:
                packages.add("")
            for p in sorted(self.files):
                if not p.endswith((".py", ".pyi")):
                    continue
                stem = p.rsplit(".", 1)[0]
                parts = stem.split("/")
                if parts[-1] == "__init__":
                    parts.pop()
                directory = posixpath.dirname(p)
                top = directory  # the outermost package directory holding p
                while top and top in packages and posixpath.dirname(top) in packages:
                    top = posixpath.dirname(top)
                root = posixpath.dirname(top) if top in packages and top else directory
                skip = len(root.split("/")) if root else 0
                names = [".".join(parts[skip:])]
                if skip:
                    names.append(".".join(parts))  # the path from the repository root, too
                for name in names:
                    if name:
                        modules[name].append(p)
            self._python = modules
        return self._python

    def _python_module(self, importer: str, name: str) -> str | None:
        found = self.python_modules().get(name)
        if not found:
            return None
        return found[0] if len(found) == 1 else self.nearest(importer, found)

    def _python_import(self, path: str, spec: str) -> list[str]:
        module, _, names = spec.partition(":")
        wanted = [n for n in names.split(",") if n and n != "*"] if names else []
        if module.startswith("."):
            level = len(module) - len(module.lstrip("."))
            base = posixpath.dirname(path)
            for _ in range(level - 1):
                base = posixpath.dirname(base)
            rest = module[level:].replace(".", "/")
            where = posixpath.join(base, rest) if rest else base
            found = [self._python_path(posixpath.join(where, n)) for n in wanted]
            hits = [f for f in found if f is not None]
            if len(hits) < len(wanted) or not wanted:
                own = self._python_path(where)
                if own is not None:
                    hits.append(own)
            return sorted(set(hits))
        targets: list[str] = []
        if ":" in spec:
            for n in wanted:
                sub = self._python_module(path, f"{module}.{n}")
                if sub is not None:
                    targets.append(sub)
            if len(targets) == len(wanted) and wanted:
                return sorted(set(targets))
        parts = module.split(".")
        for end in range(len(parts), 0, -1):
            module_file = self._python_module(path, ".".join(parts[:end]))
            if module_file is not None:
                targets.append(module_file)
                break
        return sorted(set(targets))

    def _python_path(self, base: str) -> str | None:
        if not base or base == ".":
            return self.first_file("", ("__init__.py",))
        return self.first_file(base, (".py", ".pyi", "/__init__.py", "/__init__.pyi"))

    # -- JavaScript / TypeScript -----------------------------------------------------------------

    def _js_file(self, base: str) -> str | None:
        base = posixpath.normpath(base)
        if base in self.files and not base.endswith("/"):
            return base
        stem, ext = posixpath.splitext(base)
        if ext in _JS_SOURCE_FOR:
            found = self.first_file(stem, _JS_SOURCE_FOR[ext])
            if found is not None:
                return found
        found = self.first_file(base, _JS_EXTS)
        if found is not None:
            return found
        return self.first_file(base, tuple("/index" + e for e in _JS_EXTS))

    def _js_import(self, path: str, spec: str) -> list[str]:
        if not spec:
            return []
        if spec.startswith("."):
            found = self._js_file(posixpath.join(posixpath.dirname(path), spec))
            return [found] if found else []
        if spec.startswith("/"):
            return []
        for resolved in (self._ts_paths(path, spec), self._workspace(spec)):
            if resolved is not None:
                return [resolved]
        return []

    def _ts_paths(self, path: str, spec: str) -> str | None:
        configs = [(d, data) for d, data in self.manifests("ts") if d == "" or path.startswith(d + "/")]
        for directory, data in sorted(configs, key=lambda c: -len(c[0])):
            options = data["ts"]
            if not isinstance(options, dict):
                continue
            base = posixpath.join(directory, str(options.get("baseUrl") or "."))
            paths = options.get("paths") or {}
            if isinstance(paths, dict):
                for pattern, targets in sorted(paths.items(), key=lambda kv: -len(kv[0])):
                    prefix, star, suffix = pattern.partition("*")
                    if star:
                        if not (spec.startswith(prefix) and spec.endswith(suffix)):
                            continue
                        middle = spec[len(prefix) : len(spec) - len(suffix)]
                    elif spec != pattern:
                        continue
                    else:
                        middle = ""
                    for target in targets if isinstance(targets, list) else []:
                        found = self._js_file(posixpath.join(base, str(target).replace("*", middle)))
                        if found is not None:
                            return found
            if options.get("baseUrl"):
                found = self._js_file(posixpath.join(base, spec))
                if found is not None:
                    return found
        return None

    def _workspace(self, spec: str) -> str | None:
        parts = spec.split("/")
        name_len = 2 if spec.startswith("@") else 1
        name, sub = "/".join(parts[:name_len]), "/".join(parts[name_len:])
        for directory, data in self.manifests("npm"):
            if data.get("npm") != name:
                continue
            prefix = directory + "/" if directory else ""
            if sub:
                tries = [sub, "src/" + sub]
                if sub.startswith(("lib/", "dist/")):
                    tries.append("src/" + sub.split("/", 1)[1])
                for attempt in tries:
                    found = self._js_file(prefix + attempt)
                    if found is not None:
                        return found
                continue
            entry = data.get("entry")
            fields = [v for v in entry.values() if isinstance(v, str)] if isinstance(entry, dict) else []
            for value in [*fields, "src/index", "index"]:
                value = value.removeprefix("./")
                attempts = [value]
                if value.startswith(("lib/", "dist/", "build/")):
                    attempts.append("src/" + value.split("/", 1)[1])
                for attempt in attempts:
                    found = self._js_file(prefix + attempt)
                    if found is not None:
                        return found
        return None

    # -- Go -------------------------------------------------------------------------------------

    def _go_import(self, spec: str) -> list[str]:
        best: tuple[int, str, str] | None = None
        for directory, data in self.manifests("go"):
            module = str(data["go"])
            inside = spec == module or spec.startswith(module + "/")
            if inside and (best is None or len(module) > best[0]):
                best = (len(module), directory, spec[len(module) :].lstrip("/"))
        if best is None:
            return []
        _, directory, rest = best
        package = posixpath.join(directory, rest) if rest else directory
        package = posixpath.normpath(package) if package else ""
        if package == ".":
            package = ""
        return sorted(
            p for p in self.dirs.get(package, []) if p.endswith(".go") and not p.endswith("_test.go")
        )

    # -- Java -----------------------------------------------------------------------------------

    def _java_index(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        if self._java is None or self._java_packages is None:
            classes: dict[str, str] = {}
            packages: dict[str, list[str]] = defaultdict(list)
            for p in sorted(self.files):
                if not p.endswith(".java"):
                    continue
                provides = self.facts[p].provides
                package = ""
                if provides:
                    try:
                        package = str(json.loads(provides).get("java") or "")
                    except (ValueError, AttributeError):
                        package = ""
                stem = p.rsplit("/", 1)[-1][: -len(".java")]
                classes.setdefault(f"{package}.{stem}" if package else stem, p)
                packages[package].append(p)
            self._java, self._java_packages = classes, packages
        return self._java, self._java_packages

    def _java_import(self, spec: str) -> list[str]:
        classes, packages = self._java_index()
        if spec.endswith(".*"):
            package = spec[:-2]
            if package in packages:
                return sorted(packages[package])
            spec = package  # import static a.b.C.*: the class a.b.C
        parts = spec.split(".")
        for end in range(len(parts), max(len(parts) - 3, 0), -1):
            found = classes.get(".".join(parts[:end]))
            if found is not None:
                return [found]
        return []

    # -- Rust -----------------------------------------------------------------------------------

    def _crate_of(self, path: str) -> tuple[str, str] | None:
        """(crate directory, crate name) of the nearest Cargo.toml above ``path``."""
        best: tuple[str, str] | None = None
        for directory, data in self.manifests("crate"):
            if (directory == "" or path.startswith(directory + "/")) and (
                best is None or len(directory) > len(best[0])
            ):
                best = (directory, str(data["crate"]).replace("-", "_"))
        return best

    def _rust_module_file(self, base: str) -> str | None:
        return self.first_file(base, (".rs", "/mod.rs"))

    def _rust_dir_of(self, path: str) -> str:
        """The directory holding ``path``'s submodules."""
        directory, name = posixpath.split(path)
        if name in ("mod.rs", "lib.rs", "main.rs"):
            return directory
        return posixpath.join(directory, name[: -len(".rs")])

    def _rust_import(self, path: str, spec: str) -> list[str]:
        if spec.startswith("mod "):
            found = self._rust_module_file(posixpath.join(self._rust_dir_of(path), spec[4:]))
            return [found] if found else []
        parts = [p for p in spec.split("::") if p]
        if not parts:
            return []
        head = parts[0]
        if head in ("self", "super"):
            base = self._rust_dir_of(path)
            while parts and parts[0] in ("self", "super"):
                if parts[0] == "super":
                    base = posixpath.dirname(base)
                parts = parts[1:]
        elif head == "crate":
            crate = self._crate_of(path)
            if crate is None:
                return []
            base = posixpath.join(crate[0], "src")
            parts = parts[1:]
        else:
            base = ""
            for directory, data in self.manifests("crate"):
                if str(data["crate"]).replace("-", "_") == head:
                    base = posixpath.join(directory, "src")
                    break
            else:
                return []
            parts = parts[1:]
        for end in range(len(parts), 0, -1):
            found = self._rust_module_file(posixpath.join(base, *parts[:end]))
            if found is not None:
                return [found]
        root = self.first_file(base, ("/lib.rs", "/main.rs", "/mod.rs", ".rs"))
        return [root] if root is not None and root != path else []

    # -- C / C++ --------------------------------------------------------------------------------

    def _c_include(self, path: str, spec: str) -> list[str]:
        quoted, name = spec[0] == '"', spec[1:]
        if not name:
            return []
        if quoted:
            beside = posixpath.normpath(posixpath.join(posixpath.dirname(path), name))
            if beside in self.files:
                return [beside]
        if name.startswith("/"):
            return []
        candidates = [
            p for p in self.by_name.get(name.rsplit("/", 1)[-1], []) if p == name or p.endswith("/" + name)
        ]
        found = self.nearest(path, candidates)
        return [found] if found is not None else []

    def companions(self) -> list[tuple[str, str]]:
        """(header, implementation) pairs: x.h and x.c (or .cc, .cpp...) in the same directory."""
        pairs = []
        for p in sorted(self.files):
            stem, ext = posixpath.splitext(p)
            if ext not in _C_HEADER:
                continue
            source = self.first_file(stem, _C_SOURCE)
            if source is not None:
                pairs.append((p, source))
        return pairs
