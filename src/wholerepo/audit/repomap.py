"""The repository map: what every request of an audit starts with, byte for byte the same.

It shows the whole repository in brief, so that a shard's reviewer sees what its files call into
and who calls them: the directory tree of every file (directories below a depth shown by their
file count when the whole tree would take more than half the map's room), then the outlines
(fit/skeleton.py: kept lines at their numbers, ``⋮ lines A-B elided`` markers) of the most
important files by rank, in path order, as many as the rest of the room holds.

The map starts with ``<`` and ends with a newline, its outline sections start with punctuation
and end with newlines: its exact count is its opening's, its sections' and its closing's added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..fit.fill import Compressed
from ..fit.rank import Ranked
from ..fit.skeleton import MARK
from ..packer.render import render_tree

Count = Callable[[list[str]], list[int]]
TREE_SHARE = 0.5  # of the map's room, at most, for the tree when there are outlines to show
CLOSE = "</outlines>\n</repository_map>\n"


@dataclass(frozen=True)
class RepoMap:
    """The map's text, its exact tokens, the files outlined in it and the tree's depth (None:
    every file listed)."""

    text: str
    tokens: int
    outlined: tuple[str, ...] = ()
    depth: int | None = None

    @property
    def empty(self) -> bool:
        return not self.text


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


def collapsed_tree(paths: Sequence[str], depth: int) -> str:
    """The tree of sorted ``paths`` down to ``depth`` directories; a deeper directory is one line,
    ``name/ (N files)``."""
    counts: dict[tuple[str, ...], int] = {}
    items: list[tuple[list[str], str | tuple[str, ...]]] = []
    for path in paths:  # sorted: the paths under one directory are consecutive
        parts = path.split("/")
        if len(parts) - 1 > depth:
            key = tuple(parts[: depth + 1])
            if key not in counts:
                counts[key] = 0
                items.append((parts[:depth], key))
            counts[key] += 1
        else:
            items.append((parts[:-1], parts[-1]))
    out: list[str] = []
    previous: list[str] = []
    for dirs, leaf in items:
        common = 0
        while common < min(len(dirs), len(previous)) and dirs[common] == previous[common]:
            common += 1
        for level in range(common, len(dirs)):
            out.append("  " * level + dirs[level] + "/")
        if isinstance(leaf, tuple):
            n = counts[leaf]
            out.append("  " * len(dirs) + f"{leaf[-1]}/ ({n:,} file{'s' if n != 1 else ''})")
        else:
            out.append("  " * len(dirs) + leaf)
        previous = dirs
    return "".join(line + "\n" for line in out)


def opening(paths: Sequence[str], tree: str, depth: int | None, outlines: int) -> str:
    folded = (
        ""
        if depth is None
        else f" (directories deeper than {depth + 1} level{'s' if depth else ''} shown by their file count)"
    )
    intro = (
        f"A map of the whole repository ({len(paths):,} files), the same in every request of this"
        f" audit: its directory tree{folded}"
        + (
            f", then outlines of its {outlines:,} most important files in which a line"
            f" '{MARK} lines A-B elided' stands for the original lines A to B, not shown, and every"
            " other line is the file's own at its original line number"
            if outlines
            else ""
        )
        + ". The files under review in this request follow the map, in full; a file seen only here"
        " is reviewed in another request."
    )
    return f"<repository_map>\n{_escape(intro)}\n<tree>\n{_escape(tree)}</tree>\n<outlines>\n"


def build(
    paths: Sequence[str],
    ranking: Iterable[Ranked],
    outline_tokens: Mapping[str, int],
    outlines: Callable[[list[str]], Mapping[str, Compressed]],
    limit: int,
    count: Count,
) -> RepoMap:
    """The map of the sorted ``paths`` in at most ``limit`` tokens (exact); empty when not even its
    frame fits. ``outline_tokens`` holds the exact count of each outline section, ``outlines``
    renders the ones chosen."""
    close_n = count([CLOSE])[0]
    want_outlines = bool(outline_tokens)
    tree_room = int(limit * TREE_SHARE) if want_outlines else limit
    depth: int | None = None
    tree = render_tree(paths)
    head = opening(paths, tree, None, 1 if want_outlines else 0)
    head_n = count([head])[0]
    if head_n + close_n > tree_room:
        deepest = max((p.count("/") for p in paths), default=0)
        lo, hi, best = 0, deepest - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            text = opening(paths, collapsed_tree(paths, mid), mid, 1 if want_outlines else 0)
            n = count([text])[0]
            if n + close_n <= tree_room:
                best, lo = (mid, text, n), mid + 1
            else:
                hi = mid - 1
        if best is None:
            return RepoMap("", 0)
        depth, head, head_n = best
        tree = collapsed_tree(paths, depth)
    room = limit - head_n - close_n
    chosen: list[str] = []
    for r in ranking:
        cost = outline_tokens.get(r.path)
        if cost is not None and cost <= room:
            chosen.append(r.path)
            room -= cost
    sections = outlines(sorted(chosen)) if chosen else {}
    chosen = sorted(p for p in chosen if p in sections)
    if not chosen and want_outlines:
        head = opening(paths, tree, depth, 0)
        head_n = count([head])[0]
    elif len(chosen) != 1:
        head = opening(paths, tree, depth, len(chosen))
        head_n = count([head])[0]
    text = head + "".join(sections[p].section for p in chosen) + CLOSE
    tokens = head_n + sum(sections[p].tokens for p in chosen) + close_n
    while tokens > limit and chosen:  # the outline count in the intro grew by a digit
        gone = chosen.pop()
        tokens -= sections[gone].tokens
        head = opening(paths, tree, depth, len(chosen))
        tokens += count([head])[0] - head_n
        head_n = count([head])[0]
        text = head + "".join(sections[p].section for p in chosen) + CLOSE
    return RepoMap(text, tokens, tuple(chosen), depth)
