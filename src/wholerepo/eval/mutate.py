"""Bug and refactor mutations of Python source through ``ast``, as exact text edits.

Every mutation is found on the syntax tree and applied as a replacement of the exact source
span of its nodes, so the rest of each file stays byte-identical. A mutation knows where its
ground truth lies: the edited code, or for a changed callee the unchanged caller in another file.
Candidates come out sorted by a stable key; the planter picks among them with a seeded RNG.

Kinds (``KINDS``): off-by-one, inverted-condition, argument-order, callee-change (a function's
parameters swapped or renamed, callers updated everywhere but in one other file, whose calls now
break), removed-none-check, resource-leak, missing-await, string-sql, swallowed-exception; and the
clean refactors ``clean-rename`` (a local variable or a private function, every use renamed) and
``clean-extract`` (an expression moved into a new module-level function).
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

BUG_KINDS = (
    "off-by-one",
    "inverted-condition",
    "argument-order",
    "callee-change",
    "removed-none-check",
    "resource-leak",
    "missing-await",
    "string-sql",
    "swallowed-exception",
)
CLEAN_KINDS = ("clean-rename", "clean-extract")
KINDS = BUG_KINDS + CLEAN_KINDS

# category, severity of each bug kind's expected issue
GRADES = {
    "off-by-one": ("bug", "medium"),
    "inverted-condition": ("bug", "high"),
    "argument-order": ("bug", "high"),
    "callee-change": ("bug", "high"),
    "removed-none-check": ("bug", "medium"),
    "resource-leak": ("bug", "medium"),
    "missing-await": ("bug", "high"),
    "string-sql": ("security", "high"),
    "swallowed-exception": ("bug", "medium"),
}

MAX_BROKEN_CALLS = 2  # a changed callee leaves at most this many calls broken in the other file
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_OPEN_CALLS = frozenset({"open", "io.open", "gzip.open", "bz2.open", "lzma.open", "codecs.open"})
_RENAMES = {
    "value": "val",
    "result": "outcome",
    "data": "content",
    "items": "entries",
    "path": "location",
    "line": "row",
    "name": "label",
    "rv": "result",
    "ret": "result",
    "res": "result",
    "val": "value",
    "v": "value",
    "s": "text",
    "b": "data",
    "d": "mapping",
    "e": "error",
    "exc": "error",
    "f": "handle",
    "fp": "handle",
    "fn": "func",
    "i": "index",
    "idx": "index",
    "n": "count",
    "k": "key",
    "x": "item",
    "obj": "instance",
    "tmp": "temporary",
    "buf": "buffer",
    "msg": "message",
    "sig": "signature",
    "ts": "timestamp",
    "num": "number",
    "cur": "cursor",
    "conn": "connection",
}


# -- source and positions -----------------------------------------------------------------------


@dataclass
class Module:
    """One parsed file: its text, tree and line offsets (ast columns are UTF-8 byte offsets)."""

    path: str
    text: str
    tree: ast.Module
    starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.starts = [0] + [m.end() for m in _LINE_BREAK.finditer(self.text)]
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node

    @property
    def is_test(self) -> bool:
        return is_test_path(self.path)

    def offset(self, line: int, col: int) -> int:
        start = self.starts[line - 1]
        end = self.starts[line] if line < len(self.starts) else len(self.text)
        return start + len(self.text[start:end].encode("utf-8")[:col].decode("utf-8", "replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        end_line = getattr(node, "end_lineno", None)
        end_col = getattr(node, "end_col_offset", None)
        assert end_line is not None and end_col is not None
        return self.offset(node.lineno, node.col_offset), self.offset(end_line, end_col)  # type: ignore[attr-defined]

    def source(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]

    def line_span(self, first: int, last: int) -> tuple[int, int]:
        """Offsets of whole lines ``first``..``last`` (the last line's break included)."""
        end = self.starts[last] if last < len(self.starts) else len(self.text)
        return self.starts[first - 1], end

    def line_text(self, line: int) -> str:
        start, end = self.line_span(line, line)
        return self.text[start:end]

    def indent(self, line: int) -> str:
        text = self.line_text(line)
        return text[: len(text) - len(text.lstrip(" \t"))]

    def starts_line(self, node: ast.stmt) -> bool:
        """True when only indentation precedes the statement on its first line."""
        return self.line_text(node.lineno)[: node.col_offset].strip() == ""

    def ends_line(self, node: ast.AST) -> bool:
        end_line = getattr(node, "end_lineno", 0)
        end = self.span(node)[1]
        rest = self.text[end : self.line_span(end_line, end_line)[1]]
        return rest.strip() == "" or rest.strip().startswith("#")

    def newline(self) -> str:
        match = _LINE_BREAK.search(self.text)
        return match.group(0) if match else "\n"

    def line_of(self, offset: int) -> int:
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    def enclosing(self, node: ast.AST, kinds: tuple[type[ast.AST], ...]) -> ast.AST | None:
        current = self.parents.get(node)
        while current is not None and not isinstance(current, kinds):
            current = self.parents.get(current)
        return current


def is_test_path(path: str) -> bool:
    pure = PurePosixPath(path)
    return (
        pure.name.startswith("test_")
        or pure.name.endswith("_test.py")
        or pure.name == "conftest.py"
        or any(part in ("tests", "test", "testing") for part in pure.parts[:-1])
    )


def is_source_path(path: str) -> bool:
    """Where bugs are planted: Python files that are not tests, docs, examples or setup scripts."""
    pure = PurePosixPath(path)
    skip = ("docs", "doc", "examples", "example", "benchmarks", "bench", "scripts")
    return (
        pure.suffix == ".py"
        and not is_test_path(path)
        and pure.name not in ("setup.py", "noxfile.py", "conftest.py")
        and not any(part in skip or part.startswith(".") for part in pure.parts[:-1])
    )


# -- edits and mutations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    path: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Mutation:
    kind: str
    key: str  # stable and unique: ordering, deduplication
    edits: tuple[Edit, ...]
    description: str
    cross_file: bool = False
    # Where the expected issues are, when not at the first edit: (path, start line, end line) in
    # a file the mutation leaves unchanged (a changed callee's broken callers).
    locations: tuple[tuple[str, int, int], ...] = ()
    lines: int | None = None  # the first lines of the first edit (None: all of it)
    lines_before: int = 0  # lines just above the first edit that belong to the issue

    @property
    def clean(self) -> bool:
        return self.kind in CLEAN_KINDS

    @property
    def site(self) -> str:
        """The place it touches first (two mutations at one site are never both planted)."""
        first = self.edits[0]
        return f"{first.path}:{first.start}"


def apply(texts: dict[str, str], edits: Sequence[Edit]) -> dict[str, str]:
    """The files ``edits`` touch, edited (edits in one file must not overlap)."""
    out: dict[str, str] = {}
    for path in sorted({e.path for e in edits}):
        text = texts[path]
        mine = sorted((e for e in edits if e.path == path), key=lambda e: e.start, reverse=True)
        for before, after in zip(mine[1:], mine, strict=False):
            if before.end > after.start:
                raise ValueError(f"overlapping edits in {path}")
        for e in mine:
            text = text[: e.start] + e.text + text[e.end :]
        out[path] = text
    return out


def expected_locations(m: Mutation, edited: dict[str, str]) -> tuple[tuple[str, int, int], ...]:
    """Where the planted issues are in the head commit: (path, start line, end line) each."""
    if m.locations:
        return m.locations
    first = m.edits[0]
    shift = sum(
        len(e.text) - (e.end - e.start) for e in m.edits if e.path == first.path and e.start < first.start
    )
    text = edited[first.path]
    line = len(_LINE_BREAK.findall(text, 0, first.start + shift)) + 1
    body = first.text.rstrip("\r\n")
    lines = len(_LINE_BREAK.findall(body)) + 1
    if m.lines is not None:
        lines = min(lines, m.lines)
    if not body.strip():  # code was deleted: the issue is where the next statement now stands
        rows = _LINE_BREAK.split(text)
        while line < len(rows) and not rows[line - 1].strip():
            line += 1
        lines = m.lines or 1
    return ((first.path, max(1, line - m.lines_before), line + lines - 1),)


def parses(texts: dict[str, str]) -> bool:
    for path, text in texts.items():
        try:
            compile(text, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return False
    return True


# -- the repository index -----------------------------------------------------------------------


@dataclass(frozen=True)
class Def:
    path: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    method: bool  # defined directly in a class, not a staticmethod: its first parameter is bound
    owner: str | None = None  # the class it is defined in

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def label(self) -> str:
        """How a reader names it: ``f``, ``Class.method``, or ``Class`` for a constructor."""
        if self.owner is None:
            return self.name
        return self.owner if self.name == "__init__" else f"{self.owner}.{self.name}"

    @property
    def key(self) -> tuple[str, int]:
        return self.path, self.node.lineno

    def positional(self) -> list[ast.arg]:
        args = [*self.node.args.posonlyargs, *self.node.args.args]
        return args[1:] if self.method else args


@dataclass(frozen=True)
class CallSite:
    path: str
    node: ast.Call
    callee: Def


@dataclass(frozen=True)
class Class:
    path: str
    node: ast.ClassDef
    methods: dict[str, Def]


class Index:
    """The repository's modules, its functions and classes, and the calls resolved to them.

    A call is resolved when it names a module-level function (defined in the module or imported),
    a class (its ``__init__``), ``self.m()`` / ``cls.m()`` / ``super().m()`` inside a class (through
    the bases the repository defines), or any ``x.m()`` where ``m`` is defined once in the repository.
    Names defined more than once are left alone: a wrong guess would plant a wrong ground truth.
    """

    def __init__(self, modules: Sequence[Module]) -> None:
        self.modules = {m.path: m for m in modules}
        functions: dict[str, list[Def]] = {}
        methods: dict[str, list[Def]] = {}
        classes: dict[str, list[Class]] = {}
        for m in modules:
            if m.is_test:
                continue
            for node in m.tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    functions.setdefault(node.name, []).append(Def(m.path, node, method=False))
                elif isinstance(node, ast.ClassDef):
                    own = {}
                    for item in node.body:
                        overload = any(
                            _dotted(d).endswith("overload") for d in getattr(item, "decorator_list", [])
                        )
                        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not overload:
                            static = any(_dotted(d) == "staticmethod" for d in item.decorator_list)
                            own[item.name] = Def(m.path, item, method=not static, owner=node.name)
                            methods.setdefault(item.name, []).append(own[item.name])
                    classes.setdefault(node.name, []).append(Class(m.path, node, own))
        self.functions = {name: found[0] for name, found in functions.items() if len(found) == 1}
        self.classes = {name: found[0] for name, found in classes.items() if len(found) == 1}
        self.unique_methods = {
            name: found[0]
            for name, found in methods.items()
            if len(found) == 1 and name not in functions and not name.startswith("__")
        }
        self.calls: list[CallSite] = []
        for m in modules:
            imported = _imported_names(m.tree)
            for call in ast.walk(m.tree):
                if isinstance(call, ast.Call):
                    callee = self._callee(m, call, imported)
                    if callee is not None:
                        self.calls.append(CallSite(m.path, call, callee))
        self.calls.sort(key=lambda c: (c.path, c.node.lineno, c.node.col_offset))

    def lookup(self, cls: Class, name: str, *, skip_self: bool = False) -> Def | None:
        """``name`` through ``cls`` and the bases the repository defines (breadth first)."""
        queue, seen = [cls], set()
        first = True
        while queue:
            current = queue.pop(0)
            if id(current) in seen:
                continue
            seen.add(id(current))
            if not (first and skip_self) and name in current.methods:
                return current.methods[name]
            first = False
            for base in current.node.bases:
                while isinstance(base, ast.Subscript):  # Generic[T], Base[int]
                    base = base.value
                found = self.classes.get(_dotted(base).rsplit(".", 1)[-1])
                if found is not None:
                    queue.append(found)
        return None

    def _callee(self, m: Module, call: ast.Call, imported: dict[str, str]) -> Def | None:
        func = call.func
        if isinstance(func, ast.Name):
            name = imported.get(func.id, func.id)
            local = func.id in imported or any(
                isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == func.id
                for n in m.tree.body
            )
            if not local:
                return None
            if name in self.functions:
                return self.functions[name]
            if name in self.classes:
                return self.lookup(self.classes[name], "__init__")
            return None
        if not isinstance(func, ast.Attribute):
            return None
        owner = m.enclosing(call, (ast.ClassDef,))
        cls = self.classes.get(owner.name) if isinstance(owner, ast.ClassDef) else None
        if cls is not None and cls.path != m.path:
            cls = None
        receiver = func.value
        if cls is not None and isinstance(receiver, ast.Name) and receiver.id in ("self", "cls"):
            return self.lookup(cls, func.attr)
        if (
            cls is not None
            and isinstance(receiver, ast.Call)
            and isinstance(receiver.func, ast.Name)
            and receiver.func.id == "super"
        ):
            return self.lookup(cls, func.attr, skip_self=True)
        if isinstance(receiver, ast.Name) and receiver.id in imported and func.attr in self.functions:
            return self.functions[func.attr]
        return self.unique_methods.get(func.attr)


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """Names bound by imports: alias -> the imported name (modules map to their last part)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = alias.name.split(".")[-1]
    return names


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _bound_otherwise(func: ast.AST) -> set[str]:
    """Names bound in ``func`` other than by a Name node: ``except ... as e``, imports, match
    captures (a rename that edits Name nodes only would miss these bindings)."""
    names: set[str] = set()
    for n in ast.walk(func):
        if isinstance(n, ast.ExceptHandler) and n.name:
            names.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in n.names)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            names.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            names.add(n.rest)
    return names


def _sign(op: ast.operator) -> str:
    return "+" if isinstance(op, ast.Add) else "-"


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _in_function(m: Module, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    found = m.enclosing(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    return found if isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def _key(kind: str, m: Module, node: ast.AST, detail: str = "") -> str:
    return f"{kind}:{m.path}:{node.lineno:06d}:{node.col_offset:04d}:{detail}"  # type: ignore[attr-defined]


def _sources(index: Index) -> Iterator[Module]:
    for path in sorted(index.modules):
        m = index.modules[path]
        if is_source_path(path):
            yield m


# -- bug kinds ----------------------------------------------------------------------------------

_FLIP_BOUNDARY = {ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">"}
_INVERT = {
    ast.Eq: "!=",
    ast.NotEq: "==",
    ast.Is: "is not",
    ast.IsNot: "is",
    ast.In: "not in",
    ast.NotIn: "in",
}
_OP_PATTERN = {
    ast.Lt: r"<(?!=)",
    ast.LtE: r"<=",
    ast.Gt: r">(?!=)",
    ast.GtE: r">=",
    ast.Eq: r"==",
    ast.NotEq: r"!=",
    ast.Is: r"\bis\b",
    ast.IsNot: r"\bis\s+not\b",
    ast.In: r"\bin\b",
    ast.NotIn: r"\bnot\s+in\b",
}


def _operator_edit(m: Module, node: ast.Compare, new: str) -> Edit | None:
    """An edit replacing the single operator of ``node`` with ``new``."""
    _, left_end = m.span(node.left)
    right_start, _ = m.span(node.comparators[0])
    between = m.text[left_end:right_start]
    found = list(re.finditer(_OP_PATTERN[type(node.ops[0])], between))
    if len(found) != 1 or "#" in between:
        return None
    match = found[0]
    return Edit(m.path, left_end + match.start(), left_end + match.end(), new)


def off_by_one(index: Index) -> Iterator[Mutation]:
    for m in _sources(index):
        for node in ast.walk(m.tree):
            if _in_function(m, node) is None:
                continue
            if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _FLIP_BOUNDARY:
                sides = [node.left, node.comparators[0]]
                if any(isinstance(s, ast.Constant) and not isinstance(s.value, (int, float)) for s in sides):
                    continue
                edit = _operator_edit(m, node, _FLIP_BOUNDARY[type(node.ops[0])])
                if edit is None:
                    continue
                old = m.source(node)
                begin = m.span(node)[0]
                new = old[: edit.start - begin] + edit.text + old[edit.end - begin :]
                yield Mutation(
                    "off-by-one",
                    _key("off-by-one", m, node, "compare"),
                    (edit,),
                    f"Off-by-one: the comparison `{_short(new)}` takes the boundary wrongly (it must be"
                    f" `{_short(old)}`).",
                )
            elif (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, (ast.Add, ast.Sub))
                and isinstance(node.right, ast.Constant)
                and node.right.value == 1
                and not isinstance(node.right.value, bool)
                and "\n" not in m.source(node)
            ):
                start, end = m.span(node)
                left = m.source(node.left)
                yield Mutation(
                    "off-by-one",
                    _key("off-by-one", m, node, "plus-one"),
                    (Edit(m.path, start, end, left),),
                    f"Off-by-one: `{_short(left)}` misses the `{_sign(node.op)} 1` it needs (it must be"
                    f" `{_short(m.source(node))}`).",
                )


def inverted_condition(index: Index) -> Iterator[Mutation]:
    for m in _sources(index):
        for node in ast.walk(m.tree):
            if not isinstance(node, (ast.If, ast.While, ast.IfExp)) or _in_function(m, node) is None:
                continue
            test = node.test
            text = m.source(test)
            if "__name__" in text or "TYPE_CHECKING" in text or "\n" in text:
                continue
            start, end = m.span(test)
            if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _INVERT:
                edit = _operator_edit(m, test, _INVERT[type(test.ops[0])])
                if edit is None:
                    continue
                new = text[: edit.start - start] + edit.text + text[edit.end - start :]
            elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                inner = m.source(test.operand)
                new = (
                    inner
                    if isinstance(test.operand, (ast.Name, ast.Attribute, ast.Call, ast.Subscript))
                    else (f"({inner})" if not inner.startswith("(") else inner)
                )
                edit = Edit(m.path, start, end, new)
            elif isinstance(test, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
                new = f"not {text}"
                edit = Edit(m.path, start, end, new)
            elif isinstance(test, ast.BoolOp):
                new = f"not ({text})"
                edit = Edit(m.path, start, end, new)
            else:
                continue
            yield Mutation(
                "inverted-condition",
                _key("inverted-condition", m, test),
                (edit,),
                f"Inverted condition: `{_short(new)}` is the opposite of what is meant (`{_short(text)}`).",
            )


def _positional_args(call: ast.Call) -> list[ast.expr] | None:
    if any(isinstance(a, ast.Starred) for a in call.args):
        return None
    return list(call.args)


def _swap_edit(m: Module, first: ast.AST, second: ast.AST) -> Edit:
    a_start, a_end = m.span(first)
    b_start, b_end = m.span(second)
    between = m.text[a_end:b_start]
    return Edit(m.path, a_start, b_end, m.text[b_start:b_end] + between + m.text[a_start:a_end])


def argument_order(index: Index) -> Iterator[Mutation]:
    for site in index.calls:
        m = index.modules[site.path]
        if not is_source_path(site.path):
            continue
        args = _positional_args(site.node)
        params = site.callee.positional()
        if args is None or len(args) < 2 or len(params) < 2:
            continue
        for i in range(min(len(args), len(params)) - 1):
            a, b = m.source(args[i]), m.source(args[i + 1])
            if a == b or "\n" in a + b:
                continue
            if isinstance(args[i], ast.Constant) and isinstance(args[i + 1], ast.Constant):
                continue
            call = m.source(site.node)
            swapped = _swap_edit(m, args[i], args[i + 1])
            p, q = params[i].arg, params[i + 1].arg
            yield Mutation(
                "argument-order",
                _key("argument-order", m, site.node, str(i)),
                (swapped,),
                f"Arguments in the wrong order: `{site.callee.label}` takes `{p}` then `{q}`, but the call"
                f" now passes `{_short(b, 40)}` as `{p}` and `{_short(a, 40)}` as `{q}`"
                f" (was `{_short(call)}`).",
                cross_file=site.callee.path != site.path,
            )
            break


def callee_change(index: Index) -> Iterator[Mutation]:
    """A function's parameters swapped or one renamed; callers updated except in one other file."""
    by_callee: dict[tuple[str, int], list[CallSite]] = {}
    for site in index.calls:
        by_callee.setdefault(site.callee.key, []).append(site)
    for key in sorted(by_callee):
        callee = by_callee[key][0].callee
        if not is_source_path(callee.path):
            continue
        sites = by_callee[key]
        yield from _swap_parameters(index, callee, sites)
        yield from _rename_parameter(index, callee, sites)


def _victim(
    sites: Sequence[CallSite], callee: Def, affected: Sequence[CallSite]
) -> tuple[str, list[CallSite]] | None:
    """The other source file whose affected calls are left as they were (fewest calls first).

    At most ``MAX_BROKEN_CALLS`` calls: each is an expected issue, and one bug should not weigh as
    many in the recall.
    """
    files: dict[str, list[CallSite]] = {}
    for s in affected:
        if s.path != callee.path and is_source_path(s.path):
            files.setdefault(s.path, []).append(s)
    if not files:
        return None
    path = min(files, key=lambda p: (len(files[p]), p))
    return (path, files[path]) if len(files[path]) <= MAX_BROKEN_CALLS else None


def _swap_parameters(index: Index, callee: Def, sites: Sequence[CallSite]) -> Iterator[Mutation]:
    params = callee.positional()
    a = callee.node.args
    defaults_from = len(a.posonlyargs) + len(a.args) - len(a.defaults) - (1 if callee.method else 0)
    for i in range(len(params) - 1):
        if (i < defaults_from) != (i + 1 < defaults_from):
            continue
        if i + 1 >= defaults_from:  # both have defaults: swap the defaults with them
            continue
        affected = [s for s in sites if (args := _positional_args(s.node)) is not None and len(args) > i + 1]
        if any(_positional_args(s.node) is None for s in sites):
            continue
        victim = _victim(sites, callee, affected)
        if victim is None:
            continue
        victim_path, victim_calls = victim
        defm = index.modules[callee.path]
        edits = [_swap_edit(defm, params[i], params[i + 1])]
        for s in affected:
            if s.path == victim_path:
                continue
            args = _positional_args(s.node)
            assert args is not None
            edits.append(_swap_edit(index.modules[s.path], args[i], args[i + 1]))
        if _overlapping(edits):
            continue
        p, q = params[i].arg, params[i + 1].arg
        call = victim_calls[0]
        vm = index.modules[victim_path]
        yield Mutation(
            "callee-change",
            _key("callee-change", defm, callee.node, f"swap{i}"),
            tuple(edits),
            f"`{callee.label}` now takes `{q}` before `{p}`, and its callers were updated, but this call in"
            f" {victim_path} still passes them in the old order: `{_short(vm.source(call.node))}`.",
            cross_file=True,
            locations=tuple(
                (victim_path, c.node.lineno, c.node.end_lineno or c.node.lineno) for c in victim_calls
            ),
        )


def _rename_parameter(index: Index, callee: Def, sites: Sequence[CallSite]) -> Iterator[Mutation]:
    node = callee.node
    defm = index.modules[callee.path]
    names = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
    used = _names_in(defm.tree) | {a.arg for a in ast.walk(defm.tree) if isinstance(a, ast.arg)}
    elsewhere = _bound_otherwise(node)
    for param in names:
        if param in node.args.posonlyargs or param.arg in ("self", "cls") or param.arg in elsewhere:
            continue
        affected = [s for s in sites if any(k.arg == param.arg for k in s.node.keywords)]
        victim = _victim(sites, callee, affected)
        if victim is None:
            continue
        new = _new_name(param.arg, used)
        if new is None:
            continue
        p_start, _ = defm.span(param)
        edits = [Edit(callee.path, p_start, p_start + len(param.arg), new)]
        nested = any(
            isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))
            for n in ast.walk(node)
            if n is not node
        )
        if nested or any(isinstance(n, ast.JoinedStr) and param.arg in _names_in(n) for n in ast.walk(node)):
            continue
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id == param.arg:
                start, end = defm.span(n)
                edits.append(Edit(callee.path, start, end, new))
        victim_path, victim_calls = victim
        for s in affected:
            if s.path == victim_path:
                continue
            sm = index.modules[s.path]
            for k in s.node.keywords:
                if k.arg == param.arg:
                    start = sm.offset(k.lineno, k.col_offset)
                    edits.append(Edit(s.path, start, start + len(param.arg), new))
        if _overlapping(edits):
            continue
        call = victim_calls[0]
        vm = index.modules[victim_path]
        yield Mutation(
            "callee-change",
            _key("callee-change", defm, node, f"rename-{param.arg}"),
            tuple(edits),
            f"`{callee.label}` renamed its parameter `{param.arg}` to `{new}` and updated its callers,"
            f" but this call in {victim_path} still passes `{param.arg}=`, a TypeError:"
            f" `{_short(vm.source(call.node))}`.",
            cross_file=True,
            locations=tuple(
                (victim_path, c.node.lineno, c.node.end_lineno or c.node.lineno) for c in victim_calls
            ),
        )


def _overlapping(edits: Sequence[Edit]) -> bool:
    for path in {e.path for e in edits}:
        mine = sorted((e for e in edits if e.path == path), key=lambda e: e.start)
        if any(a.end > b.start for a, b in itertools.pairwise(mine)):
            return True
    return False


def _new_name(name: str, used: set[str]) -> str | None:
    for candidate in (_RENAMES.get(name.lstrip("_")), f"{name.lstrip('_')}_value", f"{name.lstrip('_')}_arg"):
        if candidate is None:
            continue
        candidate = ("_" if name.startswith("_") else "") + candidate
        if candidate not in used and candidate.isidentifier():
            return candidate
    return None


def _block_of(m: Module, node: ast.stmt) -> list[ast.stmt] | None:
    parent = m.parents.get(node)
    for name in ("body", "orelse", "finalbody"):
        block = getattr(parent, name, None)
        if isinstance(block, list) and node in block:
            return block
    return None


def _is_none_test(test: ast.expr, op: type[ast.cmpop]) -> bool:
    return (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], op)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    )


def removed_none_check(index: Index) -> Iterator[Mutation]:
    for m in _sources(index):
        for node in ast.walk(m.tree):
            if not isinstance(node, ast.If) or node.orelse or _in_function(m, node) is None:
                continue
            if not (m.starts_line(node) and m.ends_line(node)):
                continue
            block = _block_of(m, node)
            end_line = node.end_lineno or node.lineno
            subject = _short(m.source(node.test.left), 40) if isinstance(node.test, ast.Compare) else ""
            if _is_none_test(node.test, ast.Is):
                if block is None or len(block) < 2 or len(node.body) != 1:
                    continue
                if not isinstance(node.body[0], (ast.Return, ast.Raise, ast.Continue, ast.Assign, ast.Expr)):
                    continue
                start, end = m.line_span(node.lineno, end_line)
                yield Mutation(
                    "removed-none-check",
                    _key("removed-none-check", m, node, "guard"),
                    (Edit(m.path, start, end, ""),),
                    f"The `if {subject} is None:` check was removed: `{subject}` can be None here and is"
                    " now used as if it never were.",
                    lines=_to_first_use(m, node, block),
                )
            elif _is_none_test(node.test, ast.IsNot):
                body = _unwrapped(m, node)
                if body is None:
                    continue
                start, end = m.line_span(node.lineno, end_line)
                yield Mutation(
                    "removed-none-check",
                    _key("removed-none-check", m, node, "wrapper"),
                    (Edit(m.path, start, end, body),),
                    f"The `if {subject} is not None:` check was removed: the block now runs when"
                    f" `{subject}` is None.",
                )


def _to_first_use(m: Module, node: ast.If, block: list[ast.stmt]) -> int:
    """Lines from the statement after a removed guard to the first use of what it checked (1 when
    that use is not within a few lines)."""
    after = block[block.index(node) + 1] if block.index(node) + 1 < len(block) else None
    test = node.test
    func = _in_function(m, node)
    if (
        after is None
        or func is None
        or not isinstance(test, ast.Compare)
        or not isinstance(test.left, ast.Name)
    ):
        return 1
    name = test.left.id
    uses = [
        n.lineno
        for n in ast.walk(func)
        if isinstance(n, ast.Name)
        and n.id == name
        and isinstance(n.ctx, ast.Load)
        and n.lineno >= after.lineno
    ]
    return min(uses) - after.lineno + 1 if uses and min(uses) - after.lineno < 6 else 1


def _unwrapped(m: Module, node: ast.If | ast.With) -> str | None:
    """The block of ``node`` one level less indented (None when that cannot be done safely)."""
    first = node.body[0]
    if (
        first.lineno == node.lineno
        or _multiline_strings(node)
        or not all(m.starts_line(s) for s in node.body)
    ):
        return None
    outer, inner = m.indent(node.lineno), m.indent(first.lineno)
    if not inner.startswith(outer) or inner == outer:
        return None
    body_start, _ = m.line_span(first.lineno, first.lineno)
    end_line = node.end_lineno or node.lineno
    _, body_end = m.line_span(end_line, end_line)
    return _dedent(m.text[body_start:body_end], len(inner) - len(outer))


def _dedent(text: str, width: int) -> str | None:
    out = []
    for line in text.splitlines(keepends=True):
        if line.strip() == "":
            out.append(line)
        elif line[:width].strip() == "":
            out.append(line[width:])
        else:
            return None
    return "".join(out)


def _multiline_strings(node: ast.AST) -> bool:
    return any(
        isinstance(n, (ast.Constant, ast.JoinedStr)) and (n.end_lineno or n.lineno) != n.lineno
        for n in ast.walk(node)
        if isinstance(n, (ast.Constant, ast.JoinedStr))
    )


def resource_leak(index: Index) -> Iterator[Mutation]:
    for m in _sources(index):
        for node in ast.walk(m.tree):
            if not isinstance(node, ast.With) or len(node.items) != 1:
                continue
            item = node.items[0]
            call = item.context_expr
            if not (isinstance(call, ast.Call) and _dotted(call.func) in _OPEN_CALLS):
                continue
            if not isinstance(item.optional_vars, ast.Name) or not m.starts_line(node):
                continue
            body = _unwrapped(m, node)
            if body is None:
                continue
            end_line = node.end_lineno or node.lineno
            name = item.optional_vars.id
            assignment = f"{m.indent(node.lineno)}{name} = {m.source(call)}{m.newline()}"
            start, end = m.line_span(node.lineno, end_line)
            yield Mutation(
                "resource-leak",
                _key("resource-leak", m, node),
                (Edit(m.path, start, end, assignment + body),),
                f"`{name} = {_short(m.source(call), 50)}` is never closed: the `with` block that closed it"
                " is gone, so the file stays open (and unflushed) until garbage collection.",
                lines=len(_LINE_BREAK.findall(assignment)),
            )


def missing_await(index: Index) -> Iterator[Mutation]:
    for m in _sources(index):
        for node in ast.walk(m.tree):
            if not isinstance(node, ast.Await) or not isinstance(node.value, ast.Call):
                continue
            if _dotted(node.value.func) in ("asyncio.sleep", "sleep"):
                continue
            start, end = m.span(node)
            inner = m.source(node.value)
            yield Mutation(
                "missing-await",
                _key("missing-await", m, node),
                (Edit(m.path, start, end, inner),),
                f"Missing `await`: `{_short(inner)}` returns a coroutine that is never awaited, so its result"
                " is a coroutine object and its work never runs.",
            )


def string_sql(index: Index) -> Iterator[Mutation]:
    for m in _sources(index):
        for node in ast.walk(m.tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "execute" or len(node.args) != 2 or node.keywords:
                continue
            sql, params = node.args
            if not (isinstance(sql, ast.Constant) and isinstance(sql.value, str)):
                continue
            if not isinstance(params, (ast.Tuple, ast.List)) or not params.elts:
                continue
            values = [m.source(e) for e in params.elts]
            if any(re.search(r"[\"\\{}\n]", v) for v in values) or "%%" in sql.value:
                continue
            style = "?" if "?" in sql.value else "%s"
            pieces = sql.value.split(style)
            if len(pieces) - 1 != len(values) or "{" in sql.value or "}" in sql.value:
                continue
            literal = [p.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for p in pieces]
            built = literal[0] + "".join(
                f"'{{{v}}}'" + rest for v, rest in zip(values, literal[1:], strict=True)
            )
            start, _ = m.span(sql)
            _, end = m.span(params)
            yield Mutation(
                "string-sql",
                _key("string-sql", m, node),
                (Edit(m.path, start, end, f'f"{built}"'),),
                f"SQL built from strings: the query now formats {', '.join(f'`{v}`' for v in values)} into"
                " the SQL text instead of passing parameters, open to SQL injection (and broken by a quote).",
            )


def swallowed_exception(index: Index) -> Iterator[Mutation]:
    for m in _sources(index):
        for node in ast.walk(m.tree):
            if not isinstance(node, ast.ExceptHandler) or not any(
                isinstance(s, ast.Raise) for s in node.body
            ):
                continue
            if not all(m.starts_line(s) for s in node.body) or node.body[0].lineno == node.lineno:
                continue
            first = node.body[0]
            end_line = node.end_lineno or node.lineno
            start, _ = m.line_span(first.lineno, first.lineno)
            _, end = m.line_span(end_line, end_line)
            what = _short(m.source(node.type), 40) if node.type is not None else "every exception"
            yield Mutation(
                "swallowed-exception",
                _key("swallowed-exception", m, node),
                (Edit(m.path, start, end, f"{m.indent(first.lineno)}pass{m.newline()}"),),
                f"Swallowed exception: the `except {what}` handler now does nothing (`pass`) where it raised;"
                " the error is silently ignored and execution continues with bad state.",
                lines_before=first.lineno - node.lineno,
            )


# -- clean refactors ----------------------------------------------------------------------------


def clean_rename(index: Index) -> Iterator[Mutation]:
    every_name = set()
    for m in index.modules.values():
        every_name |= _names_in(m.tree) | {n.attr for n in ast.walk(m.tree) if isinstance(n, ast.Attribute)}
        every_name |= {a.arg for a in ast.walk(m.tree) if isinstance(a, ast.arg)}
    yield from _rename_locals(index, every_name)
    yield from _rename_private_functions(index, every_name)


def _rename_locals(index: Index, every_name: set[str]) -> Iterator[Mutation]:
    for m in _sources(index):
        for func in ast.walk(m.tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            inner = [n for n in ast.walk(func) if n is not func]
            if any(
                isinstance(
                    n,
                    (
                        ast.FunctionDef,
                        ast.AsyncFunctionDef,
                        ast.Lambda,
                        ast.ClassDef,
                        ast.Global,
                        ast.Nonlocal,
                        ast.comprehension,
                    ),
                )
                for n in inner
            ):
                continue
            if any(
                isinstance(n, ast.Call) and _dotted(n.func) in ("locals", "vars", "eval", "exec")
                for n in inner
            ):
                continue
            params = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
            stored = sorted(
                {n.id for n in inner if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)} - params
            )
            in_fstrings = {name for n in inner if isinstance(n, ast.JoinedStr) for name in _names_in(n)}
            elsewhere = _bound_otherwise(func)
            for name in stored:
                if name in in_fstrings or name in elsewhere or name.startswith("__"):
                    continue
                new = _new_name(name, every_name)
                if new is None:
                    continue
                edits = []
                for n in inner:
                    if isinstance(n, ast.Name) and n.id == name:
                        start, end = m.span(n)
                        edits.append(Edit(m.path, start, end, new))
                yield Mutation(
                    "clean-rename",
                    _key("clean-rename", m, func, name),
                    tuple(sorted(edits, key=lambda e: e.start)),
                    f"Renamed the local `{name}` of `{func.name}` to `{new}` (no change in behaviour).",
                )


def _rename_private_functions(index: Index, every_name: set[str]) -> Iterator[Mutation]:
    attributes = {
        n.attr for m in index.modules.values() for n in ast.walk(m.tree) if isinstance(n, ast.Attribute)
    }
    strings = " ".join(
        n.value
        for m in index.modules.values()
        for n in ast.walk(m.tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )
    for name in sorted(index.functions):
        d = index.functions[name]
        if d.method or not name.startswith("_") or name in attributes or re.search(rf"\b{name}\b", strings):
            continue
        if not isinstance(index.modules[d.path].parents.get(d.node), ast.Module):
            continue
        new = _new_name(name, every_name)
        if new is None:
            continue
        edits: list[Edit] = []
        dm = index.modules[d.path]
        start = dm.text.index(name, dm.offset(d.node.lineno, d.node.col_offset))
        edits.append(Edit(d.path, start, start + len(name), new))
        users = [
            m
            for m in index.modules.values()
            if m.path == d.path
            or any(
                isinstance(n, ast.ImportFrom) and any(a.name == name and a.asname is None for a in n.names)
                for n in ast.walk(m.tree)
            )
        ]
        if any(name in _names_in(m.tree) for m in index.modules.values() if m not in users):
            continue
        for m in users:
            for n in ast.walk(m.tree):
                if isinstance(n, ast.Name) and n.id == name:
                    s, e = m.span(n)
                    edits.append(Edit(m.path, s, e, new))
                elif isinstance(n, ast.ImportFrom) and any(a.name == name for a in n.names):
                    segment_start, segment_end = m.span(n)
                    segment = m.text[segment_start:segment_end]
                    for match in re.finditer(rf"\b{re.escape(name)}\b", segment):
                        edits.append(
                            Edit(m.path, segment_start + match.start(), segment_start + match.end(), new)
                        )
        if len(edits) < 2 or _overlapping(edits):
            continue
        yield Mutation(
            "clean-rename",
            _key("clean-rename", dm, d.node, "function"),
            tuple(edits),
            f"Renamed the private function `{name}` to `{new}` and every use of it (no change in behaviour).",
        )


_NOT_EXTRACTABLE = (
    ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
    ast.GeneratorExp, ast.JoinedStr, ast.Starred,
)  # fmt: skip


def clean_extract(index: Index) -> Iterator[Mutation]:
    for m in _sources(index):
        module_names = _names_in(m.tree) | {
            n.name
            for n in ast.walk(m.tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        }
        for top in m.tree.body:
            functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
            if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append(top)
            elif isinstance(top, ast.ClassDef):
                functions.extend(
                    n for n in top.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                )
            for func in functions:
                yield from _extract_from(m, top, func, module_names)


def _extract_from(
    m: Module, top: ast.stmt, func: ast.FunctionDef | ast.AsyncFunctionDef, module_names: set[str]
) -> Iterator[Mutation]:
    if any(
        isinstance(
            n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.Global, ast.Nonlocal)
        )
        for n in ast.walk(func)
        if n is not func
    ):
        return
    local = (
        {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
        | {n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        | _bound_otherwise(func)
    )
    for stmt in ast.walk(func):
        if (isinstance(stmt, ast.Return) and stmt.value is not None) or (
            isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
        ):
            expr = stmt.value
        else:
            continue
        if not isinstance(expr, (ast.BinOp, ast.BoolOp, ast.Compare, ast.Call, ast.IfExp)):
            continue
        text = m.source(expr)
        if "\n" in text or sum(1 for _ in ast.walk(expr)) < 4:
            continue
        if any(isinstance(n, _NOT_EXTRACTABLE) for n in ast.walk(expr)):
            continue
        loaded = [n.id for n in ast.walk(expr) if isinstance(n, ast.Name)]
        if {"super", "__class__"} & set(loaded) or any(
            isinstance(n, ast.Attribute) and n.attr.startswith("__") and not n.attr.endswith("__")
            for n in ast.walk(expr)
        ):
            continue
        names = sorted(
            (n for n in ast.walk(expr) if isinstance(n, ast.Name) and n.id in local),
            key=lambda n: (n.lineno, n.col_offset),
        )
        params = list(dict.fromkeys(n.id for n in names))
        helper = f"_{func.name.strip('_')}_{'result' if isinstance(stmt, ast.Return) else 'value'}"
        if helper in module_names:
            continue
        start, end = m.span(expr)
        nl = m.newline()
        end_line = top.end_lineno or top.lineno
        _, insert_at = m.line_span(end_line, end_line)
        signature = ", ".join(params)
        definition = f"{nl}{nl}def {helper}({signature}):{nl}    return {text}{nl}"
        if insert_at == len(m.text) and not m.text.endswith(("\n", "\r")):
            definition = nl + definition
        yield Mutation(
            "clean-extract",
            _key("clean-extract", m, stmt),
            (
                Edit(m.path, start, end, f"{helper}({signature})"),
                Edit(m.path, insert_at, insert_at, definition),
            ),
            f"Extracted `{_short(text, 50)}` of `{func.name}` into the function `{helper}` (no change in"
            " behaviour).",
        )
        return  # one per function


GENERATORS = {
    "off-by-one": off_by_one,
    "inverted-condition": inverted_condition,
    "argument-order": argument_order,
    "callee-change": callee_change,
    "removed-none-check": removed_none_check,
    "resource-leak": resource_leak,
    "missing-await": missing_await,
    "string-sql": string_sql,
    "swallowed-exception": swallowed_exception,
    "clean-rename": clean_rename,
    "clean-extract": clean_extract,
}


def candidates(index: Index, kind: str) -> list[Mutation]:
    """Every mutation of ``kind`` the repository offers, in a stable order, that still parses."""
    texts = {path: m.text for path, m in index.modules.items()}
    found: dict[str, Mutation] = {}
    for mutation in GENERATORS[kind](index):
        if mutation.key in found or _overlapping(mutation.edits):
            continue
        if parses(apply(texts, mutation.edits)):
            found[mutation.key] = mutation
    return [found[key] for key in sorted(found)]
