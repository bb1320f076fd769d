"""Which files exist and are not ignored: git's own answer, or a .gitignore-aware walk outside git.

Inside a repository the list is exactly ``git ls-files --cached --others --exclude-standard``
(one call through gitpython, never a process per file), so nested .gitignore files, negations,
info/exclude, core.excludesFile and force-added files all behave as git decides.
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
from .repo import open_repo, run

if TYPE_CHECKING:
    import pathspec

SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"
LINGUIST_ATTRIBUTES = ("linguist-generated", "linguist-vendored")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One path the repository lists, relative to the packed directory, POSIX style."""

    path: str
    kind: str = "file"  # file | symlink | submodule | missing
    attributes: frozenset[str] = field(default_factory=frozenset)  # linguist-generated, ...
    size: int = 0  # bytes on disk when listed (files only)


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
    for rel, kind in kinds.items():
        if kind != "file":
            continue
        try:
            info = os.lstat(f"{root}/{rel}")
        except FileNotFoundError:
            kinds[rel] = "missing"  # tracked, but deleted from the work tree
            continue
        except OSError:
            continue
        if stat.S_ISLNK(info.st_mode):
            kinds[rel] = "symlink"
        else:
            sizes[rel] = info.st_size
    attrs = _linguist_attributes(root, [p for p, k in kinds.items() if k == "file"])
    candidates = tuple(
        Candidate(p, kinds[p], attrs.get(p, frozenset()), sizes.get(p, 0)) for p in sorted(kinds)
    )
    return Listing(root, candidates, in_git=True, repo_root=top)


def _linguist_attributes(root: Path, paths: list[str]) -> dict[str, frozenset[str]]:
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


def _walk(root: Path) -> Iterator[Candidate]:
    """Walk a plain directory, applying every .gitignore as git would (nested, negations)."""
    import pathspec

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
        gi = directory / ".gitignore"
        pushed = False
        if gi.is_file() and not gi.is_symlink():
            lines = gi.read_text(encoding="utf-8", errors="replace").splitlines()
            specs.append((rel_dir, pathspec.GitIgnoreSpec.from_lines(lines)))
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
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode):
                if not ignored(rel, True):
                    yield from visit(Path(entry.path), rel + "/")
            elif not ignored(rel, False):
                if stat.S_ISLNK(mode):
                    yield Candidate(rel, "symlink")
                else:
                    yield Candidate(rel, "file", size=entry.stat(follow_symlinks=False).st_size)
        if pushed:
            specs.pop()

    yield from visit(root, "")


class FileTooLarge(Exception):
    """A file over the size limit: not read."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def read_bytes(root: Path, rel: str, limit: int | None = None) -> bytes:
    """Read one listed file without following a symlink out of the repository.

    Only a regular file is read, and never more than ``limit`` bytes: a file over it (or one that
    grows past it while read) raises FileTooLarge. One open, one fstat, usually one read.
    """
    fd = os.open(f"{root}/{rel}", os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(
                errno.EISDIR if stat.S_ISDIR(info.st_mode) else errno.EINVAL, "not a regular file"
            )
        size = info.st_size
        if limit is not None and size > limit:
            raise FileTooLarge(size)
        cap = (limit if limit is not None else max(size, 1 << 20)) + 1
        chunks = [os.read(fd, min(size + 1, cap))]
        total = len(chunks[0])
        while chunks[-1] and total < cap and total > size:  # it grew while we read
            chunks.append(os.read(fd, cap - total))
            total += len(chunks[-1])
        if limit is not None and total > limit:
            raise FileTooLarge(total)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)
