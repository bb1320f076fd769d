"""Choose, in rank order, which files go in whole, which compressed and which not at all.

Compression comes before dropping: first every file, most important first, takes its cheaper
form (the compressed one when there is one) while it fits; only files whose cheaper form no
longer fits are left out (``over-budget``). Then, again in rank order, compressed files are sent
whole while the room lasts. ``--fit rank`` skips compression: files go in whole, in rank order,
while they fit.

The room is exact: ``assemble`` renders the output of a choice and returns its exact token count.
Each file's line in the directory tree is estimated while choosing, then the whole is counted: a
choice over the limit gives up its least important files until it fits, and room left over is
filled by further passes, each counted again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

FULL = "full"
COMPRESSED = "compressed"
PASSES = 4
# Token estimate of a file's line in the directory tree, with its share of the directory lines
# (babel, git/git and pytest average 7.2-8.3 tokens a file); the output is counted afterwards.
TREE_LINE = 5


def tree_line(path: str) -> int:
    """About the tokens ``path`` adds to the directory tree."""
    return TREE_LINE + len(path.rsplit("/", 1)[-1]) // 3


Choice = dict[str, str]  # path -> FULL | COMPRESSED; a path not in it is left out
Assemble = Callable[[Mapping[str, str]], int]


class Option(NamedTuple):  # a tuple: made by the hundred thousand on a large repository
    """One file's two forms and what they cost, in tokens."""

    path: str
    full: int
    compressed: int | None = None  # None: no compressed form
    tree: int = 0  # estimated tokens of its line in the directory tree (checked by counting)

    def cheapest(self, compress: bool) -> tuple[str, int]:
        if compress and self.compressed is not None and self.compressed < self.full:
            return COMPRESSED, self.compressed
        return FULL, self.full


def floors(options: Sequence[Option], compress: bool) -> tuple[list[int], list[int]]:
    """For each position, the least any later file could cost to add, and to send whole instead of
    compressed: once the room is below both, the rest of the ranking need not be looked at."""
    add, upgrade = [0] * (len(options) + 1), [0] * (len(options) + 1)
    add[-1] = upgrade[-1] = 1 << 62
    for i in range(len(options) - 1, -1, -1):
        o = options[i]
        add[i] = min(add[i + 1], o.cheapest(compress)[1] + o.tree)
        extra = o.full - o.compressed if compress and o.compressed is not None else 1 << 62
        upgrade[i] = min(upgrade[i + 1], extra)
    return add, upgrade


def extend(
    options: Sequence[Option],
    choice: Choice,
    room: int,
    compress: bool,
    bounds: tuple[list[int], list[int]] | None = None,
    note: int = 0,
) -> int:
    """Add to ``choice`` (in place) what fits in ``room`` more tokens, each newly added file with
    its tree line, then send compressed files whole while room lasts; returns the room left.
    ``bounds``: floors(options, compress), to stop early. ``note``: what the header's note on
    compressed files costs, paid with the first compressed file; a file whose outline does not
    fit with it goes in whole when that fits (on a tiny budget the note can outweigh a file)."""
    add, upgrade = bounds or floors(options, compress)
    noted = COMPRESSED in choice.values()
    for i, option in enumerate(options):
        if room < add[i]:
            break
        if option.path in choice:
            continue
        form, cost = option.cheapest(compress)
        if form == COMPRESSED and not noted:
            cost += note
        cost += option.tree
        if cost > room and form == COMPRESSED and option.full + option.tree <= room:
            form, cost = FULL, option.full + option.tree
        if cost <= room:
            choice[option.path] = form
            room -= cost
            noted = noted or form == COMPRESSED
    if compress:
        left = sum(1 for form in choice.values() if form == COMPRESSED)
        for i, option in enumerate(options):
            if room < upgrade[i] and not (left == 1 and note):
                break
            if choice.get(option.path) == COMPRESSED and option.compressed is not None:
                extra = option.full - option.compressed - (note if left == 1 else 0)
                if extra <= room:
                    choice[option.path] = FULL
                    room -= extra
                    left -= 1
    return room


def trim(options: Sequence[Option], choice: Choice, excess: int, compress: bool) -> None:
    """Give up at least ``excess`` tokens (in place), least important files first: a whole file
    becomes compressed when it can, else it goes."""
    for option in reversed(options):
        if excess <= 0:
            return
        form = choice.get(option.path)
        if form is None:
            continue
        if form == FULL and compress and option.compressed is not None and option.compressed < option.full:
            choice[option.path] = COMPRESSED
            excess -= option.full - option.compressed
        else:
            del choice[option.path]
            excess -= (option.full if form == FULL else option.compressed or 0) + option.tree


def plan(
    options: Sequence[Option], limit: int, frame: int, compress: bool, assemble: Assemble, note: int = 0
) -> Choice:
    """The best choice (by rank) whose assembled output is at most ``limit`` tokens.

    ``options`` are in rank order; ``frame`` is the output's tokens without any file (the header
    with an empty tree, and the footer), ``note`` what the header's note on compressed files adds
    once one is. Each pass adds what the exact count of the last one
    left room for; a pass that overshoots (the tree-line estimates were short) is trimmed by the
    overshoot, least important files first, and counted again, until the output fits."""
    choice: Choice = {}
    bounds = floors(options, compress)
    extend(options, choice, limit - frame, compress, bounds, note)
    n = assemble(choice)
    while n > limit and choice:
        trim(options, choice, n - limit, compress)
        n = assemble(choice)
    short = 0  # how far the estimates of the passes given up fell short of the exact counts
    for _ in range(PASSES):
        trial = dict(choice)
        room = limit - n - short
        left = extend(options, trial, room, compress, bounds, note)
        if trial == choice:
            break
        m = assemble(trial)
        if m > limit:
            # Try again with less room, or the next pass adds the same files (the ones trimmed
            # above, say) and overshoots the same way: the rest of the budget would stay unused.
            short += max(1, (m - n) - (room - left))
            continue
        choice, n = trial, m
    return choice
