"""Git churn and recency from one ``git log`` pass over the last commits.

One process lists the files each of the last ``COMMITS`` commits touched (merges show none), with
its commit time; ``Churn`` counts the commits per file and keeps the latest time. Ages are
measured from HEAD's commit time, never from the clock, so the ranking of a commit is the same
whenever it is packed.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..git.repo import safe_env
from ..sanitize import escape_path

COMMITS = 1000


@dataclass(frozen=True)
class Churn:
    """Commits per file and the time of each file's latest commit, within the last ``commits``."""

    head: str  # HEAD's commit id ("" outside git)
    head_time: int
    commits: int  # how many commits were read
    touched: dict[str, int] = field(default_factory=dict)  # path -> commits touching it
    last: dict[str, int] = field(default_factory=dict)  # path -> latest commit time

    def to_json(self) -> str:
        return json.dumps([self.head, self.head_time, self.commits, self.touched, self.last])

    @classmethod
    def from_json(cls, text: str) -> Churn:
        head, head_time, commits, touched, last = json.loads(text)
        return cls(head, int(head_time), int(commits), dict(touched), dict(last))


NONE = Churn("", 0, 0)


def head_of(root: Path) -> tuple[str, int] | None:
    """HEAD's commit id and commit time, or None (not a repository, no commit, no git)."""
    out = _git(root, "log", "-1", "--format=%H %ct")
    if not out:
        return None
    sha, _, time = out.strip().partition(" ")
    try:
        return sha, int(time)
    except ValueError:
        return None


class Reader:
    """A ``git log`` running in the background while the packer parses; ``result()`` waits."""

    def __init__(self, root: Path, head: str, head_time: int, commits: int = COMMITS) -> None:
        self.head, self.head_time, self.wanted = head, head_time, commits
        cmd = [
            "git", "-C", str(root), "-c", "core.quotePath=false", "log", f"-n{commits}", "--no-renames",
            "--name-only", "-z", "--format=%x01%ct", "--relative", head, "--", ".",
        ]  # fmt: skip
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                env=safe_env(root),
            )
        except OSError:
            self._proc = None

    def result(self) -> Churn:
        if self._proc is None:
            return NONE
        out, _ = self._proc.communicate()
        if self._proc.returncode != 0:
            return NONE
        return parse_log(out.decode("utf-8", "surrogateescape"), self.head, self.head_time)

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.communicate()


def parse_log(text: str, head: str, head_time: int) -> Churn:
    """Read ``git log -z --name-only --format=%x01%ct`` output."""
    touched: dict[str, int] = {}
    last: dict[str, int] = {}
    commits = 0
    for record in text.split("\x01"):
        if not record:
            continue
        stamp, _, files = record.partition("\0")
        try:
            when = int(stamp.strip())
        except ValueError:
            continue
        commits += 1
        for raw in files.lstrip("\n").split("\0"):
            if not raw:
                continue
            path = escape_path(raw)  # as the pack shows it (a name with a newline or non-UTF-8 bytes)
            touched[path] = touched.get(path, 0) + 1
            if when > last.get(path, 0):
                last[path] = when
    return Churn(head, head_time, commits, touched, last)


def _git(root: Path, *args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
            env=safe_env(root),
        )
    except OSError:
        return ""
    return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else ""
