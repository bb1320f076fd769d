"""What a pack is: every file git lists and its fate, the rendered text and its exact count."""

from __future__ import annotations

import builtins
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..settings import Settings
from . import select as filters

if TYPE_CHECKING:
    from ..fit.rank import Ranked


@dataclass(frozen=True, slots=True)
class PackedFile:
    """One path git lists, and what the pack did with it."""

    path: str
    status: str  # included | skipped (FileStatus)
    reason: str | None
    tokens: int
    bytes: int
    lines: int
    encoding: str | None = None
    redactions: tuple[str, ...] = ()  # kinds of the secrets removed, one entry each
    text: str | None = field(default=None, repr=False)  # the text as sent (redacted, unnumbered)
    digest: builtins.bytes = field(default=b"", repr=False)  # of the file's bytes when packed
    # Fitting (fit/), when the repository exceeds the budget or a ranking was asked for:
    ranked: Ranked | None = field(default=None, repr=False)  # its rank, score and why
    elided: tuple[tuple[int, int], ...] = ()  # compressed: the original lines not sent
    full_tokens: int | None = None  # compressed: what the whole file would have cost

    @property
    def rank(self) -> int | None:
        """1 = the most important file; None when no ranking was made."""
        return self.ranked.rank if self.ranked is not None else None

    @property
    def score(self) -> float | None:
        return self.ranked.score if self.ranked is not None else None

    @property
    def why(self) -> tuple[str, ...]:
        return self.ranked.why if self.ranked is not None else ()

    def manifest_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "tokens": self.tokens,
            "bytes": self.bytes,
            "lines": self.lines,
        }
        if self.encoding not in (None, "utf-8"):
            entry["encoding"] = self.encoding
        if self.redactions:
            entry["redactions"] = len(self.redactions)
            entry["redacted_kinds"] = sorted(set(self.redactions))
        if self.rank is not None:
            entry.update(rank=self.rank, score=self.score, why=list(self.why))
        if self.status == "compressed":
            entry.update(full_tokens=self.full_tokens, elided=[list(r) for r in self.elided])
        return entry


@dataclass(frozen=True)
class Pack:
    """A packed repository: the rendered text, its exact token count and every file's fate."""

    root: Path
    files: tuple[PackedFile, ...]
    parts: tuple[str, ...] = field(repr=False)  # header, one section per file, footer
    prompt_tokens: int
    tokenizer: str
    budget: int
    style: str
    in_git: bool
    settings: Settings = field(repr=False)
    prefix: str = ""  # the packed directory relative to the repository root ("" or "pkg/")
    warnings: tuple[str, ...] = ()
    ranking: tuple[Ranked, ...] = ()  # fit/'s order, when it was computed (over budget, or asked)

    @functools.cached_property
    def text(self) -> str:
        """The whole rendered pack (joined on first use; writers can stream ``parts``)."""
        return "".join(self.parts)

    @property
    def included(self) -> tuple[PackedFile, ...]:
        return tuple(f for f in self.files if f.status != "skipped")

    @property
    def elided(self) -> dict[str, tuple[tuple[int, int], ...]]:
        """The compressed files' elided line ranges: findings there cannot be verified."""
        return {f.path: f.elided for f in self.files if f.status == "compressed"}

    @property
    def skipped(self) -> tuple[PackedFile, ...]:
        return tuple(f for f in self.files if f.status == "skipped")

    def file(self, path: str) -> PackedFile | None:
        for f in self.files:
            if f.path == path:
                return f
        return None

    @functools.cached_property
    def texts(self) -> FileTexts:
        """Each included file's text exactly as sent (redacted, unnumbered), by path.

        Kept from the run when it kept them; otherwise read again on first use of each file, so
        a warm pack that reused cached sections pays only for the files a caller looks at.
        """
        return FileTexts(self)

    def manifest(self) -> dict[str, Any]:
        return {
            "generator": "wholerepo",  # also how a later pack recognises this file as ours
            "tokenizer": self.tokenizer,
            "budget": self.budget,
            "prompt_tokens": self.prompt_tokens,
            "style": self.style,
            "fit": self.settings.fit,
            "line_numbers": self.settings.line_numbers,
            "in_git": self.in_git,
            "redactions": sum(len(f.redactions) for f in self.files),
            "files": [f.manifest_entry() for f in self.files],
        }


class FileTexts(Mapping[str, str]):
    """The included files' texts as sent, read again lazily where the pack did not keep them."""

    def __init__(self, pack: Pack) -> None:
        self._pack = pack
        self._files = {f.path: f for f in pack.included}
        self._texts: dict[str, str] = {}

    def __getitem__(self, path: str) -> str:
        f = self._files[path]
        if f.text is not None:
            return f.text
        if path not in self._texts:
            from .run import file_text

            self._texts[path] = file_text(self._pack, f)
        return self._texts[path]

    def load_all(self) -> None:
        """Read every text now (before the files go away, say)."""
        for path in self._files:
            self[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, path: object) -> bool:
        return path in self._files


def summarize(pack: Pack, top: int = 5) -> dict[str, Any]:
    """Counts for the summary: by status and reason, largest files and directories by tokens."""
    reasons: dict[str, int] = {}
    where: dict[str, dict[str, int]] = {}  # reason -> top directory -> files
    for f in pack.skipped:
        reasons[f.reason or "?"] = reasons.get(f.reason or "?", 0) + 1
        if f.reason in ("vendored", "wholerepo-output"):
            top_dir = _top_dir(f.path)
            counts = where.setdefault(f.reason, {})
            counts[top_dir] = counts.get(top_dir, 0) + 1
    included = pack.included
    dirs: dict[str, int] = {}
    for f in included:
        parent = str(PurePosixPath(f.path).parent)
        dirs[parent if parent != "." else "(root)"] = (
            dirs.get(parent if parent != "." else "(root)", 0) + f.tokens
        )
    return {
        "included": len(included),
        "skipped": len(pack.skipped),
        "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "largest_files": sorted(((f.path, f.tokens) for f in included), key=lambda x: (-x[1], x[0]))[:top],
        "largest_dirs": sorted(dirs.items(), key=lambda x: (-x[1], x[0]))[:top],
        "redactions": sum(len(f.redactions) for f in pack.files),
        "redacted_files": sorted(f.path for f in pack.files if f.redactions),
        # A few files are named; more are summed up by their top directories.
        "skipped_dirs": {
            reason: (
                sorted(f.path for f in pack.skipped if f.reason == reason)
                if reasons[reason] <= 3
                else [d for d, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
            )
            for reason, counts in where.items()
        },
    }


def _top_dir(path: str) -> str:
    """The directory that names a vendored tree: the path up to node_modules/, .venv/ and the like."""
    parts = path.split("/")
    for i, part in enumerate(parts[:2]):  # frontend/node_modules/, not .venv/lib/.../site-packages/
        if part in filters.VENDORED_DIRS and i < len(parts) - 1:
            return "/".join(parts[: i + 1]) + "/"
    return path if len(parts) == 1 else parts[0] + "/"
