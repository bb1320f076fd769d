"""Fit the files to the budget and assemble the output: the packer's side of fit/.

Everything goes in whole when it fits. Otherwise fit/ ranks the files by what the code depends
on, compresses the less important ones to outlines, and drops what even outlines cannot fit;
whatever it chooses is assembled here and counted exactly (sections add up, see render.py).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BudgetError
from ..git.listing import Listing
from ..settings import Settings
from ..tokens.counter import TokenCounter
from . import render as styles
from .cache import TokenCache

if TYPE_CHECKING:
    from ..fit.rank import Ranked
    from ..fit.stage import FileIn, FitStage, Focus, Outcome
    from .run import _Work


def header(
    listing: Listing, paths: list[str], settings: Settings, skipped: int, dropped: int, compressed: int = 0
) -> str:
    notes = []
    if not listing.in_git:
        notes.append("The directory is not a git repository: files were chosen by its .gitignore files.")
    if skipped:
        are = "file is" if skipped == 1 else "files are"
        notes.append(f"{skipped} listed {are} not shown (excluded, binary, generated, too large, ...).")
    if dropped:
        did = "file did" if dropped == 1 else "files did"
        notes.append(
            f"{dropped} {did} not fit the token budget and {'is' if dropped == 1 else 'are'} not shown."
        )
    if compressed:
        notes.append(compressed_note(compressed))
    head = styles.Header(
        styles.render_tree(paths), tuple(notes), settings.line_numbers, settings.line_number_interval
    )
    return styles.render_header(settings.style, head, len(paths))


@dataclass(frozen=True)
class Fitted:
    """What fitting decided: a status per path (absent: included whole) and the output."""

    parts: tuple[str, ...]
    tokens: int
    outcome: Outcome | None = None  # fit/'s decision, when the repository exceeded the budget
    ranking: tuple[Ranked, ...] = ()

    @functools.cached_property
    def _by_path(self) -> dict[str, Ranked]:
        return {r.path: r for r in self.ranking}

    def ranked(self, path: str) -> Ranked | None:
        return self._by_path.get(path) if self.ranking else None


def fit(
    listing: Listing,
    work: list[_Work],
    kept: list[_Work],
    settings: Settings,
    counter: TokenCounter,
    make_stage: Callable[[], FitStage],
    reread: Callable[[Iterable[str]], dict[str, str]],
    load_sections: Callable[[Iterable[_Work]], None],
    explain: bool,
) -> Fitted:
    """Everything if it fits; otherwise fit/ ranks, compresses and chooses. The count is exact."""
    style, limit = settings.style, settings.pack_budget
    skipped = len(work) - len(kept)
    by_path = {w.candidate.path: w for w in kept}
    footer = styles.render_footer(style)

    def assemble(
        compressed: Mapping[str, tuple[str, int]], whole: Iterable[str]
    ) -> tuple[tuple[str, ...], int]:
        paths = sorted([*compressed, *whole])
        load_sections(by_path[p] for p in whole)
        dropped = len(kept) - len(paths)
        head = counter.defang(header(listing, paths, settings, skipped, dropped, len(compressed)))
        sections = [compressed[p][0] if p in compressed else by_path[p].section for p in paths]
        tokens = [compressed[p][1] if p in compressed else by_path[p].tokens for p in paths]
        if style == "json" and paths:
            # The last array element has no trailing comma: "},\n" becomes "}\n".
            sections[-1] = sections[-1][:-2] + "\n"
            head_n, last_n, foot_n = counter.count_many([head, sections[-1], footer])
            tokens[-1] = last_n
        else:
            head_n, foot_n = counter.count_many([head, footer])
        return (head, *sections, footer), head_n + sum(tokens) + foot_n

    _empty_text, empty_n = assemble({}, ())
    if empty_n > limit:
        raise BudgetError(
            f"budget of {limit} tokens is too small for even the prompt's frame ({empty_n} tokens)",
            "raise --budget",
        )
    # Sections add up exactly and the tree only adds tokens: over this sum, nothing to try.
    if empty_n + sum(w.tokens for w in kept) <= limit:
        text, n = assemble({}, by_path)
        if n <= limit:
            ranking = make_stage().rank_only(fit_inputs(kept), reread) if explain else ()
            return Fitted(text, n, ranking=ranking)
    # The frame is the header with an empty tree; the note on compressed files comes with the first.
    note = counter.count_many([compressed_note(len(kept))])[0] + 2
    outcome = make_stage().run(
        fit_inputs(kept),
        limit=limit,
        frame=empty_n,
        assemble=assemble,
        count=counter.count_many,
        reread=reread,
        note=note,
    )
    return Fitted(outcome.parts, outcome.tokens, outcome, outcome.ranking)


def compressed_note(files: int) -> str:
    from ..fit.skeleton import NOTE

    return f"{files} files are compressed to fit the token budget. {NOTE}"


def likely_over(text_bytes: int, settings: Settings) -> bool:
    """Whether the files' bytes suggest the budget will be exceeded (then fit/ parses as it reads).

    Packed code runs at 3 to 5 bytes per DeepSeek V4 token (git/git 3.2, babel 3.6, pytest 4.8).
    Past 4 bytes per token of budget the pack is likely over: then parsing while each file's text
    is in memory pays. A guess either way costs only time: a pack judged under that turns out over
    reads the files it must parse again, one judged over that fits parsed for nothing."""
    return text_bytes > 4 * settings.pack_budget


def fit_stage(
    listing: Listing,
    settings: Settings,
    counter: TokenCounter,
    cache: TokenCache,
    focus: Focus | None,
    code_digest: str,
) -> FitStage:
    return stage_at(listing.root, listing.in_git, settings, counter, cache, focus, code_digest)


def stage_at(
    root: Path,
    in_git: bool,
    settings: Settings,
    counter: TokenCounter,
    cache: TokenCache,
    focus: Focus | None,
    code_digest: str,
) -> FitStage:
    """The fitting stage of a pack of ``root``, sharing the packer's cache keys: what a pack
    parsed, ranked and outlined is found again by a caller that works on its result (the audit)."""
    from ..fit.stage import FitStage

    text_key = hashlib.blake2b(
        "\0".join((code_digest, settings.tokenizer, str(settings.redact))).encode(), digest_size=16
    ).digest()
    return FitStage(root, settings, cache, text_key, focus=focus, in_git=in_git, defang=counter.defang)


def fit_inputs(kept: list[_Work]) -> list[FileIn]:
    from ..fit.stage import FileIn

    return [FileIn(w.candidate.path, w.key, w.content, w.tokens) for w in kept]
