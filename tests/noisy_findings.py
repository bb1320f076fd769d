"""A deterministic generator of noisy findings over real code, and a scorer for the verifier.

The corpus is five files of Click (tests/data/click, see tests/data/SOURCES.md), packed under their
real paths. ``generate()`` draws true findings (a real region of one to three lines, a title and
body that name what is on those lines, the region quoted) and applies to some of them one slip a
model makes; it adds fabricated findings (quotes that do not occur, a real first and last line
around a made-up middle, a real line of another file) and generic made-up ones. ``score()`` runs
the outcome of verification back to the cases by a tag in each title.

It also reads the outcome back out of the three reports (``rows_from_json`` / ``_sarif`` /
``_markdown``), so that they can be compared with each other and with the library.

Used by tests/test_verify_noise.py and bench/verify_noise.py. Pure: the same seed gives the same
cases, byte for byte.
"""

from __future__ import annotations

import keyword
import random
import re
import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wholerepo.reviewer.findings import Verification

DATA = Path(__file__).parent / "data" / "click"
NAMES = ("core", "types", "parser", "utils", "decorators")

# n per slip, after the measurement (2,378 true findings, 42 fabricated, 10 generic).
SLIPS: dict[str, int] = {
    "clean": 1365,
    "handled": 300,  # whitespace, N| prefixes, XML escapes, ./ and \ paths, path:line, string lines
    "path-no-first-folder": 58,
    "path-case": 60,
    "path-rooted": 60,
    "fenced": 60,
    "paraphrase": 60,
    "truncated": 51,
    "unicode-quotes": 16,
    "comma-spaces": 27,
    "null-swapped": 32,
    "null-shifted": 60,
    "repeated": 45,
    "end-past-eof": 60,
    "off-by-one": 120,
    "duplicate-title": 2,  # pairs: the same title on overlapping lines
    "duplicate-quote": 2,  # pairs: the same lines and quote under another title
}
FABRICATED: dict[str, int] = {"fab-absent": 14, "fab-middle": 14, "fab-other-file": 14}
# Slips the issue did not count, measured apart (``generate_extra``) so the table above stays as
# the issue measured it.
EXTRA_SLIPS: dict[str, int] = {
    "tabs": 30,  # indentation and inner spaces as tabs
    "comment-dropped": 30,  # a trailing `# comment` left out of the quote
    "lines-joined": 30,  # a quote over two or three lines joined into one
    "crlf-file": 30,  # the file has CRLF line ends; the quote may keep or drop the CR
    "number-format": 30,  # line numbers copied as "12 | ", "12: ", "L12 ", "  12\t"
    "path-anchor": 30,  # "path#L12-L14", "path (line 12)", "path, line 12"
    "path-repo-folder": 30,  # the repository's own folder in front: "flask/src/flask/app.py"
    "path-url-encoded": 15,  # "src%2Fflask%2Fapp.py" or "src/flask/app%2Epy"
    "path-quoted": 15,  # the path in backticks or quotes
    "lines-odd": 30,  # "12.0", "L12", "12-14", "line 12" as line values
    "line-zero": 30,  # start 0 or negative, or a start past the end; the quote says where
    "common-quote": 30,  # the quote is a very common line (`return None`, `pass`, `)`)
}
EXTRA_FABRICATED: dict[str, int] = {
    "fab-altered": 30,  # a real line with an operator, keyword or literal changed, at its lines
    "fab-unpacked-path": 10,  # a real quote of a file that exists but was not packed
}
GENERIC: dict[str, int] = {"generic-return-rv": 5, "generic-null": 5}

OUTCOMES = ("right", "wrong", "rejected", "unanchored", "missing")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TAG = re.compile(r"\[#(\d+)\]")
_SKIP = frozenset(keyword.kwlist) | {"self", "cls", "str", "int", "t", "te", "cabc", "None", "True", "False"}
PROBLEMS = (
    "may be None here",
    "is not validated before use",
    "is computed on every call",
    "can raise an uncaught exception",
    "is mutated in place",
    "hides an error from the caller",
    "has an off-by-one boundary",
    "is checked in the wrong order",
)
SYNONYMS = {"value": "val", "ctx": "context", "param": "parameter", "name": "label", "args": "arguments",
            "rv": "result", "opts": "options", "default": "default_value"}  # fmt: skip
GENERIC_TITLES = ("Potential issue", "Consider refactoring", "Error handling could be improved")
GENERIC_BODIES = (
    "This code may not handle all edge cases.",
    "It would be cleaner to restructure this logic.",
    "Consider adding more robust handling here.",
)


def click_files() -> dict[str, str]:
    """The packed files of the corpus, under their paths in Click's repository."""
    return {f"src/click/{n}.py": (DATA / f"{n}.py.txt").read_text(encoding="utf-8") for n in NAMES}


@dataclass(frozen=True)
class Case:
    """One finding as a model sends it, with where it truly belongs (None: it belongs nowhere)."""

    tag: int
    slip: str
    kind: str  # "true", "fabricated" or "generic"
    item: dict[str, Any]
    path: str | None = None
    start: int | None = None
    end: int | None = None


def _norm(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


def _idents(text: str) -> list[str]:
    return [w for w in _IDENT.findall(text) if w not in _SKIP and len(w) >= 2]


class _Corpus:
    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = dict(files)
        self.paths = sorted(files)
        self.lines = {p: [x.removesuffix("\r") for x in files[p].removesuffix("\n").split("\n")]
                      for p in self.paths}  # fmt: skip
        self.weights = [len(self.lines[p]) for p in self.paths]
        self.runs: dict[tuple[str, int], dict[tuple[str, ...], list[int]]] = {}

    def occurrences(self, path: str, start: int, end: int) -> list[int]:
        """Start lines of every run of lines equal (whitespace-normalised) to start..end."""
        k = end - start + 1
        key = (path, k)
        if key not in self.runs:
            normed = [_norm(x) for x in self.lines[path]]
            table: dict[tuple[str, ...], list[int]] = {}
            for i in range(len(normed) - k + 1):
                table.setdefault(tuple(normed[i : i + k]), []).append(i + 1)
            self.runs[key] = table
        normed_region = tuple(_norm(x) for x in self.lines[path][start - 1 : end])
        return self.runs[key].get(normed_region, [])

    def interesting(self, line: str) -> bool:
        s = line.strip()
        return (
            len(s.replace(" ", "")) >= 12
            and not s.startswith(("#", '"""', "..", ":param", "@"))
            and bool(_idents(s))
        )

    def region(
        self, rng: random.Random, *, size: int | None = None, want: str | None = None, unique: bool = False
    ) -> tuple[str, int, int]:
        for _ in range(100_000):
            path = rng.choices(self.paths, self.weights)[0]
            lines = self.lines[path]
            k = size or rng.choices((1, 2, 3), (2, 1, 1))[0]
            start = rng.randint(1, len(lines) - k + 1)
            region = lines[start - 1 : start - 1 + k]
            if not all(self.interesting(x) for x in region):
                continue
            if want is not None and want not in "\n".join(region):
                continue
            if unique and len(self.occurrences(path, start, start + k - 1)) != 1:
                continue
            return path, start, start + k - 1
        raise AssertionError("no region found")

    def repeated_region(self, rng: random.Random) -> tuple[str, int, int, list[int]]:
        for _ in range(200_000):
            path, start, end = self.region(rng, size=rng.choice((1, 1, 2)))
            if len("".join(self.lines[path][start - 1 : end]).replace(" ", "")) < 20:
                continue
            starts = self.occurrences(path, start, end)
            if len(starts) >= 2:
                return path, start, end, starts
        raise AssertionError("no repeated region found")

    def quote(self, rng: random.Random, path: str, start: int, end: int) -> str:
        text = "\n".join(self.lines[path][start - 1 : end])
        roll = rng.random()
        if roll < 0.5:
            return textwrap.dedent(text)
        if roll < 0.8:
            return text.strip()
        return text

    def enclosing(self, path: str, start: int) -> str:
        for line in reversed(self.lines[path][: start - 1]):
            match = re.match(r"\s*(?:async\s+)?(?:def|class)\s+(\w+)", line)
            if match:
                return match.group(1)
        return path.rsplit("/", 1)[-1]


def _text(rng: random.Random, corpus: _Corpus, path: str, start: int, end: int) -> tuple[str, str, str]:
    region = "\n".join(corpus.lines[path][start - 1 : end])
    names = list(dict.fromkeys(_idents(region))) or [corpus.enclosing(path, start)]
    first = rng.choice(names)
    title = f"`{first}` {rng.choice(PROBLEMS)}"
    if rng.random() < 0.3:
        title = f"Problem in `{corpus.enclosing(path, start)}`"
    second = rng.choice(names)
    body = f"In `{corpus.enclosing(path, start)}`, `{first}` {rng.choice(PROBLEMS)}"
    body += f"; `{second}` is involved too." if second != first else "."
    suggestion = f"Check `{first}` first." if rng.random() < 0.5 else ""
    return title, body, suggestion


def _base(
    tag: int,
    title: str,
    body: str,
    suggestion: str,
    path: str,
    start: int | None,
    end: int | None,
    quote: Any,
) -> dict[str, Any]:
    return {
        "path": path,
        "start_line": start,
        "end_line": end,
        "severity": ("critical", "high", "medium", "low", "info")[tag % 5],
        "category": ("bug", "security", "performance", "maintainability", "style")[tag % 5],
        "title": f"{title} [#{tag}]",
        "body": body,
        "suggestion": suggestion or None,
        "quote": quote,
    }


def _change_case(rng: random.Random, path: str) -> str:
    head, _, name = path.rpartition("/")
    options = [
        f"{head}/{name[:1].upper()}{name[1:]}",
        path.upper(),
        f"{head.title()}/{name}",
        f"{head}/{name.upper()}",
    ]
    return rng.choice(options)


def _paraphrase(rng: random.Random, quote: str, pool: Sequence[str]) -> str | None:
    spots = [m for m in _IDENT.finditer(quote) if m.group() not in _SKIP and len(m.group()) >= 3]
    if not spots:
        return None
    m = rng.choice(spots)
    word = m.group()
    roll = rng.random()
    if roll < 0.3:
        new = SYNONYMS.get(word, word + "_value")
    elif roll < 0.6:
        new = word[:-1] if len(word) > 4 else word + "s"
    else:
        same = [w for w in pool if w != word and abs(len(w) - len(word)) <= 2]
        new = rng.choice(same) if same else word + "2"
    return quote[: m.start()] + new + quote[m.end() :]


def _truncate(rng: random.Random, quote: str) -> str:
    lines = quote.split("\n")
    kind = rng.choice(("cut", "dots", "ellipsis", "middle", "inline"))
    if kind == "middle" and len(lines) >= 3:
        return "\n".join([lines[0], rng.choice(("...", "…", "    ...")), lines[-1]])
    last = lines[-1]
    indent = len(last) - len(last.lstrip())
    keep = indent + max(6, int((len(last) - indent) * rng.uniform(0.4, 0.8)))
    if kind == "inline" and len(last.strip()) > 20:
        a, b = keep // 2, len(last) - keep // 2
        lines[-1] = last[:a] + rng.choice(("...", "…", " ... ")) + last[b:]
        return "\n".join(lines)
    lines[-1] = last[:keep]
    if kind == "cut":
        return "\n".join(lines)
    return "\n".join(lines) + ("..." if kind == "dots" else "…")


def _unicode_quotes(quote: str) -> str:
    out, double, single = [], True, True
    for ch in quote:
        if ch == '"':
            out.append("“" if double else "”")
            double = not double
        elif ch == "'":
            out.append("‘" if single else "’")
            single = not single
        else:
            out.append(ch)
    return "".join(out)


def _handled(rng: random.Random, item: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    """A slip today's verifier already handles."""
    kind = rng.choice(("spaces", "numbers", "escapes", "dot-path", "backslash", "path-line", "strings"))
    quote = item["quote"]
    if kind == "spaces":
        item["quote"] = "\n".join("  " + re.sub(r" ", "\t", line, count=1) for line in quote.split("\n"))
    elif kind == "numbers":
        # As the packer shows them (sparse: line 1 and every tenth line), or on every line.
        every = rng.random() < 0.5
        lines = quote.split("\n")
        item["quote"] = "\n".join(
            f"{n}|{line}" if every or n == 1 or n % 10 == 0 else line
            for n, line in zip(range(start, end + 1), lines, strict=False)
        )
    elif kind == "escapes":
        item["quote"] = quote.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    elif kind == "dot-path":
        item["path"] = "./" + item["path"]
    elif kind == "backslash":
        item["path"] = item["path"].replace("/", "\\")
    elif kind == "path-line":
        item["path"] = f"{item['path']}:{start}"
    else:
        item["start_line"], item["end_line"] = str(start), str(end)
    return item


def generate(seed: int = 16, files: Mapping[str, str] | None = None, scale: float = 1.0) -> list[Case]:
    """Every case, in a shuffled order; ``scale`` shrinks or grows each slip's count."""
    rng = random.Random(seed)
    corpus = _Corpus(files if files is not None else click_files())
    pool = sorted({w for p in corpus.paths for w in _idents(corpus.files[p]) if len(w) >= 3})
    cases: list[Case] = []

    def count(n: int) -> int:
        return max(1, round(n * scale))

    for slip, n in SLIPS.items():
        for _ in range(count(n)):
            cases.extend(_true_cases(rng, corpus, pool, slip, len(cases)))
    for slip, n in FABRICATED.items():
        for _ in range(count(n)):
            cases.append(_fabricated(rng, corpus, pool, slip, len(cases)))
    for slip, n in GENERIC.items():
        for _ in range(count(n)):
            cases.append(_generic(rng, corpus, slip, len(cases)))
    rng.shuffle(cases)
    return cases


def _true_cases(rng: random.Random, corpus: _Corpus, pool: Sequence[str], slip: str, tag: int) -> list[Case]:
    want = {"unicode-quotes": "'", "comma-spaces": ", "}.get(slip)
    if slip == "unicode-quotes" and rng.random() < 0.5:
        want = '"'
    size = rng.choice((2, 3)) if slip in ("null-swapped", "off-by-one") else None
    if slip == "truncated":
        size = rng.choice((1, 2, 3, 3))
    if slip == "repeated":
        path, start, end, _ = corpus.repeated_region(rng)
    else:
        path, start, end = corpus.region(rng, size=size, want=want)
        while slip == "path-no-first-folder" and "/" not in path:  # a top-level file has no folder
            path, start, end = corpus.region(rng, size=size, want=want)
    total = len(corpus.lines[path])
    title, body, suggestion = _text(rng, corpus, path, start, end)
    quote: Any = corpus.quote(rng, path, start, end)
    item = _base(tag, title, body, suggestion, path, start, end, quote)

    if slip == "handled":
        item = _handled(rng, item, start, end)
    elif slip == "path-no-first-folder":
        item["path"] = path.split("/", 1)[1]
    elif slip == "path-case":
        item["path"] = _change_case(rng, path)
    elif slip == "path-rooted":
        item["path"] = "/" + path
    elif slip == "fenced":
        item["quote"] = f"```{rng.choice(('python', 'py', ''))}\n{quote}\n```"
    elif slip == "paraphrase":
        changed = None
        while changed is None or changed == quote:
            changed = _paraphrase(rng, quote, pool)
            if changed is None:
                return _true_cases(rng, corpus, pool, slip, tag)
        item["quote"] = changed
    elif slip == "truncated":
        item["quote"] = _truncate(rng, quote)
    elif slip == "unicode-quotes":
        item["quote"] = _unicode_quotes(quote)
    elif slip == "comma-spaces":
        item["quote"] = quote.replace(", ", ",")
    elif slip == "null-swapped":
        item.update(quote=None, start_line=end, end_line=start)
    elif slip == "null-shifted":
        delta = rng.choice((-1, 1)) * rng.choice((1, 2, 3, 5, 8, 13, 21, 40))
        if start + delta < 1 or end + delta > total:
            delta = -delta
        item.update(quote=None, start_line=start + delta, end_line=end + delta)
    elif slip == "repeated":
        if rng.random() < 0.3:
            item.update(start_line=None, end_line=None)
        else:
            delta = rng.choice((-1, 1)) * rng.randint(10, 50)
            if start + delta < 1:
                delta = -delta
            item.update(start_line=start + delta, end_line=end + delta)
    elif slip == "end-past-eof":
        item["end_line"] = total + rng.randint(1, 4000)
    elif slip == "off-by-one":
        step = rng.choice((-1, 1))
        which = rng.choice(("both", "start", "end"))
        s = start + step if which in ("both", "start") else start
        e = end + step if which in ("both", "end") else end
        if s < 1 or s > e:
            s, e = start + 1, end + 1
        item.update(start_line=s, end_line=e)
    elif slip == "duplicate-title":
        # The same finding twice, the second on a range that overlaps the first.
        other = dict(item, start_line=start, end_line=min(total, end + 1), severity="low", quote=quote)
        other["body"] = "Reported again, in other words."
        return [
            Case(tag, slip, "true", item, path, start, end),
            Case(tag, slip, "true", other, path, start, end),
        ]
    elif slip == "duplicate-quote":
        other = dict(item, title=f"{_text(rng, corpus, path, start, end)[0]} [#{tag + 1}]")
        return [
            Case(tag, slip, "true", item, path, start, end),
            Case(tag + 1, slip, "true", other, path, start, end),
        ]
    return [Case(tag, slip, "true", item, path, start, end)]


def generate_extra(seed: int, files: Mapping[str, str], *, repo: str = "click") -> list[Case]:
    """The slips the issue did not count (``EXTRA_SLIPS``, ``EXTRA_FABRICATED``), shuffled.
    ``repo`` is the repository folder a model may put in front of paths."""
    rng = random.Random(seed * 7919 + 1)
    corpus = _Corpus(files)
    cases: list[Case] = []
    for slip, n in EXTRA_SLIPS.items():
        for _ in range(n):
            cases.append(_extra_case(rng, corpus, slip, len(cases), repo))
    for slip, n in EXTRA_FABRICATED.items():
        for _ in range(n):
            cases.append(_extra_fabricated(rng, corpus, slip, len(cases)))
    rng.shuffle(cases)
    return cases


_COMMENT = re.compile(r"^(.*?\S)\s+#\s.*$")
_COMMON = ("return None", "pass", ")", "]", "}", "return", "else:", "return False", "raise", "try:")


def _extra_case(rng: random.Random, corpus: _Corpus, slip: str, tag: int, repo: str) -> Case:
    want = {"comment-dropped": "# "}.get(slip)
    size = 1 if slip == "comment-dropped" else rng.choice((2, 3)) if slip == "lines-joined" else None
    crlf = [p for p in corpus.paths if "\r\n" in corpus.files[p]]
    for _ in range(10_000):
        path, start, end = corpus.region(rng, size=size, want=want)
        if slip == "crlf-file" and crlf and path not in crlf:
            continue
        if slip == "comment-dropped" and not _COMMENT.match(corpus.lines[path][start - 1]):
            continue
        if slip in ("path-repo-folder", "path-url-encoded") and "/" not in path:
            continue
        if slip == "line-zero" and len(corpus.occurrences(path, start, end)) != 1:
            continue
        break
    title, body, suggestion = _text(rng, corpus, path, start, end)
    quote = corpus.quote(rng, path, start, end)
    item = _base(tag, title, body, suggestion, path, start, end, quote)
    lines = quote.split("\n")
    if slip == "tabs":
        item["quote"] = "\n".join(re.sub(r"    ", "\t", line).replace(" ", "\t", 1) for line in lines)
    elif slip == "comment-dropped":
        match = _COMMENT.match(quote)
        assert match is not None
        item["quote"] = match.group(1)
    elif slip == "lines-joined":
        item["quote"] = " ".join(line.strip() for line in lines)
    elif slip == "crlf-file":
        item["quote"] = quote.replace("\n", "\r\n") if rng.random() < 0.5 else quote
    elif slip == "number-format":
        fmt = rng.choice(("{n} | {x}", "{n}: {x}", "L{n} {x}", "  {n}\t{x}", "{n}  {x}"))
        item["quote"] = "\n".join(
            fmt.format(n=n, x=x) for n, x in zip(range(start, end + 1), lines, strict=True)
        )
    elif slip == "path-anchor":
        item["path"] = rng.choice(
            (f"{path}#L{start}-L{end}", f"{path}#L{start}", f"{path} (line {start})", f"{path}, line {start}",
             f"{path}:{start}:{end}", f"{path}:L{start}")
        )  # fmt: skip
    elif slip == "path-repo-folder":
        item["path"] = f"{repo}/{path}"
    elif slip == "path-url-encoded":
        item["path"] = path.replace("/", "%2F") if rng.random() < 0.5 else path.replace(".", "%2E")
    elif slip == "path-quoted":
        item["path"] = rng.choice(("`{}`", '"{}"', "'{}'")).format(path)
    elif slip == "lines-odd":
        kind = rng.choice(("float", "L", "range", "words"))
        if kind == "float":
            item.update(start_line=f"{start}.0", end_line=f"{end}.0")
        elif kind == "L":
            item.update(start_line=f"L{start}", end_line=f"L{end}")
        elif kind == "range":
            item.update(start_line=f"{start}-{end}", end_line=None)
        else:
            item.update(start_line=f"line {start}", end_line=f"line {end}")
    elif slip == "line-zero":
        total = len(corpus.lines[path])
        item["start_line"] = rng.choice((0, -1, -start, total + 5, 10**9))
        item["end_line"] = rng.choice((None, 0, item["start_line"]))
    elif slip == "common-quote":
        # A true finding on a very common line: its place is right only if the lines are kept.
        for _ in range(10_000):
            path, start, end = corpus.region(rng, size=1)
            hits = [i for i, x in enumerate(corpus.lines[path], 1) if x.strip() in _COMMON]
            if hits:
                start = end = rng.choice(hits)
                break
        name = corpus.enclosing(path, start)
        item = _base(tag, f"`{name}` {rng.choice(PROBLEMS)}", f"In `{name}` the result is lost.", "",
                     path, start, end, corpus.lines[path][start - 1].strip())  # fmt: skip
    return Case(tag, slip, "true", item, path, start, end)


_FLIPS = ((" == ", " != "), (" != ", " == "), (" is not ", " is "), (" is ", " is not "),
          (" not in ", " in "), (" in ", " not in "), (" and ", " or "), (" or ", " and "),
          ("True", "False"), ("False", "True"),
          (" < ", " <= "), (" > ", " >= "), (" + 1", " - 1"), ("if not ", "if "))  # fmt: skip


def _extra_fabricated(rng: random.Random, corpus: _Corpus, slip: str, tag: int) -> Case:
    if slip == "fab-unpacked-path":
        path, start, end = corpus.region(rng, size=1)
        quote = corpus.lines[path][start - 1].strip()
        head, _, name = path.rpartition("/")
        item = _base(tag, f"`{name}` {rng.choice(PROBLEMS)}", "Seen in a file that was not sent.", "",
                     f"{head}/_vendor/{name}" if head else f"_vendor/{name}", start, end, quote)  # fmt: skip
        return Case(tag, slip, "fabricated", item)
    for _ in range(100_000):
        path, start, end = corpus.region(rng, size=1)
        line = corpus.lines[path][start - 1]
        flips = [(a, b) for a, b in _FLIPS if a in line]
        if not flips:
            continue
        a, b = rng.choice(flips)
        altered = line.replace(a, b, 1).strip()
        if _norm(altered) in re.sub(r"\s+", " ", corpus.files[path]):
            continue
        title, body, suggestion = _text(rng, corpus, path, start, end)
        item = _base(tag, title, body, suggestion, path, start, end, altered)
        return Case(tag, slip, "fabricated", item)
    raise AssertionError("no line to alter")


def _absent_line(rng: random.Random, corpus: _Corpus, pool: Sequence[str], path: str, like: str) -> str:
    indent = like[: len(like) - len(like.lstrip())]
    text = corpus.files[path]
    for _ in range(1000):
        a, b, c = (rng.choice(pool) for _ in range(3))
        line = indent + rng.choice(
            (f"{a} = {b}.{c}({a})", f"if {a} is not None and {b}:", f"return {a}({b}, {c}=True)",
             f"self.{a} = {b}[{c}]", f"{a}.append({b}.{c})")
        )  # fmt: skip
        if _norm(line) not in text and len(line.strip()) >= 14:
            return line
    raise AssertionError("no absent line")


def _fabricated(rng: random.Random, corpus: _Corpus, pool: Sequence[str], slip: str, tag: int) -> Case:
    if slip == "fab-middle":
        path, start, end = corpus.region(rng, size=rng.choice((3, 3, 4, 5)))
        lines = corpus.lines[path][start - 1 : end]
        mid = len(lines) // 2
        lines[mid] = _absent_line(rng, corpus, pool, path, lines[mid])
        quote = textwrap.dedent("\n".join(lines))
    elif slip == "fab-other-file":
        while True:
            source, s, _ = corpus.region(rng, size=1)
            path = rng.choice([p for p in corpus.paths if p != source])
            quote = corpus.lines[source][s - 1].strip()
            if _norm(quote) not in re.sub(r"\s+", " ", corpus.files[path]):
                break
        start = end = rng.randint(1, len(corpus.lines[path]))
    else:
        path, start, end = corpus.region(rng, size=1)
        quote = _absent_line(rng, corpus, pool, path, corpus.lines[path][start - 1]).strip()
    title, body, suggestion = _text(rng, corpus, path, start, end)
    item = _base(tag, title, body, suggestion, path, start, end, quote)
    return Case(tag, slip, "fabricated", item)


def _generic(rng: random.Random, corpus: _Corpus, slip: str, tag: int) -> Case:
    path = max(corpus.paths, key=lambda p: len(corpus.lines[p]))  # src/click/core.py in Click
    start = rng.randint(1, len(corpus.lines[path]) - 2)
    end = start + rng.choice((0, 1, 2))
    quote = "return rv" if slip == "generic-return-rv" else None
    item = _base(tag, rng.choice(GENERIC_TITLES), rng.choice(GENERIC_BODIES), "", path, start, end, quote)
    return Case(tag, slip, "generic", item)


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Placed:
    """Where one finding ended up: verified at path:start-end, or in another list."""

    outcome: str  # "verified", "unanchored", "unverified"
    path: str | None = None
    start: int | None = None
    end: int | None = None
    location: str | None = None


def tag_of(title: str) -> int | None:
    match = _TAG.search(title)
    return int(match.group(1)) if match else None


def placements(verification: Any) -> dict[int, Placed]:
    """Each tag's outcome in a Verification (or anything with the same lists)."""
    placed: dict[int, Placed] = {}
    for u in getattr(verification, "unverified", ()):
        tag = tag_of(u.title)
        if tag is not None:
            placed[tag] = Placed("unverified")
    for u in getattr(verification, "unanchored", ()):
        tag = tag_of(u.title)
        if tag is not None:
            placed[tag] = Placed("unanchored")
    for f in verification.verified:
        for title in (f.title, *getattr(f, "merged_titles", ())):
            tag = tag_of(title)
            if tag is not None:
                placed[tag] = Placed(
                    "verified", f.path, f.start_line, f.end_line, getattr(f, "location", None)
                )
    return placed


def outcome(case: Case, placed: Mapping[int, Placed]) -> str:
    p = placed.get(case.tag)
    if p is None:
        return "missing"
    if p.outcome == "unverified":
        return "rejected"
    if p.outcome == "unanchored":
        return "unanchored"
    if case.kind == "true" and (p.path, p.start, p.end) == (case.path, case.start, case.end):
        return "right"
    return "wrong"


@dataclass(frozen=True)
class Score:
    table: dict[str, Counter[str]]  # slip -> outcome -> n
    kinds: dict[str, Counter[str]]  # "true" / "fabricated" / "generic" -> outcome -> n

    def rate(self, kind: str, what: str) -> float:
        counts = self.kinds[kind]
        return counts[what] / max(1, sum(counts.values()))

    def slip_rate(self, slip: str, what: str) -> float:
        counts = self.table[slip]
        return counts[what] / max(1, sum(counts.values()))


def score(cases: Iterable[Case], placed: Mapping[int, Placed]) -> Score:
    table: dict[str, Counter[str]] = {}
    kinds: dict[str, Counter[str]] = {}
    for case in cases:
        result = outcome(case, placed)
        table.setdefault(case.slip, Counter())[result] += 1
        kinds.setdefault(case.kind, Counter())[result] += 1
    return Score(table, kinds)


def markdown_table(score: Score) -> str:
    rows = [
        "| slip | n | right lines | wrong place | rejected | unanchored |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    order = [*SLIPS, *FABRICATED, *GENERIC, *EXTRA_SLIPS, *EXTRA_FABRICATED]
    for slip, counts in sorted(score.table.items(), key=lambda kv: order.index(kv[0])):
        n = sum(counts.values())
        rows.append(
            f"| {slip} | {n} | {counts['right']} | {counts['wrong']} | {counts['rejected']}"
            f" | {counts['unanchored'] + counts['missing']} |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------- reading the reports


def sample(cases: list[Case], per_slip: int = 4) -> list[Case]:
    """The first ``per_slip`` cases of each slip (both halves of a duplicate pair)."""
    taken: dict[str, int] = {}
    chosen: list[Case] = []
    for case in cases:
        if taken.get(case.slip, 0) < per_slip:
            taken[case.slip] = taken.get(case.slip, 0) + 1
            chosen.append(case)
    tags = {c.tag for c in chosen}
    return [c for c in cases if c.tag in tags]


Row = tuple[int, str, int, int, str, frozenset[int]]  # tag, path, start, end, location, merged tags


def tag(title: str) -> int:
    found = tag_of(title)
    return -1 if found is None else found


def tags_in(titles: Any) -> frozenset[int]:
    return frozenset(int(m) for t in titles for m in _TAG.findall(t))


def merged_tags(title: str, titles: Any) -> frozenset[int]:
    """The merged duplicates' other titles (Markdown shows each once, and not the finding's own)."""
    return tags_in(titles) - {tag(title)}


def rows_from_json(data: dict[str, Any]) -> tuple[set[Row], set[int], set[int]]:
    verified = {
        (tag(f["title"]), f["path"], f["start_line"], f["end_line"], f["location"],
         merged_tags(f["title"], f["merged_titles"]))
        for f in data["verified"]
    }  # fmt: skip
    return (
        verified,
        {tag(u["title"]) for u in data["unanchored"]},
        {tag(u["title"]) for u in data["unverified"]},
    )


def rows_from_sarif(doc: dict[str, Any]) -> set[Row]:
    rows: set[Row] = set()
    for result in doc["runs"][0]["results"]:
        where = result["locations"][0]["physicalLocation"]
        region = where["region"]
        rows.add(
            (
                tag(result["message"]["text"]),
                where["artifactLocation"]["uri"],
                region["startLine"],
                region["endLine"],
                result["properties"]["location"],
                merged_tags(result["message"]["text"], result["properties"].get("merged_titles", [])),
            )
        )
    return rows


_MD_FINDING = re.compile(r"^#### (.+)\n\n`([^`]+?):(\d+)(?:-(\d+))?` · \w+ · ([^·\n]+)(.*)\n", re.MULTILINE)
_MD_LISTED = re.compile(r"^- \*\*(.+?)\*\* \(\w+, \w+\) at ", re.MULTILINE)
_MD_ALSO = re.compile(r"^Also reported as: (.+)$", re.MULTILINE)


def rows_from_markdown(md: str) -> tuple[set[Row], set[int], set[int]]:
    from wholerepo.report.markdown import LOCATION_TEXT  # here: an older wholerepo has none

    methods = {text: name for name, text in LOCATION_TEXT.items()}
    sections = {part.split("\n", 1)[0].split(" (")[0]: part for part in re.split(r"\n(?=## )", md)}
    blocks = sections["## Findings"].split("\n#### ")
    rows: set[Row] = set()
    for block in blocks[1:]:
        match = _MD_FINDING.match("#### " + block)
        assert match is not None, block[:300]
        title, path, start, end, method, _meta = match.groups()
        also = _MD_ALSO.search(block)
        merged = tags_in([also.group(1)]) if also else frozenset()
        rows.add((tag(title), path, int(start), int(end or start), methods[method.strip()], merged))
    unanchored = {tag(t) for t in _MD_LISTED.findall(sections.get("## Unanchored", ""))}
    unverified = {tag(t) for t in _MD_LISTED.findall(sections.get("## Unverified", ""))}
    return rows, unanchored, unverified


def rows_from_verification(v: Verification) -> tuple[set[Row], set[int], set[int]]:
    verified = {
        (tag(f.title), f.path, f.start_line, f.end_line, f.location, merged_tags(f.title, f.merged_titles))
        for f in v.verified
    }
    return (
        verified,
        {tag(u.title) for u in v.unanchored},
        {tag(u.title) for u in v.unverified},
    )


def placements_from_rows(rows: tuple[set[Row], set[int], set[int]]) -> dict[int, Placed]:
    """Each tag's outcome, from the rows read out of a report (as placements() reads a Verification)."""
    verified, unanchored, unverified = rows
    placed: dict[int, Placed] = {t: Placed("unverified") for t in unverified}
    placed.update({t: Placed("unanchored") for t in unanchored})
    for r in verified:
        for t in (r[0], *r[5]):
            placed[t] = Placed("verified", r[1], r[2], r[3], r[4])
    return placed
