"""The project's vocabulary, in one place: what a finding can be and what became of a file.

Each is a ``str`` enum, so its members compare equal to, and serialise as, their plain values.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol


class _Word(str, Enum):
    def __str__(self) -> str:
        return str(self.value)


class Severity(_Word):
    """How bad a finding is; declared from most to least severe, ``rank`` orders them."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """4 for critical down to 0 for info: higher is worse."""
        return len(SEVERITY_ORDER) - 1 - SEVERITY_ORDER.index(self)


SEVERITY_ORDER: tuple[Severity, ...] = tuple(Severity)  # most severe first
# The plain values, in the one order every module uses: least to most severe (a threshold
# compares indexes); shown most severe first by reversing it.
SEVERITIES: tuple[str, ...] = tuple(s.value for s in reversed(SEVERITY_ORDER))


class Category(_Word):
    BUG = "bug"
    SECURITY = "security"
    PERFORMANCE = "performance"
    MAINTAINABILITY = "maintainability"
    STYLE = "style"
    DOCS = "docs"
    TEST = "test"


CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)


class FileStatus(_Word):
    """What the pack did with a file git lists."""

    INCLUDED = "included"
    SKIPPED = "skipped"


class SkipReason(_Word):
    """Why a file is not packed whole; the value is what the manifest shows."""

    BINARY = "binary"
    TOO_LARGE = "too-large"
    LOCKFILE = "lockfile"
    GENERATED = "generated"
    VENDORED = "vendored"
    MINIFIED = "minified"
    SYMLINK = "symlink"  # a symbolic link, or a path below a directory the work tree replaced by one
    SPECIAL = "special-file"  # a FIFO, device, socket or directory where git has a file
    SUBMODULE = "submodule"
    EXCLUDED = "excluded"
    IGNORED = "wholerepoignore"
    SECRET = "secret"
    MISSING = "deleted"
    UNREADABLE = "unreadable"
    OWN_OUTPUT = "wholerepo-output"
    OVER_BUDGET = "over-budget"


class Progress(Protocol):
    """What long work reports as it goes: ``stage`` ("read", "count", "send"...), done of total."""

    def __call__(self, stage: str, done: int, total: int) -> None: ...
