"""The change under review for ``--base REF``: a unified diff, parsed once (unidiff).

The diff runs from the merge base of REF and HEAD to the working tree (what the pack holds), with
paths relative to the reviewed directory, as the pack's paths are. Each file's added lines and
hunks (the new side's line ranges, which is where GitHub accepts review comments) come from the
same parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .repo import run, work_tree


@dataclass(frozen=True)
class Hunk:
    """One hunk's new-side range, inclusive (``start`` > ``end`` for a hunk that only deletes)."""

    start: int
    end: int


@dataclass(frozen=True)
class FileChange:
    path: str  # the new path ("" when the file was deleted)
    old_path: str  # the old path ("" when the file was added)
    added: frozenset[int]  # new-side line numbers added or changed
    hunks: tuple[Hunk, ...]
    binary: bool = False


@dataclass(frozen=True)
class Diff:
    ref: str
    base: str  # the commit the diff starts from
    text: str = field(repr=False)
    changed: dict[str, frozenset[int]]  # path -> added or modified line numbers (new side)
    files: tuple[FileChange, ...] = ()


def diff_against(root: Path, ref: str) -> Diff:
    """The working tree of ``root`` against the merge base of ``ref`` and HEAD."""
    if ref.startswith("-"):
        raise UsageError(f"--base {ref!r} is not a git revision")
    if work_tree(root) is None:
        raise UsageError(f"--base needs a git repository: {root} is not inside one")
    try:
        commit = run(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    except UsageError as exc:
        raise UsageError(f"--base {ref!r} is not a commit in this repository") from exc
    commit_id = commit.decode().strip()
    try:
        base = run(root, "merge-base", commit_id, "HEAD").decode().strip() or commit_id
    except UsageError:  # no common history, or no HEAD yet: compare with REF itself
        base = commit_id
    raw = run(
        root, "diff", "--no-color", "--no-ext-diff", "--no-renames", "--relative", "-U3", base, "--", "."
    )
    text = raw.decode("utf-8", "replace")
    files = parse(text)
    changed = {f.path: f.added for f in files if f.path}
    return Diff(ref=ref, base=base, text=text, changed=changed, files=files)


def changed_lines(diff_text: str) -> dict[str, frozenset[int]]:
    """For each file in a unified diff, the new-side line numbers that were added or changed."""
    return {f.path: f.added for f in parse(diff_text) if f.path}


def parse(diff_text: str) -> tuple[FileChange, ...]:
    """Every file of a unified diff (``git diff`` output), with its added lines and hunks."""
    from unidiff.errors import UnidiffParseError
    from unidiff.patch import PatchSet

    try:
        patch = PatchSet(diff_text)
    except UnidiffParseError as exc:
        raise UsageError(f"the diff could not be read: {exc}") from exc
    files = []
    for pf in patch:
        new = "" if pf.is_removed_file else _strip(pf.target_file)
        old = "" if pf.is_added_file else _strip(pf.source_file)
        added = frozenset(
            line.target_line_no for hunk in pf for line in hunk if line.is_added and line.target_line_no
        )
        hunks = tuple(Hunk(h.target_start, h.target_start + h.target_length - 1) for h in pf)
        files.append(FileChange(new, old, added, hunks, binary=bool(pf.is_binary_file)))
    return tuple(files)


def _strip(name: str) -> str:
    """``b/path`` or ``a/path`` as git writes it, without the prefix."""
    if name.startswith(('"a/', '"b/')) and name.endswith('"'):  # a quoted name (quotePath is off)
        name = name[1:-1]
    return name[2:] if name[:2] in ("a/", "b/") else name
