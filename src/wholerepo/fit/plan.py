"""Choose, in rank order, which files go in whole, which compressed and which not at all.

Compression comes before dropping: first every file, most important first, takes its cheaper
form (the compressed one when there is one) while it fits; only files whose cheaper form no
longer fits are left out (``over-budget``). Then, again in rank order, compressed files are sent
whole while the room lasts. ``--fit rank`` skips compression: files go in whole, in rank order,
while they fit.

The room is exact: ``assemble`` renders the output of a choice and returns its exact token count.
The first choice is made against the frame with every file in the directory tree (an upper
bound); the tree lines of files left out free room, which later passes fill, with each new file's
tree line estimated and the result counted again. A pass that overshoots is not taken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

FULL = "full"
COMPRESSED = "compressed"
PASSES = 4

Choice = dict[str, str]  # path -> FULL | COMPRESSED; a path not in it is left out
Assemble = Callable[[Mapping[str, str]], int]


@dataclass(frozen=True, slots=True)
class Option:
    """One file's two forms and what they cost, in tokens."""

    path: str
    full: int
    compressed: int | None = None  # None: no compressed form
    tree: int = 0  # estimated tokens of its line in the directory tree

    def cheapest(self, compress: bool) -> tuple[str, int]:
        if compress and self.compressed is not None and self.compressed < self.full:
            return COMPRESSED, self.compressed
        return FULL, self.full


def extend(options: Sequence[Option], choice: Choice, room: int, compress: bool, tree: bool) -> int:
    """Add to ``choice`` (in place) what fits in ``room`` more tokens; returns the room left.

    ``tree``: charge each newly added file its tree line (the first pass's frame already holds
    every file's)."""
    for option in options:
        if option.path in choice:
            continue
        form, cost = option.cheapest(compress)
        cost += option.tree if tree else 0
        if cost <= room:
            choice[option.path] = form
            room -= cost
    if compress:
        for option in options:
            if choice.get(option.path) == COMPRESSED and option.compressed is not None:
                extra = option.full - option.compressed
                if extra <= room:
                    choice[option.path] = FULL
                    room -= extra
    return room


def plan(options: Sequence[Option], limit: int, frame: int, compress: bool, assemble: Assemble) -> Choice:
    """The best choice (by rank) whose assembled output is at most ``limit`` tokens.

    ``options`` are in rank order; ``frame`` bounds the tokens of everything but the sections
    from above (the header with every file in its tree, and the footer)."""
    choice: Choice = {}
    extend(options, choice, limit - frame, compress, tree=False)
    n = assemble(choice)
    margin = 0
    for _ in range(PASSES):
        if n > limit:
            break
        trial = dict(choice)
        extend(options, trial, limit - n - margin, compress, tree=True)
        if trial == choice:
            break
        m = assemble(trial)
        if m <= limit:
            choice, n = trial, m
        else:  # the tree-line estimates were short: retry with the overshoot held back
            margin += 2 * (m - limit)
    by_rank = [o.path for o in options]
    while n > limit and choice:
        # The frame was not an upper bound after all (a tree's tokens need not shrink with it):
        # give up the least important file until the output fits.
        last = next(p for p in reversed(by_rank) if p in choice)
        option = options[by_rank.index(last)]
        if choice[last] == FULL and compress and option.compressed is not None:
            choice[last] = COMPRESSED
        else:
            del choice[last]
        n = assemble(choice)
    return choice
