"""The pull request's diff as GitHub shows it: per file, its hunks and the lines a comment may sit on.

GitHub accepts a review comment only on a line inside one of the diff's hunks: the RIGHT side
(the head's line numbers) for added and context lines; a multi-line comment only when its first
and last lines lie in the same hunk. Files without a patch (binary, too large, a rename without
changes, a deleted file) take no comment at all. The table is built from GitHub's own patches
(``GET /pulls/{n}/files``) when we have them, so it matches what GitHub checks, else from git.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet


@dataclass(frozen=True)
class FileDiff:
    """One file of the pull request's diff."""

    path: str  # the head's path ("" never)
    status: str  # added | modified | removed | renamed | binary | unchanged
    old_path: str | None = None  # the base's path of a renamed file
    hunks: tuple[tuple[int, int], ...] = ()  # RIGHT-side (head) line ranges, inclusive
    added: frozenset[int] = field(default_factory=frozenset)  # head lines added or changed
    has_patch: bool = True

    def hunk_of(self, line: int) -> int | None:
        """The index of the hunk whose RIGHT side holds ``line``, if any."""
        for index, (start, end) in enumerate(self.hunks):
            if start <= line <= end:
                return index
        return None


@dataclass(frozen=True)
class Anchor:
    """Where a review comment goes: ``line`` on the RIGHT side, from ``start_line`` if a range."""

    path: str
    line: int
    start_line: int | None = None

    def comment_fields(self) -> dict[str, Any]:
        """The fields of a review comment (``start_line`` only for a real range: GitHub refuses
        ``start_line == line`` with a 422)."""
        fields: dict[str, Any] = {"path": self.path, "line": self.line, "side": "RIGHT"}
        if self.start_line is not None and self.start_line < self.line:
            fields["start_line"] = self.start_line
            fields["start_side"] = "RIGHT"
        return fields


@dataclass(frozen=True)
class DiffMap:
    """Every file of the diff by its head path; the source says where the hunks came from."""

    files: Mapping[str, FileDiff]
    source: str  # "github" (the API's patches) | "git" (local git)

    def anchor(self, path: str, start: int, end: int) -> tuple[Anchor | None, str]:
        """The comment anchor for lines ``start..end`` of ``path``, or (None, why not)."""
        diff = self.files.get(path)
        if diff is None:
            return None, "the file is not changed by the pull request"
        if not diff.has_patch or not diff.hunks:
            return None, "GitHub shows no patch for this file"
        first, last = diff.hunk_of(start), diff.hunk_of(end)
        if first is None or last is None:
            return None, "the lines are outside the pull request's diff"
        if first != last:
            return None, "the lines span more than one hunk of the diff"
        return Anchor(path, end, start if start < end else None), ""

    def changed(self) -> dict[str, frozenset[int]]:
        """Added or changed head lines per file: what ``in_diff`` is measured against."""
        return {path: diff.added for path, diff in self.files.items()}

    def renames(self) -> dict[str, str]:
        """Base path -> head path for renamed files."""
        return {d.old_path: d.path for d in self.files.values() if d.old_path and d.old_path != d.path}


def _strip(name: str | None) -> str | None:
    if name is None or name == "/dev/null":
        return None
    return name[2:] if name.startswith(("a/", "b/")) else name


def _file_diff(patched: Any, path: str, status: str, old_path: str | None) -> FileDiff:
    hunks: list[tuple[int, int]] = []
    added: set[int] = set()
    for hunk in patched:
        if hunk.target_length > 0:
            hunks.append((hunk.target_start, hunk.target_start + hunk.target_length - 1))
        for line in hunk:
            if line.is_added and line.target_line_no is not None:
                added.add(line.target_line_no)
    return FileDiff(path, status, old_path, tuple(hunks), frozenset(added), has_patch=bool(hunks))


def from_git(diff_text: str) -> DiffMap:
    """The map of a ``git diff -M`` between the merge base and the head."""
    try:
        patch = PatchSet(diff_text)
    except UnidiffParseError:
        return DiffMap({}, "git")
    files: dict[str, FileDiff] = {}
    for patched in patch:
        target = _strip(patched.target_file)
        source = _strip(patched.source_file)
        if patched.is_removed_file or target is None:
            path = source or patched.path
            files[path] = FileDiff(path, "removed", has_patch=False)
            continue
        if patched.is_binary_file:
            files[target] = FileDiff(target, "binary", source if patched.is_rename else None, has_patch=False)
            continue
        status = "added" if patched.is_added_file else "renamed" if patched.is_rename else "modified"
        old = source if patched.is_rename else None
        files[target] = _file_diff(patched, target, status, old)
    return DiffMap(files, "git")


def from_api(entries: Iterable[Mapping[str, Any]]) -> DiffMap:
    """The map of ``GET /pulls/{n}/files``: each file's ``patch`` holds its hunks (none for a binary
    or very large file)."""
    files: dict[str, FileDiff] = {}
    for entry in entries:
        path = entry.get("filename")
        if not isinstance(path, str) or not path:
            continue
        status = str(entry.get("status") or "modified")
        previous = entry.get("previous_filename")
        old = previous if isinstance(previous, str) and previous else None
        patch = entry.get("patch")
        if status == "removed":
            files[path] = FileDiff(path, "removed", has_patch=False)
            continue
        if not isinstance(patch, str) or not patch.strip():
            files[path] = FileDiff(path, "binary" if status != "renamed" else status, old, has_patch=False)
            continue
        text = f"--- a/{old or path}\n+++ b/{path}\n{patch.rstrip(chr(10))}\n"
        try:
            patched = next(iter(PatchSet(text)), None)
        except UnidiffParseError:
            patched = None
        if patched is None:
            files[path] = FileDiff(path, status, old, has_patch=False)
            continue
        files[path] = _file_diff(patched, path, status, old)
    return DiffMap(files, "github")
