"""Which files exist and are not ignored: git's own answer, or a .gitignore-aware walk outside git.

Inside a repository the list is exactly ``git ls-files --cached --others --exclude-standard``
(one call through gitpython, never a process per file), so nested .gitignore files, negations,
info/exclude, core.excludesFile and force-added files all behave as git decides.

What the work tree holds at each path is looked at without following links (reading.py): a
tracked file replaced by a FIFO or a device is "special", one below a directory replaced by a
symbolic link is "symlink", and neither is ever read. Each path is shown escaped
(``sanitize.escape_path``: a name with a newline, a control character or bytes that are not
UTF-8 is still one printable line), and opened by the name the file system gives it.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..sanitize import escape_path
from .reading import FileTooLarge, NotAFile, Reader, kind_of, read_bytes
from .repo import open_repo, run

if TYPE_CHECKING:
    import pathspec

SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"
LINGUIST_ATTRIBUTES = ("linguist-generated", "linguist-vendored")


__all__ = ["Candidate", "FileTooLarge", "Listing", "NotAFile", "Reader", "discover", "read_bytes"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One path the repository lists, relative to the packed directory, POSIX style.

    ``path`` is the name as shown (escaped, see sanitize.escape_path) and is what every later
    stage uses; ``raw`` is the name as the file system spells it, when that differs.
    """

    path: str
    kind: str = "file"  # file | symlink | submodule | missing | special (FIFO, device, socket)
    attributes: frozenset[str] = field(default_factory=frozenset)  # linguist-generated, ...
    size: int = 0  # bytes on disk when listed (files only)
    raw: str = ""

    @property
    def fs_path(self) -> str:
        """The path to open: as the file system spells it."""
        return self.raw or self.path

    @classmethod
    def of(
        cls, raw: str, kind: str = "file", attributes: frozenset[str] = frozenset(), size: int = 0
    ) -> Candidate:
        """The candidate for the file the file system names ``raw``."""
        shown = escape_path(raw)
        return cls(shown, kind, attributes, size, raw if shown != raw else "")


@dataclass(frozen=True, slots=True)
class Listing:
    """The result of discovery: the packed root and every candidate, sorted by path."""

    root: Path
    candidates: tuple[Candidate, ...]
    in_git: bool
    repo_root: Path | None = None


def _split_z(out: str) -> list[str]:
    return [p for p in out.split("\0") if p]


def discover(path: Path, *, tracked_only: bool = False) -> Listing:
    """List the files under ``path`` that git would list (or that a walk keeps outside git)."""
    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    if not path.is_dir():
        raise UsageError(f"path is not a directory: {path}")
    root = path.resolve()
    repo = open_repo(root)
    if repo is None:
        return Listing(root, tuple(sorted(_walk(root), key=lambda c: c.path)), in_git=False)
    with repo:  # closed here, not by a finalizer at some later moment
        top = repo.working_tree_dir
    if top is None:
        raise UsageError(
            f"{root} is inside a bare git repository: it has no work tree to pack",
            "pack a clone or a worktree of it",
        )
    return _git_listing(Path(top).resolve(), root, tracked_only)


_STAGED = re.compile(r"^([0-7]{6}) [0-9a-f]{40,64} [0-3]\t(.*)$", re.DOTALL)


def _git_listing(top: Path, root: Path, tracked_only: bool) -> Listing:
    # One ls-files call, run inside the packed directory: git limits itself to it and prints paths
    # relative to it. Staged entries carry "mode sha stage<TAB>"; untracked ones are bare paths.
    args = ["ls-files", "-z", "--stage"]
    if not tracked_only:
        args += ["--others", "--exclude-standard"]
    out = run(root, *args, what="ls-files (listing the files)").decode("utf-8", "surrogateescape")
    kinds: dict[str, str] = {}
    for entry in _split_z(out):
        staged = _STAGED.match(entry)
        if staged is None:
            # git prints an untracked nested repository as "dir/": a submodule not yet added.
            kinds.setdefault(entry, "submodule" if entry.endswith("/") else "file")
            continue
        mode, rel = staged.groups()
        if rel not in kinds:  # an unmerged path appears once per stage
            kinds[rel] = {SYMLINK_MODE: "symlink", GITLINK_MODE: "submodule"}.get(mode, "file")
    sizes: dict[str, int] = {}
    with Reader(root) as reader:
        for rel in sorted(kinds):  # sorted: each directory is opened once
            if kinds[rel] != "file":
                continue
            try:
                info = reader.lstat(rel)
            except FileNotFoundError:
                kinds[rel] = "missing"  # tracked, but deleted from the work tree
                continue
            except NotAFile as exc:  # below a directory the work tree replaced by a link
                kinds[rel] = exc.kind
                continue
            except OSError as exc:
                if exc.errno == errno.ENOTDIR:  # a parent directory is now a file
                    kinds[rel] = "missing"
                continue
            kinds[rel] = kind_of(info.st_mode)
            sizes[rel] = info.st_size
    attrs = linguist_attributes(root, [p for p, k in kinds.items() if k == "file"])
    candidates = sorted(
        (Candidate.of(p, kinds[p], attrs.get(p, frozenset()), sizes.get(p, 0)) for p in kinds),
        key=lambda c: c.path,
    )
    return Listing(root, tuple(candidates), in_git=True, repo_root=top)


def linguist_attributes(root: Path, paths: list[str]) -> dict[str, frozenset[str]]:
    """Read linguist-generated/-vendored for all paths in one ``git check-attr --stdin`` call."""
    if not paths:
        return {}
    data = "\0".join(paths).encode("utf-8", "surrogateescape") + b"\0"
    try:
        stdout = run(root, "check-attr", "-z", "--stdin", *LINGUIST_ATTRIBUTES, stdin=data)
    except UsageError:
        return {}
    fields = stdout.decode("utf-8", "surrogateescape").split("\0")
    found: dict[str, set[str]] = {}
    for i in range(0, len(fields) - 2, 3):
        rel, attr, value = fields[i], fields[i + 1], fields[i + 2]
        if value in ("set", "true"):
            found.setdefault(rel, set()).add(attr)
    return {k: frozenset(v) for k, v in found.items()}


# pathspec turns each ``*`` into a backtracking ``[^/]*``: a committed pattern with many of them in
# one path segment (``*a*a*a*a*b``) against a long crafted name takes minutes per file. Git's own
# matcher does not backtrack; two wildcards a segment (``*.min.*``) cost nothing measurable.
MAX_STARS_PER_SEGMENT = 2
# Matching tries every pattern on every path: 100,000 committed patterns take minutes for a few
# thousand files. Real ignore files hold tens or hundreds; patterns past this many are not used.
MAX_IGNORE_PATTERNS = 5_000
_STARS = re.compile(r"\*+")


def costly_pattern(line: str) -> bool:
    """Whether an ignore pattern has more ``*`` runs in one segment than can be matched quickly."""
    return any(len(_STARS.findall(part)) > MAX_STARS_PER_SEGMENT for part in line.split("/") if part != "**")


def pattern_problem(line: str) -> str | None:
    """Why a pattern someone else wrote (a repository's file) cannot be used, or None."""
    import pathspec

    if costly_pattern(line):
        return f"has more than {MAX_STARS_PER_SEGMENT} '*' in one path segment (too slow to match)"
    try:
        pathspec.GitIgnoreSpec.from_lines([line])
    except (ValueError, re.error) as exc:
        return f"is not a valid pattern ({' '.join(str(exc).split())})"
    return None


def _gitignore_spec(lines: list[str]) -> pathspec.GitIgnoreSpec | None:
    """A .gitignore's patterns; one that cannot be compiled (or matched in reasonable time) is
    left out."""
    import pathspec

    lines = [line for line in lines if not costly_pattern(line)][:MAX_IGNORE_PATTERNS]
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except (ValueError, re.error):
        good = []
        for line in lines:
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
            except (ValueError, re.error):
                continue
            good.append(line)
        return pathspec.GitIgnoreSpec.from_lines(good) if good else None


def _walk(root: Path) -> Iterator[Candidate]:
    """Walk a plain directory, applying every .gitignore as git would (nested, negations)."""

    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []

    def ignored(rel: str, is_dir: bool) -> bool:
        verdict = False
        for base, spec in specs:
            if base and not rel.startswith(base):
                continue
            sub = rel[len(base) :] + ("/" if is_dir else "")
            result = spec.check_file(sub)
            if result.include is not None:
                verdict = bool(result.include)
        return verdict

    def visit(directory: Path, rel_dir: str) -> Iterator[Candidate]:
        pushed = False
        try:
            text = reader.read(rel_dir + ".gitignore", 1 << 20)
        except (OSError, FileTooLarge):
            pass
        else:
            spec = _gitignore_spec(text.decode("utf-8", "replace").splitlines())
            if spec is not None:
                specs.append((rel_dir, spec))
                pushed = True
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            entries = []
        for entry in entries:
            if entry.name == ".git":
                continue
            rel = rel_dir + entry.name
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                if not ignored(rel, True):
                    yield from visit(Path(entry.path), rel + "/")
            elif not ignored(rel, False):
                kind = kind_of(info.st_mode)
                yield Candidate.of(rel, kind, size=info.st_size if kind == "file" else 0)
        if pushed:
            specs.pop()

    with Reader(root) as reader:
        yield from visit(root, "")
