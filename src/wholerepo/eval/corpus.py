"""An evaluation corpus: its format (TOML or JSON), loading it strictly, writing it, checking cases out.

A corpus is one file (``corpus.toml`` or ``corpus.json``, or any ``*.toml`` / ``*.json`` named on
the command line) beside the repositories or git bundles its cases point at::

    name = "itsdangerous-planted"
    [[cases]]
    id = "case-01"
    repo = "repo.bundle"          # a bundle inside the corpus directory, or a repository path
    base = "4f0c..."              # any revision the repository resolves: a SHA, a branch, a tag
    head = "9a1e..."
    [[cases.expected]]            # none at all: a clean case, where every finding is a false alarm
    path = "src/app/util.py"
    start_line = 12
    end_line = 12
    category = "bug"              # optional
    severity = "high"             # optional
    description = "the loop stops one element early"

Repositories are named by path only: a URL, ``host:path`` or ``transport::address`` is refused,
so evaluating a corpus never reaches the network. Each case is checked out into a temporary work
tree (``git worktree`` from one bare clone per source), never in the source itself.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ConfigError, UsageError
from ..git.repo import run
from ..reviewer.findings import CATEGORIES, SEVERITIES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

CORPUS_FILES = ("corpus.toml", "corpus.json")
_TOP_KEYS = frozenset({"name", "description", "source", "cases"})
_CASE_KEYS = frozenset({"id", "repo", "base", "head", "expected", "kind", "cross_file", "note"})
_ISSUE_KEYS = frozenset({"path", "start_line", "end_line", "category", "severity", "description"})
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|::|^[^/\\\s]+@[^/\\\s]+:|^[A-Za-z0-9.-]{2,}:(?![\\/])")


@dataclass(frozen=True)
class Expected:
    """An issue a good review finds: where, and what (``description``, for people and the judge)."""

    path: str
    start_line: int
    end_line: int
    description: str
    category: str | None = None
    severity: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "start_line": self.start_line, "end_line": self.end_line}
        if self.category is not None:
            data["category"] = self.category
        if self.severity is not None:
            data["severity"] = self.severity
        data["description"] = self.description
        return data


@dataclass(frozen=True)
class Case:
    """One change to review: ``head`` against ``base`` in ``repo``; no expected issue means clean."""

    id: str
    repo: str
    base: str
    head: str
    expected: tuple[Expected, ...] = ()
    kind: str | None = None  # planted: the bug's kind, or clean-rename / clean-extract
    cross_file: bool | None = None  # planted: needs code outside the changed files to see
    note: str | None = None

    @property
    def clean(self) -> bool:
        return not self.expected

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "repo": self.repo, "base": self.base, "head": self.head}
        for key in ("kind", "cross_file", "note"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        data["expected"] = [e.as_dict() for e in self.expected]
        return data


@dataclass(frozen=True)
class Corpus:
    file: Path
    cases: tuple[Case, ...]
    name: str = ""
    description: str | None = None
    source: str | None = None

    @property
    def root(self) -> Path:
        return self.file.parent

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            data["description"] = self.description
        if self.source is not None:
            data["source"] = self.source
        data["cases"] = [c.as_dict() for c in self.cases]
        return data


# -- reading ------------------------------------------------------------------------------------


def corpus_file(path: Path) -> Path:
    """The corpus file ``path`` names: the file itself, or the one corpus file in a directory."""
    if path.is_dir():
        found = [path / name for name in CORPUS_FILES if (path / name).is_file()]
        if not found:
            raise UsageError(f"no corpus in {path}: expected {' or '.join(CORPUS_FILES)}")
        if len(found) > 1:
            raise UsageError(f"{path} holds both {CORPUS_FILES[0]} and {CORPUS_FILES[1]}: name one")
        return found[0]
    if not path.is_file():
        raise UsageError(f"corpus not found: {path}")
    return path


def load_corpus(path: Path) -> Corpus:
    """Read and check a corpus; any mistake is a one-line ConfigError naming the case and key."""
    file = corpus_file(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from exc
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if file.suffix.lower() == ".json" else "TOML"
        raise ConfigError(f"{file}: invalid {kind}: {' '.join(str(exc).split())}") from exc
    return parse_corpus(data, file)


def parse_corpus(data: Any, file: Path) -> Corpus:
    where = str(file)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a corpus is a table with a list of cases")
    _no_unknown(data, _TOP_KEYS, where)
    raw_cases = data.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise ConfigError(f"{where}: 'cases' must be a non-empty list")
    cases: list[Case] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_cases, 1):
        case = _case(raw, number, where)
        if case.id in seen:
            raise ConfigError(f"{where}: two cases have the id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    return Corpus(
        file=file.resolve(),
        cases=tuple(cases),
        name=_text(data, "name", where, required=False) or file.parent.name,
        description=_text(data, "description", where, required=False),
        source=_text(data, "source", where, required=False),
    )


def _case(raw: Any, number: int, where: str) -> Case:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: case {number} must be a table")
    case_id = raw.get("id", f"case-{number}")
    if not isinstance(case_id, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", case_id):
        raise ConfigError(f"{where}: case {number}: 'id' must be letters, digits, '.', '_' or '-'")
    here = f"{where}: case {case_id}"
    _no_unknown(raw, _CASE_KEYS, here)
    repo = _text(raw, "repo", here)
    assert repo is not None
    if _URL.search(repo) or repo.startswith("-"):
        raise ConfigError(f"{here}: 'repo' must be a local path (a repository or a bundle), not {repo!r}")
    revisions = {}
    for key in ("base", "head"):
        value = _text(raw, key, here)
        assert value is not None
        if value.startswith("-") or any(c.isspace() for c in value):
            raise ConfigError(f"{here}: {key!r} is not a git revision: {value!r}")
        revisions[key] = value
    expected = raw.get("expected", [])
    if not isinstance(expected, list):
        raise ConfigError(f"{here}: 'expected' must be a list of issues (empty for a clean case)")
    cross = raw.get("cross_file")
    if cross is not None and not isinstance(cross, bool):
        raise ConfigError(f"{here}: 'cross_file' must be true or false")
    return Case(
        id=case_id,
        repo=repo,
        base=revisions["base"],
        head=revisions["head"],
        expected=tuple(_issue(item, i, here) for i, item in enumerate(expected, 1)),
        kind=_text(raw, "kind", here, required=False),
        cross_file=cross,
        note=_text(raw, "note", here, required=False),
    )


def _issue(raw: Any, number: int, where: str) -> Expected:
    here = f"{where}: expected issue {number}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{here} must be a table")
    _no_unknown(raw, _ISSUE_KEYS, here)
    path = _text(raw, "path", here)
    assert path is not None
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise ConfigError(f"{here}: 'path' must be relative to the repository root, with '/': {path!r}")
    start = raw.get("start_line")
    end = raw.get("end_line", start)
    for key, value in (("start_line", start), ("end_line", end)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{here}: {key!r} must be a line number (1 or more)")
    assert isinstance(start, int) and isinstance(end, int)
    if end < start:
        raise ConfigError(f"{here}: 'end_line' {end} is before 'start_line' {start}")
    category = _text(raw, "category", here, required=False)
    if category is not None and category not in CATEGORIES:
        raise ConfigError(f"{here}: 'category' must be one of {', '.join(CATEGORIES)}")
    severity = _text(raw, "severity", here, required=False)
    if severity is not None and severity not in SEVERITIES:
        raise ConfigError(f"{here}: 'severity' must be one of {', '.join(SEVERITIES)}")
    description = _text(raw, "description", here)
    assert description is not None
    return Expected(str(pure), start, end, description, category, severity)


def _text(raw: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key!r} must be a non-empty string")
    return value


def _no_unknown(raw: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")


# -- writing ------------------------------------------------------------------------------------


def dump_toml(corpus: Mapping[str, Any]) -> str:
    """The corpus as TOML (the subset a corpus needs: strings, integers, booleans, case tables)."""
    lines: list[str] = []
    for key, value in corpus.items():
        if key != "cases":
            lines.append(f"{key} = {_toml_value(value)}")
    for case in corpus.get("cases", []):
        lines.extend(["", "[[cases]]"])
        for key, value in case.items():
            if key != "expected":
                lines.append(f"{key} = {_toml_value(value)}")
        for issue in case.get("expected", []):
            lines.append("[[cases.expected]]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in issue.items())
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    raise TypeError(f"no TOML form for {type(value).__name__}")


def dump(corpus: Mapping[str, Any], file: Path) -> str:
    """The corpus in the format ``file``'s suffix names."""
    if file.suffix.lower() == ".json":
        return json.dumps(corpus, indent=2, ensure_ascii=False) + "\n"
    return dump_toml(corpus)


# -- checking cases out -------------------------------------------------------------------------


def source_of(corpus: Corpus, case: Case) -> Path:
    """The repository or bundle ``case.repo`` names: a bundle must lie inside the corpus directory."""
    path = Path(case.repo).expanduser()
    if not path.is_absolute():
        path = corpus.root / path
    path = path.resolve()
    if path.is_file():
        root = corpus.root.resolve()
        if root != path and root not in path.parents:
            raise ConfigError(f"case {case.id}: the bundle {case.repo} is outside the corpus directory")
        return path
    if path.is_dir():
        return path
    raise ConfigError(f"case {case.id}: 'repo' {case.repo} does not exist (from {corpus.root})")


@dataclass(frozen=True)
class Checkout:
    """A case's head checked out in a temporary work tree, its revisions resolved."""

    case: Case
    path: Path
    base: str  # full SHA
    head: str  # full SHA
    clone: Path = field(repr=False, default=Path())  # the bare clone the work tree belongs to


@dataclass
class Workspace:
    """Temporary bare clones (one per source) and work trees; everything goes on ``close()``."""

    root: Path
    clones: dict[Path, Path] = field(default_factory=dict)
    count: int = 0

    def clone(self, source: Path) -> Path:
        if source not in self.clones:
            target = self.root / f"src{len(self.clones)}.git"
            run(self.root, "clone", "-q", "--mirror", "--", str(source), str(target), what="clone")
            self.clones[source] = target
        return self.clones[source]

    def checkout(self, corpus: Corpus, case: Case) -> Checkout:
        bare = self.clone(source_of(corpus, case))
        base = resolve(bare, case.base, f"case {case.id}: base")
        head = resolve(bare, case.head, f"case {case.id}: head")
        self.count += 1
        tree = self.root / f"{self.count:04d}-{case.id}"
        run(bare, "worktree", "add", "-q", "--detach", str(tree), head, what="worktree add")
        return Checkout(case, tree, base, head, bare)

    def release(self, checkout: Checkout) -> None:
        try:
            run(checkout.clone, "worktree", "remove", "--force", str(checkout.path), what="worktree remove")
        except UsageError:
            pass
        shutil.rmtree(checkout.path, ignore_errors=True)


def resolve(repo: Path, revision: str, what: str) -> str:
    """The full SHA of the commit ``revision`` names in ``repo``."""
    try:
        out = run(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
    except UsageError as exc:
        raise ConfigError(f"{what} {revision!r} is not a commit in the repository") from exc
    return out.decode().strip()


@contextmanager
def workspace() -> Iterator[Workspace]:
    root = Path(tempfile.mkdtemp(prefix="wholerepo-eval-"))
    try:
        yield Workspace(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def case_ids(corpus: Corpus, chosen: Sequence[str]) -> tuple[Case, ...]:
    """The cases to run: all, or those named (an unknown name is an error)."""
    if not chosen:
        return corpus.cases
    known = {c.id: c for c in corpus.cases}
    missing = [name for name in chosen if name not in known]
    if missing:
        raise UsageError(f"no case {missing[0]!r} in the corpus", f"cases: {', '.join(list(known)[:10])}")
    wanted = set(chosen)
    return tuple(c for c in corpus.cases if c.id in wanted)
