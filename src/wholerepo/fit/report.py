"""What fitting tells the user: the most important files compressed or left out, and the ranking.

Used by the summaries of ``pack``, ``review`` and ``review --dry-run`` and by
``--explain-ranking``; they take a pack's files as they are (anything with ``path``, ``status``,
``reason``, ``rank``, ``score`` and ``why``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

TOP = 10
OVER_BUDGET = "over-budget"


class RankedFile(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def rank(self) -> int | None: ...
    @property
    def score(self) -> float | None: ...
    @property
    def why(self) -> tuple[str, ...]: ...


def fate(f: RankedFile) -> str | None:
    """ "compressed", "left out" or None (sent whole, or skipped for another reason)."""
    if f.status == "compressed":
        return "compressed"
    if f.status == "skipped" and f.reason == OVER_BUDGET:
        return "left out"
    return None


def most_important(files: Iterable[RankedFile], top: int = TOP) -> list[dict[str, Any]]:
    """The ``top`` files by rank that were compressed or left out."""
    hit = [f for f in files if fate(f) is not None]
    hit.sort(key=lambda f: (f.rank if f.rank is not None else 1 << 62, f.path))
    return [{"path": f.path, "fate": fate(f), "rank": f.rank} for f in hit[:top]]


def most_important_text(entries: list[dict[str, Any]], prefix: str = "") -> str | None:
    """One line naming them, pointing at where the rest is."""
    if not entries:
        return None
    named = ", ".join(f"{prefix}{e['path']} ({e['fate']}, rank {e['rank']})" for e in entries)
    return (
        f"most important files not sent whole: {named}"
        " (--manifest FILE lists every file with its rank and reasons; --explain-ranking prints the order)"
    )


def explanation(files: Iterable[RankedFile], prefix: str = "") -> str:
    """``--explain-ranking``: every ranked file, most important first, with its score, what was
    done with it and why it ranks there."""
    ranked = sorted((f for f in files if f.rank is not None), key=lambda f: (f.rank, f.path))
    if not ranked:
        return "wholerepo: no ranking (no file could be sent)\n"
    lines = [f"{'rank':>6}  {'score':>6}  {'sent as':<11} path  (why)"]
    for f in ranked:
        sent = {"included": "whole", "compressed": "compressed"}.get(f.status, "left out")
        lines.append(f"{f.rank:>6}  {f.score or 0.0:6.3f}  {sent:<11} {prefix}{f.path}  ({'; '.join(f.why)})")
    return "\n".join(lines) + "\n"
