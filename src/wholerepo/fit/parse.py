"""What fit/ learns from one file's text: its imports, definitions, references and outline.

``analyze(path, text)`` parses the text once with tree-sitter (languages.py) and returns
``Facts``: raw import strings (graph.py resolves them to files), the names the file defines and
the names it uses, and the line ranges its outline elides (skeleton.py renders them). A file
without a grammar, or one the grammar cannot parse, gets a *head* instead of an outline: its first
lines, the rest elided, with the reason in ``note``. Nothing here raises on bad input.

Facts are a pure function of (path's extension, text, this code, the grammar versions): the
packer caches them per file content (cache.py, table ``parses``).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

from .languages import Grammar, grammar, language_of

# An outline is offered only when it saves at least this share of the file's characters.
MIN_SAVING = 0.2
MIN_LINES = 6  # shorter files are sent whole or not at all
BODY_MIN = 2  # a body of fewer lines stays
LITERAL_MIN = 12  # a data literal of fewer inner lines stays
DOC_KEEP = 4  # lines of a docstring or block comment an outline keeps (its first paragraph)
HEAD_MIN_CHARS = 800  # a head keeps at least this many characters' worth of whole lines ...
HEAD_MAX_CHARS = 6000  # ... and at most this many, aiming at HEAD_SHARE of the file
HEAD_SHARE = 0.15
MAX_REFS = 2000  # distinct referenced names kept per file
_NAME = re.compile(r"[A-Za-z_$][\w$]*")

Range = tuple[int, int]  # 1-based, inclusive


@dataclass(frozen=True)
class Facts:
    """What one file's text says about it. ``elided`` empty: no compressed form."""

    language: str | None
    method: str  # "outline" | "head" | "none"
    elided: tuple[Range, ...] = ()
    note: str | None = None  # why a head instead of an outline
    imports: tuple[str, ...] = ()
    defs: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()
    provides: str | None = None  # what a manifest or a Java file declares (JSON), for graph.py

    def meta_json(self) -> str:
        return json.dumps([self.language, self.method, [list(r) for r in self.elided], self.note])

    def graph_json(self) -> str:
        return json.dumps([list(self.imports), list(self.defs), list(self.refs), self.provides])

    @classmethod
    def from_json(cls, meta: str, graph: str | None) -> Facts:
        language, method, elided, note = json.loads(meta)
        imports: list[str] = []
        defs: list[str] = []
        refs: list[str] = []
        provides = None
        if graph is not None:
            imports, defs, refs, provides = json.loads(graph)
        return cls(
            language,
            method,
            tuple((int(a), int(b)) for a, b in elided),
            note,
            tuple(imports),
            tuple(defs),
            tuple(refs),
            provides,
        )


def analyze(path: str, text: str) -> Facts:
    """Parse ``text`` (the file at ``path``) and say what it imports, defines, uses and elides."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    language = language_of(path)
    loaded = grammar(language) if language is not None else None
    if loaded is None:
        what = "no grammar installed" if language is not None else "no outline for this file type"
        return _head(lines, language, what, provides=manifest_facts(path, text))
    data = text.encode("utf-8", "surrogatepass")
    tree = loaded.parser.parse(data)
    if tree.root_node.has_error and language == "c" and path.endswith(".h"):
        cpp = grammar("cpp")
        if cpp is not None:
            other = cpp.parser.parse(data)
            if not other.root_node.has_error:
                loaded, tree, language = cpp, other, "cpp"
    try:
        captures = loaded.cursor().captures(tree.root_node)
    except Exception:  # a query the binding cannot run on this tree: no facts, plain head
        return _head(lines, language, "the parser failed")
    names = {_text(n) for n in captures.get("ref", [])}
    package = next((_text(n) for n in captures.get("package", [])), None)
    facts: dict[str, Any] = {
        "imports": _imports(loaded, captures.get("import", [])),
        "defs": tuple(sorted({_text(n) for n in captures.get("def", [])})),
        "refs": tuple(sorted(n for n in names if len(n) >= 3 and _NAME.fullmatch(n))[:MAX_REFS]),
        "provides": json.dumps({"java": package}) if package else None,
    }
    note = None
    broken = tree.root_node.has_error
    if broken:
        note = f"syntax error at line {_first_error_row(tree.root_node) + 1}"
    if len(lines) < MIN_LINES:
        return Facts(language, "none", note=note, **facts)
    if broken:  # outline only what parsed cleanly; a body holding the error stays whole
        captures = {name: [n for n in nodes if _clean(n)] for name, nodes in captures.items()}
    ranges = _elisions(loaded.name, lines, captures)
    if _saves_enough(lines, ranges):
        if note is not None:
            note += ": the code around it is kept whole"
        return Facts(language, "outline", ranges, note, **facts)
    if broken:
        return _head(lines, language, note or "", **facts)
    return Facts(language, "none", **facts)


def manifest_facts(path: str, text: str) -> str | None:
    """What a go.mod, package.json, tsconfig/jsconfig or Cargo.toml declares, as JSON."""
    name = path.rsplit("/", 1)[-1]
    try:
        if name == "go.mod":
            found = re.search(r"^module\s+(\S+)", text, re.MULTILINE)
            return json.dumps({"go": found.group(1).strip('"')}) if found else None
        if name == "package.json":
            data = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("name"), str):
                return None
            entry = {
                k: data[k] for k in ("source", "module", "main", "types") if isinstance(data.get(k), str)
            }
            return json.dumps({"npm": data["name"], "entry": entry})
        if name.startswith(("tsconfig", "jsconfig")) and name.endswith(".json"):
            data = json.loads(_json_lenient(text))
            options = data.get("compilerOptions", {}) if isinstance(data, dict) else {}
            paths = options.get("paths") if isinstance(options, dict) else None
            base = options.get("baseUrl") if isinstance(options, dict) else None
            if not isinstance(paths, dict) and not isinstance(base, str):
                return None
            return json.dumps({"ts": {"baseUrl": base, "paths": paths if isinstance(paths, dict) else {}}})
        if name == "Cargo.toml":
            crate = tomllib.loads(text).get("package", {}).get("name")
            return json.dumps({"crate": crate}) if isinstance(crate, str) else None
    except (ValueError, AttributeError):  # not valid JSON / TOML: declares nothing
        return None
    return None


def _json_lenient(text: str) -> str:
    """JSON with comments and trailing commas (tsconfig's dialect) made plain JSON."""
    out = re.sub(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', lambda m: m.group(1) or "", text, flags=re.DOTALL)
    return re.sub(r",(\s*[}\]])", r"\1", out)


def _clean(node: Any) -> bool:
    """No syntax error inside ``node`` or around it."""
    if node.has_error:
        return False
    parent = node.parent
    while parent is not None:
        if parent.is_error:
            return False
        parent = parent.parent
    return True


# -- outlines ------------------------------------------------------------------------------------


def _elisions(language: str, lines: list[str], captures: dict[str, list[Any]]) -> tuple[Range, ...]:
    """Line ranges to elide: function bodies, long docstrings and block comments past their first
    paragraph, and the insides of long data literals."""
    found: list[Range] = []
    for node in captures.get("body", []):
        start, end = node.start_point[0], node.end_point[0]
        if language == "python":
            parent = node.parent
            if parent is None or start == parent.start_point[0]:
                continue  # a one-line def: nothing to elide
            first = node.named_children[0] if node.named_child_count else None
            if first is not None and _is_docstring(first):  # its summary stays
                start = _doc_cut(lines, first.start_point[0], first.end_point[0]) + 1
            if end - start + 1 >= BODY_MIN:
                found.append((start + 1, end + 1))
        elif end - start - 1 >= BODY_MIN:  # braces: keep the lines with { and }
            found.append((start + 2, end))
    for node in captures.get("doc", []):
        start, end = node.start_point[0], node.end_point[0]
        cut = _doc_cut(lines, start, end)
        if end - cut >= BODY_MIN:
            found.append((cut + 2, end + 1))
    for node in captures.get("literal", []):
        start, end = node.start_point[0], node.end_point[0]
        if end - start - 1 >= LITERAL_MIN:
            found.append((start + 2, end))
    found = [(a, min(b, len(lines))) for a, b in found if a <= min(b, len(lines))]
    return _merge(found)


def _is_docstring(node: Any) -> bool:
    return (
        node is not None
        and node.type == "expression_statement"
        and node.named_child_count > 0
        and node.named_children[0].type == "string"
    )


def _doc_cut(lines: list[str], start: int, end: int) -> int:
    """The last line (0-based) of a docstring or comment spanning ``start``-``end`` that an
    outline keeps: its first paragraph, at most DOC_KEEP lines."""
    last = min(end, start + DOC_KEEP - 1)
    for row in range(start + 1, last + 1):
        if row < len(lines) and not lines[row].strip(" \t*#/"):
            return row - 1
    return last


def _merge(ranges: list[Range]) -> tuple[Range, ...]:
    merged: list[Range] = []
    for a, b in sorted(ranges, key=lambda r: (r[0], -r[1])):
        if merged and a <= merged[-1][1] + 1:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b)
            continue
        merged.append((a, b))
    return tuple(merged)


def _saves_enough(lines: list[str], ranges: tuple[Range, ...]) -> bool:
    if not ranges:
        return False
    total = sum(len(line) + 1 for line in lines)
    gone = sum(len(lines[i]) + 1 for a, b in ranges for i in range(a - 1, b))
    return gone >= MIN_SAVING * total


def _head(lines: list[str], language: str | None, note: str, **facts: Any) -> Facts:
    """The first lines of the file, the rest elided (no outline available)."""
    total = sum(len(line) + 1 for line in lines)
    if len(lines) < MIN_LINES:
        return Facts(language, "none", note=note, **facts)
    room = min(max(HEAD_MIN_CHARS, int(total * HEAD_SHARE)), HEAD_MAX_CHARS)
    kept = used = 0
    for line in lines:
        if used + len(line) + 1 > room:
            break
        used += len(line) + 1
        kept += 1
    if total - used < MIN_SAVING * total:
        return Facts(language, "none", note=note, **facts)
    return Facts(language, "head", ((kept + 1, len(lines)),), note, **facts)


def _first_error_row(node: Any) -> int:
    """The line (0-based) of the first syntax error below ``node``."""
    while True:
        if node.is_error or node.is_missing:
            return int(node.start_point[0])
        child = next((c for c in node.children if c.has_error or c.is_missing), None)
        if child is None:
            return int(node.start_point[0])
        node = child


# -- imports -------------------------------------------------------------------------------------


def _text(node: Any) -> str:
    return str(node.text.decode("utf-8", "replace"))


def _imports(loaded: Grammar, nodes: list[Any]) -> tuple[str, ...]:
    """Raw import strings, in a per-language form graph.py resolves."""
    found: list[str] = []
    language = loaded.name
    for node in sorted(nodes, key=lambda n: n.start_byte):
        if language == "python":
            found.extend(_python_import(node))
        elif language in ("javascript", "typescript", "tsx", "go"):
            found.append(_text(node)[1:-1])
        elif language == "java":
            found.extend(_java_import(node))
        elif language == "rust":
            found.extend(_rust_import(node))
        else:  # c, cpp: '"x.h' or '<x.h'
            raw = _text(node).strip()
            if len(raw) > 2:
                found.append(raw[0] + raw[1:-1])
    return tuple(dict.fromkeys(i for i in found if i))


def _python_import(node: Any) -> list[str]:
    """``import a.b`` -> ["a.b"]; ``from .x import y, z`` -> [".x:y,z"]."""
    if node.type == "future_import_statement":
        return []
    if node.type == "import_statement":
        return [_dotted(c) for c in node.children_by_field_name("name")]
    module = node.child_by_field_name("module_name")
    if module is None:
        return []
    names = [_dotted(c) for c in node.children_by_field_name("name")]
    if any(c.type == "wildcard_import" for c in node.children):
        names.append("*")
    return [_text(module).replace(" ", "") + ":" + ",".join(n for n in names if n)]


def _dotted(node: Any) -> str:
    if node.type == "aliased_import":
        name = node.child_by_field_name("name")
        return _text(name) if name is not None else ""
    return _text(node).replace(" ", "")


def _java_import(node: Any) -> list[str]:
    text = " ".join(_text(node).split())
    text = text.removeprefix("import ").removesuffix(";").strip()
    text = text.removeprefix("static ").replace(" ", "")
    return [text] if text else []


def _rust_import(node: Any) -> list[str]:
    if node.type == "mod_item":
        if node.child_by_field_name("body") is not None:
            return []  # an inline module: nothing to resolve
        name = node.child_by_field_name("name")
        return ["mod " + _text(name)] if name is not None else []
    if node.type == "extern_crate_declaration":
        name = node.child_by_field_name("name")
        return [_text(name)] if name is not None else []
    text = re.sub(r"\s*([{},:])\s*", r"\1", " ".join(_text(node).split()))
    return _use_paths(text)


def _use_paths(tree: str) -> list[str]:
    """``a::{b,c::d}`` -> ["a::b", "a::c::d"]; ``a as x`` -> ["a"]."""
    if "{" not in tree:
        return [tree.split(" as ", 1)[0]]
    head, _, rest = tree.partition("{")
    inner = rest[: rest.rfind("}")] if "}" in rest else rest
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current += ch
    parts.append(current)
    out: list[str] = []
    for part in parts:
        if not part:
            continue
        if part == "self":
            out.append(head.rstrip(":"))
            continue
        out.extend(_use_paths(head + part))
    return out
