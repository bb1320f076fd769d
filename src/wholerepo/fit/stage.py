"""The fitting stage of the packer: parse, rank, compress and choose, through the cache.

The packer hands over each file it decodes (``see``: parsed, and its outline rendered, while its
text is in memory, when the repository looks larger than the budget) and, once every section is
counted, the files that could go in (``run``). ``run`` then:

1. ranks: the ranking is cached under a key over every file's path and content, HEAD and the
   focus, so a warm run reads one row. Otherwise the files not parsed yet are parsed (their text
   read again through the packer's ``reread``), the graph is built, git churn is read (one
   ``git log``, cached per HEAD, started in the background while parsing) and PageRank runs;
2. gets every outline's exact token count, cached per file and rendering (and all of them in one
   row for a warm run), counting only outlines not counted before;
3. chooses whole / compressed / left out in rank order (plan.py) against the packer's exact
   ``assemble``, then fills what is left at line granularity (fill.py);
4. loads the sections of the outlines chosen, and nothing else.

Everything cached is keyed by content and by this package's own source and grammar versions, so
tree-sitter runs only on files whose bytes changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..packer import render as styles
from ..packer.cache import TokenCache
from ..settings import Settings
from ..tokens import may_need_defang
from . import graph as graphs
from . import history, plan, skeleton
from .fill import FILL_MIN, Compressed, Filler
from .parse import Facts, analyze
from .rank import GROUPS, Ranked, rank_files
from .skeleton import Range

Count = Callable[[list[str]], list[int]]
Reread = Callable[[Collection[str]], Mapping[str, str]]
# (path -> compressed section and its tokens, paths sent whole) -> (output parts, exact tokens)
Assemble = Callable[[Mapping[str, tuple[str, int]], Collection[str]], tuple[tuple[str, ...], int]]
# An outline as the plan sees it: tokens, elided ranges, method, note (no section).
Outline = tuple[int, tuple[Range, ...], str, str | None]

__all__ = ["Compressed", "FileIn", "FitStage", "Focus", "Outcome", "Survey"]


class FileIn(NamedTuple):  # a tuple: made by the hundred thousand on a large repository
    """A file that could go in: its path, the packer's key for it, its bytes' digest, its count."""

    path: str
    key: str
    content: bytes
    tokens: int


@dataclass(frozen=True)
class Focus:
    """``--base``: the files the diff touches, and the ref named."""

    changed: frozenset[str] = frozenset()
    ref: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the stage decided: each path's status, its rank, and the output."""

    status: dict[str, str]  # path -> "included" | "compressed" | "over-budget"
    compressed: dict[str, Compressed]  # the compressed files' sections
    ranking: tuple[Ranked, ...]
    parts: tuple[str, ...]
    tokens: int


@dataclass(frozen=True)
class Survey:
    """What ``FitStage.survey`` found: the graph, the ranking and the files with an outline."""

    graph: graphs.Graph
    ranking: tuple[Ranked, ...]
    outlined: frozenset[str]


@dataclass
class _Pending:
    """A ranking being made: its cache keys, and the cached ranking or the churn (or its reader)."""

    rank_key: str
    churn_key: str
    ranking: list[Ranked] | None = None
    outlined: set[str] | None = None  # the files that have an outline (from a cached ranking)
    churn: history.Churn | None = None
    reader: history.Reader | None = None


@functools.cache
def fit_digest() -> bytes:
    """A digest of fit/'s own source and of the grammar versions: what a cached result depends on."""
    from .languages import versions

    digest = hashlib.blake2b(versions().encode(), digest_size=16)
    for file in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.digest()


def _key(kind: str, *parts: str) -> str:
    digest = hashlib.blake2b(fit_digest(), digest_size=20)
    digest.update("\0".join(parts).encode("utf-8", "surrogateescape"))
    return f"{kind}:{digest.hexdigest()}"


class FitStage:
    """One run's fitting; ``see`` during reading, then ``run`` (or ``rank_only``) once."""

    def __init__(
        self,
        root: Path,
        settings: Settings,
        cache: TokenCache,
        text_key: bytes,
        *,
        focus: Focus | None = None,
        in_git: bool = True,
        defang: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.root, self.settings, self.cache = root, settings, cache
        self.focus = focus or Focus()
        self.in_git = in_git
        self.defang = defang
        self.compress = settings.fit == "compress"
        self._facts: dict[str, Facts] = {}  # parsed in this run, by parse key
        self._sections: dict[str, str] = {}  # outlines rendered in this run, by outline key
        self._new_parses: dict[str, tuple[str, str]] = {}
        self._new_blobs: dict[str, str] = {}
        self._parse_base = hashlib.blake2b(fit_digest() + text_key, digest_size=20)
        self._outline_prefix = fit_digest().hex()[:16]

    def parse_key(self, path: str, content: bytes) -> str:
        """The key of a file's facts: its bytes and path, how its text is made, this code."""
        digest = self._parse_base.copy()
        digest.update(content + b"\0" + path.encode("utf-8", "surrogateescape"))
        return "parse:" + digest.hexdigest()

    def _outline_key(self, key: str) -> str:
        """The key of a file's outline section: the packer's key for the file (how it renders, its
        path and bytes) and this code. ``#n`` after it: the outline's tokens and ranges."""
        return f"outline:{self._outline_prefix}:{key}"

    def see(self, path: str, key: str, content: bytes, text: str, outline: bool | None = None) -> Facts:
        """A file decoded in this run: parse it, and render its outline (``outline``, by default
        when compressing), while the text is here."""
        pkey = self.parse_key(path, content)
        facts = self._facts.get(pkey)
        if facts is None:
            facts = self._facts[pkey] = analyze(path, text)
            self._new_parses[pkey] = (facts.meta_json(), facts.graph_json())
        okey = self._outline_key(key)
        wanted = self.compress if outline is None else outline
        if facts.elided and wanted and okey not in self._sections:
            self._sections[okey] = self.render(path, text, facts.elided)
        return facts

    def render(self, path: str, text: str, elided: tuple[Range, ...]) -> str:
        """The compressed section of ``path``: ``text`` without the ``elided`` lines, framed."""
        s = self.settings
        body = skeleton.render(text, elided, s.line_numbers, s.line_number_interval)
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        entry = styles.Entry(path, body, lines, status="compressed", language=styles.language_of(path))
        section = styles.render_section(s.style, entry, last=False)
        return self.defang(section) if may_need_defang(path) else section

    # -- the run ---------------------------------------------------------------------------------

    def run(
        self,
        files: list[FileIn],
        *,
        limit: int,
        frame: int,
        assemble: Assemble,
        count: Count,
        reread: Reread,
        note: int = 0,
    ) -> Outcome:
        """Rank ``files``, compress what must be, and choose within ``limit`` tokens.

        ``frame`` is the tokens of the output without any file (an empty tree), ``note`` what the
        header's note on compressed files adds to it."""
        by_path = {f.path: f for f in files}
        ranking, outlined = self._rank(files, reread, outlines=self.compress)
        outlines = self._outlines(by_path, outlined, count, reread) if self.compress else {}
        options = [
            plan.Option(
                r.path,
                by_path[r.path].tokens,
                outlines.get(r.path),
                plan.tree_line(r.path),
            )
            for r in ranking
        ]
        made: dict[str, Compressed] = {}

        def compressed_of(choice: Mapping[str, str]) -> dict[str, Compressed]:
            """The compressed files of ``choice``, their sections read (or rendered) on first use."""
            wanted = [p for p, form in choice.items() if form == plan.COMPRESSED and p not in made]
            if wanted:
                keys = {p: self._outline_key(by_path[p].key) for p in wanted}
                rows = self._outline_rows(keys, by_path, count, reread)
                sections = self._outline_sections(wanted, by_path, reread)
                for p in wanted:
                    made[p] = Compressed(sections[p], *rows[p])
            return {p: made[p] for p, form in choice.items() if form == plan.COMPRESSED}

        assembled: dict[frozenset[tuple[str, str]], tuple[tuple[str, ...], int]] = {}

        def tokens_of(choice: Mapping[str, str]) -> int:
            key = frozenset(choice.items())
            if key not in assembled:
                if len(assembled) >= 2:  # the last two: the one taken and a trial given up
                    del assembled[next(iter(assembled))]
                assembled[key] = assemble(*_split(choice, compressed_of(choice)))
            return assembled[key][1]

        choice = plan.plan(options, limit, frame, self.compress, tokens_of, note)
        tokens_of(choice)
        parts, n = assembled[frozenset(choice.items())]
        compressed = compressed_of(choice)
        if self.compress and limit - n >= FILL_MIN:
            whole = {p: f.tokens for p, f in by_path.items()}
            filler = Filler(choice, compressed, whole, self.render, count, lambda paths: reread(paths))
            parts, n = filler.fill(ranking, limit, (parts, n), lambda: assemble(*_split(choice, compressed)))
        self._store()
        status = {
            f.path: {plan.FULL: "included", plan.COMPRESSED: "compressed"}.get(
                choice.get(f.path, ""), "over-budget"
            )
            for f in files
        }
        return Outcome(status, compressed, tuple(ranking), parts, n)

    def rank_only(self, files: list[FileIn], reread: Reread) -> tuple[Ranked, ...]:
        """The ranking alone (``--explain-ranking`` on a repository that fits)."""
        ranking, _outlined = self._rank(files, reread, outlines=False)
        self._store()
        return tuple(ranking)

    def survey(self, files: list[FileIn], reread: Reread) -> Survey:
        """The whole repository as an audit shards it: the import graph over every file, the
        ranking, and which files have an outline (their facts read from the cache, parsed only
        where the bytes are new). Nothing is chosen against a budget."""
        pkeys = {f.path: self.parse_key(f.path, f.content) for f in files}
        pending = self._start_ranking(pkeys)
        try:
            facts = self._load_facts(pkeys)
            missing = sorted(p for p in pkeys if p not in facts)
            texts = reread(missing) if missing else {}
            by_path = {f.path: f for f in files}
            for path in missing:
                text = texts.get(path)
                if text is None:
                    facts[path] = Facts(None, "none")
                else:
                    facts[path] = self.see(path, by_path[path].key, by_path[path].content, text, True)
            ranking = pending.ranking
            if ranking is None:
                ranking = self._finish_ranking(pending, facts)
            graph = graphs.build(facts)
        finally:
            if pending.reader is not None:
                pending.reader.close()
        self._store()
        return Survey(graph, tuple(ranking), frozenset(p for p, f in facts.items() if f.elided))

    def outlines(
        self, files: list[FileIn], paths: Collection[str], count: Count, reread: Reread
    ) -> dict[str, Compressed]:
        """The outline sections of ``paths`` (files with an outline) and their exact counts,
        cached per file as ``run`` caches them; outlines counted for the first time are stored."""
        by_path = {f.path: f for f in files}
        wanted = sorted(paths)
        keys = {p: self._outline_key(by_path[p].key) for p in wanted}
        rows = self._outline_rows(keys, by_path, count, reread)
        sections = self._outline_sections([p for p in wanted if p in rows], by_path, reread)
        self._store()
        return {p: Compressed(sections[p], *rows[p]) for p in wanted if p in rows and p in sections}

    def outline_tokens(
        self, files: list[FileIn], outlined: Collection[str], count: Count, reread: Reread
    ) -> dict[str, int]:
        """Every outline's exact token count (one cached row for them all on a warm run)."""
        found = self._outlines({f.path: f for f in files}, outlined, count, reread)
        self._store()
        return found

    # -- ranking -----------------------------------------------------------------------------------

    def _rank(self, files: list[FileIn], reread: Reread, outlines: bool) -> tuple[list[Ranked], set[str]]:
        """The ranking, and which files have an outline: cached, or from every file's facts."""
        pkeys = {f.path: self.parse_key(f.path, f.content) for f in files}
        pending = self._start_ranking(pkeys)
        try:
            if pending.ranking is not None and pending.outlined is not None:
                return pending.ranking, pending.outlined
            facts = self._load_facts(pkeys)
            missing = sorted(p for p in pkeys if p not in facts)
            texts = reread(missing) if missing else {}
            by_path = {f.path: f for f in files}
            for path in missing:
                text = texts.get(path)
                if text is None:  # unreadable now: no facts, sent whole or not at all
                    facts[path] = Facts(None, "none")
                else:
                    facts[path] = self.see(path, by_path[path].key, by_path[path].content, text, outlines)
            return self._finish_ranking(pending, facts), {p for p, f in facts.items() if f.elided}
        finally:
            if pending.reader is not None:
                pending.reader.close()

    def _start_ranking(self, pkeys: Mapping[str, str]) -> _Pending:
        """The cached ranking, or what computing it needs: git log starts in the background."""
        head = history.head_of(self.root) if self.in_git else None
        churn_key = _key("churn", str(self.root.resolve()), head[0] if head else "", str(history.COMMITS))
        listing = "\n".join(f"{p}\0{pkeys[p]}" for p in sorted(pkeys))
        focus = "\n".join(sorted(self.focus.changed)) + "\0" + (self.focus.ref or "")
        rank_key = _key("rank", listing, churn_key, focus)
        stored = self.cache.get_blobs([rank_key, churn_key])
        pending = _Pending(rank_key, churn_key)
        if rank_key in stored:
            try:
                rows = json.loads(stored[rank_key])
                pending.ranking = [
                    Ranked(row[0], i, GROUPS[row[1]], float(row[2]), tuple(row[4].split("\x1f")))
                    for i, row in enumerate(rows, 1)
                ]
                pending.outlined = {row[0] for row in rows if row[3]}
                return pending
            except (ValueError, TypeError, IndexError):
                pending.ranking = pending.outlined = None
        if head is None:
            pending.churn = history.NONE
        elif churn_key in stored:
            try:
                pending.churn = history.Churn.from_json(stored[churn_key])
            except (ValueError, TypeError):
                pass
        if pending.churn is None and head is not None:
            pending.reader = history.Reader(self.root, head[0], head[1])
        return pending

    def _finish_ranking(self, pending: _Pending, facts: Mapping[str, Facts]) -> list[Ranked]:
        churn = pending.churn
        if churn is None:
            assert pending.reader is not None
            churn = pending.reader.result()
            self._new_blobs[pending.churn_key] = churn.to_json()
        ranking = rank_files(graphs.build(facts), churn, self.focus.changed, self.focus.ref)
        self._new_blobs[pending.rank_key] = json.dumps(
            [
                [r.path, GROUPS.index(r.group), r.score, int(bool(facts[r.path].elided)), "\x1f".join(r.why)]
                for r in ranking
            ]
        )
        return ranking

    def _load_facts(self, pkeys: Mapping[str, str]) -> dict[str, Facts]:
        found: dict[str, Facts] = {}
        wanted = [k for k in pkeys.values() if k not in self._facts]
        rows = self.cache.get_parses(wanted, graph=True) if wanted else {}
        for path, key in pkeys.items():
            if key in self._facts:
                found[path] = self._facts[key]
            elif key in rows:
                meta, graph_json = rows[key]
                try:
                    found[path] = Facts.from_json(meta, graph_json)
                except (ValueError, TypeError):
                    continue  # a row this code cannot read: parse again
        return found

    # -- outlines ----------------------------------------------------------------------------------

    def _outlines(
        self, by_path: Mapping[str, FileIn], outlined: Collection[str], count: Count, reread: Reread
    ) -> dict[str, int]:
        """Every outline's exact tokens: one cached row for them all, else one per file (``#n``,
        with the outline's ranges), else rendered and counted now."""
        keys = {p: self._outline_key(by_path[p].key) for p in sorted(outlined)}
        all_key = _key("outlines", *keys.values())
        stored = self.cache.get_blobs([all_key]).get(all_key)
        if stored is not None:
            try:
                tokens = json.loads(stored)
                if isinstance(tokens, dict) and all(isinstance(n, int) for n in tokens.values()):
                    return tokens
            except ValueError:
                pass
        found = {p: o[0] for p, o in self._outline_rows(keys, by_path, count, reread).items()}
        self._new_blobs[all_key] = json.dumps(found)
        return found

    def _outline_rows(
        self, keys: Mapping[str, str], by_path: Mapping[str, FileIn], count: Count, reread: Reread
    ) -> dict[str, Outline]:
        """Tokens, ranges, method and note of the outlines of ``keys`` (path -> outline key)."""
        found: dict[str, Outline] = {}
        rows = self.cache.get_blobs([k + "#n" for k in keys.values()])
        for path, key in keys.items():
            row = rows.get(key + "#n")
            if row is not None:
                try:
                    found[path] = _outline(json.loads(row))
                except (ValueError, TypeError):
                    pass
        rendered = self._rendered([p for p in keys if p not in found], by_path, reread)
        paths = sorted(rendered)
        counts = count([rendered[p][0] for p in paths]) if paths else []
        for path, n in zip(paths, counts, strict=True):
            facts = rendered[path][1]
            found[path] = (n, facts.elided, facts.method, facts.note)
            self._new_blobs[keys[path] + "#n"] = json.dumps([n, facts.elided, facts.method, facts.note])
        return found

    def _rendered(
        self, paths: list[str], by_path: Mapping[str, FileIn], reread: Reread
    ) -> dict[str, tuple[str, Facts]]:
        """(outline section, facts) of ``paths``, rendered in this run or from their text again."""
        out: dict[str, tuple[str, Facts]] = {}
        again = []
        for path in paths:
            f = by_path[path]
            facts = self._facts.get(self.parse_key(path, f.content))
            section = self._sections.get(self._outline_key(f.key))
            if facts is not None and section is not None:
                out[path] = (section, facts)
            else:
                again.append(path)
        texts = reread(again) if again else {}
        for path in again:
            if path in texts:
                f = by_path[path]
                facts = self.see(path, f.key, f.content, texts[path], outline=True)
                section = self._sections.get(self._outline_key(f.key))
                if section is not None:
                    out[path] = (section, facts)
        return out

    def _outline_sections(
        self, paths: list[str], by_path: Mapping[str, FileIn], reread: Reread
    ) -> dict[str, str]:
        """The outline sections of ``paths``: rendered in this run, stored, or rendered again."""
        keys = {p: self._outline_key(by_path[p].key) for p in paths}
        found = {p: self._sections[k] for p, k in keys.items() if k in self._sections}
        stored = self.cache.get_blobs([k for p, k in keys.items() if p not in found])
        found.update({p: stored[k] for p, k in keys.items() if k in stored and p not in found})
        missing = [p for p in paths if p not in found]
        found.update(
            {p: section for p, (section, _facts) in self._rendered(missing, by_path, reread).items()}
        )
        return found

    def _store(self) -> None:
        # As the packer's sections, what fit/ derives from a file's text is stored only redacted:
        # with --no-redact it could hold a secret (an outline certainly would).
        if self.settings.redact:
            blobs = dict(self._new_blobs)
            blobs.update(self._sections)
            self.cache.put_parses(self._new_parses)
            self.cache.put_blobs(blobs)
        self._new_parses, self._new_blobs, self._sections = {}, {}, {}


def _outline(row: list[object]) -> Outline:
    """An outline from its cached row (TypeError or ValueError if the row is not one)."""
    tokens, elided, method, note = row
    if not (isinstance(tokens, int) and isinstance(elided, list) and isinstance(method, str)):
        raise TypeError("not an outline row")
    return tokens, tuple((int(a), int(b)) for a, b in elided), method, None if note is None else str(note)


def _split(
    choice: Mapping[str, str], compressed: Mapping[str, Compressed]
) -> tuple[dict[str, tuple[str, int]], list[str]]:
    sent = {p: (compressed[p].section, compressed[p].tokens) for p in choice if choice[p] == plan.COMPRESSED}
    return sent, [p for p, form in choice.items() if form == plan.FULL]
