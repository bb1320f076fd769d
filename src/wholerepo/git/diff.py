"""The change under review for ``--base REF``: a unified diff and each file's changed lines.

The diff runs from the merge base of REF and HEAD to the working tree (what the pack holds), with
paths relative to the reviewed directory, as the pack's paths are.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class Diff:
    ref: str
    base: str  # the commit the diff starts from
    text: str = field(repr=False)
    changed: dict[str, frozenset[int]]  # path -> added or modified line numbers (new side)


def _git(root: Path, *args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", "-c", "core.quotepath=off", *args],
            cwd=root,
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise UsageError(f"--base needs the git binary: {exc.strerror or exc}") from exc
    if proc.returncode != 0:
        message = " ".join(proc.stderr.decode("utf-8", "replace").split())[:300]
        raise UsageError(f"git {args[0]} failed: {message}")
    return proc.stdout.decode("utf-8", "replace")


def diff_against(root: Path, ref: str) -> Diff:
    """The working tree of ``root`` against the merge base of ``ref`` and HEAD."""
    if ref.startswith("-"):
        raise UsageError(f"--base {ref!r} is not a git revision")
    try:
        _git(root, "rev-parse", "--is-inside-work-tree")
    except UsageError as exc:
        raise UsageError(f"--base needs a git repository: {root} is not inside one") from exc
    try:
        commit = _git(
            root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"
        ).strip()
    except UsageError as exc:
        raise UsageError(f"--base {ref!r} is not a commit in this repository") from exc
    try:
        base = _git(root, "merge-base", commit, "HEAD").strip() or commit
    except UsageError:  # no common history, or no HEAD yet: compare with REF itself
        base = commit
    text = _git(
        root, "diff", "--no-color", "--no-ext-diff", "--no-renames", "--relative", "-U3", base, "--", "."
    )
    return Diff(ref=ref, base=base, text=text, changed=changed_lines(text))


def changed_lines(diff_text: str) -> dict[str, frozenset[int]]:
    """For each file in a unified diff, the new-side line numbers that were added or changed."""
    result: dict[str, set[int]] = {}
    path: str | None = None
    line = 0
    for raw in diff_text.splitlines():
        if raw.startswith("diff --git "):
            path = None
            continue
        if raw.startswith("+++ "):
            target = raw[4:].rstrip("\t")
            path = None if target == "/dev/null" else _strip_prefix(target)
            if path is not None:
                result.setdefault(path, set())
            continue
        if raw.startswith("--- "):
            continue
        match = _HUNK.match(raw)
        if match:
            line = int(match.group(1))
            continue
        if path is None or not raw:
            continue
        if raw[0] == "+":
            result[path].add(line)
            line += 1
        elif raw[0] == " ":
            line += 1
        # "-" lines and "\ No newline at end of file" do not advance the new side
    return {p: frozenset(lines) for p, lines in result.items()}


def _strip_prefix(target: str) -> str:
    if target.startswith('"') and target.endswith('"'):
        target = target[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        target = target.encode("latin-1", "replace").decode("utf-8", "replace")
    return target[2:] if target.startswith("b/") else target
