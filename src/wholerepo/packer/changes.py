"""Which files of a change the pack would not show: the diff obeys the same selection.

``hidden()`` answers for the paths ``git diff --raw`` lists (git/diff.py asks it before it asks
git for any patch). The new side of a change is judged exactly as the pack judges the file, by
the pack's own stages (select.py, the same safe read with its size limit, decode.py); the old
side by its path and by the base's blob (a deleted ``.env``, a removed binary or vendored tree,
a file that was too large or was an earlier wholerepo output). Either side skipped hides the
file's content; a file left out only for the budget is still shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..git.diff import Entry, blobs
from ..git.listing import Candidate, Reader, discover, linguist_attributes
from ..settings import Settings
from . import select as filters
from .run import _decode, _read, _rules, _Work

SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"
UNLISTED = "unlisted"  # in the diff but not among the files the pack lists


def hidden(root: Path, settings: Settings, entries: Sequence[Entry]) -> dict[str, str]:
    """For each changed path whose content the pack would not show: the skip reason."""
    listing = discover(root, tracked_only=settings.tracked_only)
    rules = _rules(listing, settings)
    listed = {c.path: c for c in listing.candidates}
    gone = [e.raw for e in entries if not e.new_side]
    attributes = linguist_attributes(listing.root, gone) if gone else {}
    old = blobs(
        listing.root,
        [e.old_blob for e in entries if e.old_side and e.old_mode not in (SYMLINK_MODE, GITLINK_MODE)],
        settings.max_file_size,
    )
    reasons: dict[str, str] = {}
    with Reader(listing.root) as reader:
        for e in entries:
            reason = None
            if e.new_side:
                candidate = listed.get(e.path)
                reason = UNLISTED if candidate is None else _new_side(reader, candidate, rules)
            else:
                gone_file = Candidate.of(e.raw, _kind(e.old_mode), attributes.get(e.raw, frozenset()))
                by_path = filters.by_path(gone_file, rules)
                reason = str(by_path) if by_path is not None else None
            if reason is None and e.old_side:
                reason = _old_side(e, old, rules)
            if reason is not None:
                reasons[e.path] = reason
    return reasons


def _kind(mode: str) -> str:
    return {SYMLINK_MODE: "symlink", GITLINK_MODE: "submodule"}.get(mode, "file")


def _new_side(reader: Reader, candidate: Candidate, rules: filters.Rules) -> str | None:
    """The pack's own verdict on the file in the work tree (over-budget aside)."""
    w = _Work(candidate)
    _read(reader, w, rules, b"")
    if w.reason is None:
        _decode(w)
    return w.reason


def _old_side(e: Entry, old: dict[str, bytes | int], rules: filters.Rules) -> str | None:
    """The base's version: a link, a submodule, too large, or content the pack skips."""
    kind = _kind(e.old_mode)
    if kind != "file":
        return str(filters.Reason.SYMLINK if kind == "symlink" else filters.Reason.SUBMODULE)
    data = old.get(e.old_blob)
    if data is None:
        return str(filters.Reason.UNREADABLE)  # not in the repository: never shown unjudged
    if isinstance(data, int):
        return str(filters.Reason.TOO_LARGE)
    w = _Work(Candidate.of(e.raw))
    w.data = data
    _decode(w)
    return w.reason
