"""The local git side of a pull-request review: the head to review, the base to trust.

The head is reviewed where it is checked out, or in a temporary detached worktree when the job
checked out something else (the base, under ``pull_request_target``, or the merge commit). The
base branch is only read as blobs (``git show BASE:path``): its configuration, prompt and
REVIEW.md are what a review trusts; nothing of the head is executed or trusted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UsageError
from ..git.repo import safe_env

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run git in ``root`` without a pager, colours, external diff drivers or prompts."""
    try:
        proc = subprocess.run(
            ["git", "-c", "core.quotepath=off", "-c", "color.ui=false", *args],
            cwd=root,
            capture_output=True,
            check=False,
            env=_git_env(root),
        )
    except OSError as exc:
        raise UsageError(f"pr-review needs the git binary: {exc.strerror or exc}") from exc
    if check and proc.returncode != 0:
        message = " ".join(proc.stderr.decode("utf-8", "replace").split())[:300]
        raise UsageError(f"git {args[0]} failed: {message}")
    return proc


def _git_env(root: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"  # a fetch never waits for a password
    return safe_env(root, env)  # no hook, filter or monitor of the checkout's configuration runs


def is_sha(value: str | None) -> bool:
    return bool(value) and _SHA.match(value or "") is not None


def head_of(root: Path) -> str | None:
    proc = git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def top_level(root: Path) -> Path:
    proc = git(root, "rev-parse", "--show-toplevel", check=False)
    if proc.returncode != 0:
        raise UsageError(
            f"{root} is not a git checkout",
            "check the repository out first (actions/checkout with fetch-depth: 0)",
        )
    return Path(proc.stdout.decode().strip())


def has_commit(root: Path, sha: str) -> bool:
    return git(root, "cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0


def ensure_commit(root: Path, sha: str, *refs: str, depth: int | None = None) -> bool:
    """Make ``sha`` present locally, fetching it (or ``refs``) from origin if needed."""
    if not is_sha(sha):
        return False
    if has_commit(root, sha):
        return True
    deepen = [f"--depth={depth}"] if depth else []
    for what in (sha, *refs):
        git(root, "fetch", "--no-tags", "--quiet", *deepen, "origin", what, check=False)
        if has_commit(root, sha):
            return True
    return False


@contextmanager
def head_checkout(root: Path, head_sha: str, pr_number: int) -> Iterator[tuple[Path, str | None]]:
    """The directory holding the pull request's head, and a note when it is not ``root`` itself."""
    if head_of(root) == head_sha:
        yield root, None
        return
    if not ensure_commit(root, head_sha, f"refs/pull/{pr_number}/head"):
        raise UsageError(
            f"the pull request's head {head_sha[:12]} is not in the checkout and could not be fetched",
            "check it out: actions/checkout with ref: ${{ github.event.pull_request.head.sha }}",
        )
    holder = Path(tempfile.mkdtemp(prefix="wholerepo-head-"))
    tree = holder / "head"
    try:
        git(root, "worktree", "add", "--detach", "--quiet", str(tree), head_sha)
        yield tree, f"reviewed the pull request's head {head_sha[:7]} in a separate worktree"
    finally:
        git(root, "worktree", "remove", "--force", str(tree), check=False)
        shutil.rmtree(holder, ignore_errors=True)
        git(root, "worktree", "prune", check=False)


def merge_base(root: Path, base: str, head: str) -> str | None:
    proc = git(root, "merge-base", base, head, check=False)
    value = proc.stdout.decode().strip()
    return value if proc.returncode == 0 and is_sha(value) else None


def is_ancestor(root: Path, older: str, newer: str) -> bool | None:
    """True/False, or None when git cannot tell (a commit is missing)."""
    code = git(root, "merge-base", "--is-ancestor", older, newer, check=False).returncode
    return True if code == 0 else False if code == 1 else None


def blob(root: Path, commit: str, path: str, limit: int = 1_000_000) -> str | None:
    """The text of ``path`` at ``commit`` (None when absent, binary or too large)."""
    proc = git(root, "cat-file", "-s", f"{commit}:{path}", check=False)
    if proc.returncode != 0:
        return None
    try:
        if int(proc.stdout.decode().strip()) > limit:
            return None
    except ValueError:
        return None
    proc = git(root, "show", f"{commit}:{path}", check=False)
    if proc.returncode != 0 or b"\0" in proc.stdout[:8192]:
        return None
    return proc.stdout.decode("utf-8", "replace")


def diff_text(root: Path, base: str, head: str) -> str:
    """The pull request's diff as GitHub makes it: merge base to head, renames detected."""
    proc = git(
        root, "diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M", "-U3", base, head, check=False
    )
    return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else ""


def changed_paths(root: Path, base: str, head: str) -> list[str]:
    """The paths the pull request adds, changes, renames (both names) or deletes."""
    proc = git(root, "diff", "--name-only", "-z", "--no-renames", base, head, check=False)
    if proc.returncode != 0:
        return []
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def commits_between(root: Path, older: str, newer: str, path: str, limit: int = 50) -> list[str]:
    """Commits after ``older`` up to ``newer`` that touch ``path``, oldest first."""
    proc = git(
        root, "rev-list", "--reverse", f"--max-count={limit}", f"{older}..{newer}", "--", path, check=False
    )
    return proc.stdout.decode().split() if proc.returncode == 0 else []


def follow(
    root: Path, older: str, newer: str, path: str, start: int, end: int
) -> tuple[str, int, int] | None:
    """Where lines ``start..end`` of ``path`` at ``older`` are at ``newer``; None when the change
    touched them (or deleted the file): their code is gone or changed."""
    from unidiff.errors import UnidiffParseError
    from unidiff.patch import PatchSet

    proc = git(
        root, "diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M", "-U0", older, newer, check=False
    )
    if proc.returncode != 0:
        raise UsageError(f"git diff {older[:7]} {newer[:7]} failed")
    try:
        patch = PatchSet(proc.stdout.decode("utf-8", "replace"))
    except UnidiffParseError:
        return None
    for patched in patch:
        source = patched.source_file[2:] if patched.source_file.startswith("a/") else None
        if source != path:
            continue
        if patched.is_removed_file:
            return None
        target = patched.target_file[2:] if patched.target_file.startswith("b/") else path
        offset = 0
        for hunk in patched:
            s, n = hunk.source_start, hunk.source_length
            if n == 0:  # lines inserted after line s
                if start <= s < end:
                    return None
                if s < start:
                    offset += hunk.target_length
                continue
            last = s + n - 1
            if last < start:
                offset += hunk.target_length - n
            elif s <= end:
                return None
        return target, start + offset, end + offset
    return path, start, end  # the file did not change
