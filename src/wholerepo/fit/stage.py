"""The fitting stage of the packer: parse, rank, compress and choose, through the cache.

The packer hands over each file it decodes (``see``: parsed while its text is in memory, when the
repository looks larger than the budget) and, once every section is counted, the list of files
that could go in (``run``). ``run`` then:

1. looks the ranking up by a key over every file's content and HEAD (a warm run stops here for
   ranking); otherwise it parses the files not parsed yet (their text read again through the
   packer's ``reread``), builds the graph, reads git churn (one ``git log``, cached per HEAD,
   started in the background) and ranks;
2. renders each compressed section (cached per file and rendering) and counts it exactly;
3. chooses full / compressed / left out in rank order (plan.py) against the packer's exact
   ``assemble``.

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

from .. import styles
from ..cache import TokenCache
from ..config import Settings
from ..tokens import may_hold_control_token
from . import graph as graphs
from . import history, plan, skeleton
from .parse import Facts, analyze
from .rank import Ranked, rank_files

# Token estimate of a file's line in the directory tree, with its share of the directory lines
# (babel, git/git and pytest average 7.2-8.3 tokens a file); the output is counted afterwards.
TREE_LINE = 5
FILL_MIN = 24  # room left (tokens) worth filling with part of a file
FILL_FILES = 4  # files tried for it

Count = Callable[[list[str]], list[int]]
Reread = Callable[[Collection[str]], Mapping[str, str]]
# (path -> compressed section and its tokens, paths sent whole) -> (output parts, exact tokens)
Assemble = Callable[[Mapping[str, tuple[str, int]], Collection[str]], tuple[tuple[str, ...], int]]


@dataclass(frozen=True)
class FileIn:
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
class Compressed:
    """A file's compressed section as sent."""

    section: str
    tokens: int
    elided: tuple[tuple[int, int], ...]
    method: str  # "outline" | "head"
    note: str | None

    @property
    def reason(self) -> str:
        what = "outline" if self.method == "outline" else "first lines only"
        return f"{what} ({self.note})" if self.note else what


@dataclass(frozen=True)
class Outcome:
    """What the stage decided: each path's status, its rank, and the output."""

    status: dict[str, str]  # path -> "included" | "compressed" | "over-budget"
    compressed: dict[str, Compressed]  # the compressed files' sections
    ranking: tuple[Ranked, ...]
    parts: tuple[str, ...]
    tokens: int


@dataclass
class _Pending:
    """A ranking being made: its cache keys, and the cached ranking or the churn (or its reader)."""

    rank_key: str
    churn_key: str
    ranking: list[Ranked] | None = None
    facts: dict[str, Facts] | None = None  # what a cached ranking kept of each file's outline
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


def _key(kind: str, *parts: bytes | str) -> str:
    digest = hashlib.blake2b(fit_digest(), digest_size=20)
    for part in parts:
        digest.update(part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part)
        digest.update(b"\0")
    return f"{kind}:{digest.hexdigest()}"


class FitStage:
    """One run's fitting; ``see`` during reading, then ``run`` once."""

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
        self.root, self.settings, self.cache, self.text_key = root, settings, cache, text_key
        self.focus = focus or Focus()
        self.in_git = in_git
        self.defang = defang
        self.compress = settings.fit == "compress"
        self._facts: dict[str, Facts] = {}  # parsed in this run, by parse key
        self._sections: dict[str, str] = {}  # compressed sections rendered in this run, by key
        self._new_parses: dict[str, tuple[str, str]] = {}
        self._new_blobs: dict[str, str] = {}
        self._parse_base = hashlib.blake2b(fit_digest() + text_key, digest_size=20)
        self._outline_prefix = fit_digest().hex()[:16]

    def parse_key(self, path: str, content: bytes) -> str:
        """The key of a file's facts: its bytes and path, how its text is made, this code."""
        digest = self._parse_base.copy()
        digest.update(content + b"\0" + path.encode("utf-8", "surrogateescape"))
        return "parse:" + digest.hexdigest()

    def _skeleton_key(self, key: str) -> str:
        """The key of a file's compressed section: the packer's key for it (how it renders, its
        path and bytes), and this code."""
        return f"outline:{self._outline_prefix}:{key}"

    def see(self, path: str, key: str, content: bytes, text: str, outline: bool | None = None) -> None:
        """A file decoded in this run: parse it, and render its compressed form (``outline``, by
        default when compressing), while the text is here."""
        pkey = self.parse_key(path, content)
        facts = self._facts.get(pkey)
        if facts is None:
            facts = self._facts[pkey] = analyze(path, text)
            self._new_parses[pkey] = (facts.meta_json(), facts.graph_json())
        skeleton_key = self._skeleton_key(key)
        wanted = self.compress if outline is None else outline
        if facts.elided and wanted and skeleton_key not in self._sections:
            self._sections[skeleton_key] = self.render(path, text, facts.elided)

    def render(self, path: str, text: str, elided: tuple[tuple[int, int], ...]) -> str:
        """The compressed section of ``path``: ``text`` without the ``elided`` lines, framed."""
        s = self.settings
        body = skeleton.render(text, elided, s.line_numbers, s.line_number_interval)
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        entry = styles.Entry(path, body, lines, status="compressed", language=styles.language_of(path))
        section = styles.render_section(s.style, entry, last=False)
        return self.defang(section) if may_hold_control_token(path) else section

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
    ) -> Outcome:
        """Rank ``files``, compress what must be, and choose within ``limit`` tokens.

        ``frame`` is the tokens of the output without any file (empty tree)."""
        by_path = {f.path: f for f in files}
        ranking, facts, sections = self._gather(files, reread, outlines=self.compress)
        compressed = self._count_sections(sections, facts, count)
        options = [
            plan.Option(
                r.path,
                by_path[r.path].tokens,
                compressed[r.path].tokens if r.path in compressed else None,
                TREE_LINE + len(r.path.rsplit("/", 1)[-1]) // 3,
            )
            for r in ranking
        ]

        assembled: dict[frozenset[tuple[str, str]], tuple[tuple[str, ...], int]] = {}

        def tokens_of(choice: Mapping[str, str]) -> int:
            key = frozenset(choice.items())
            if key not in assembled:
                if len(assembled) >= 2:  # the last two: the one taken and a trial given up
                    del assembled[next(iter(assembled))]
                assembled[key] = assemble(*_split(choice, compressed))
            return assembled[key][1]

        choice = plan.plan(options, limit, frame, self.compress, tokens_of)
        tokens_of(choice)
        parts, n = assembled[frozenset(choice.items())]
        if self.compress and limit - n >= FILL_MIN:
            filler = _Filler(self, choice, dict(compressed), by_path, count, reread)
            parts, n = filler.fill(ranking, limit, (parts, n), assemble)
            compressed = filler.compressed
        self._store()
        status = {
            f.path: {plan.FULL: "included", plan.COMPRESSED: "compressed"}.get(
                choice.get(f.path, ""), "over-budget"
            )
            for f in files
        }
        used = {p: c for p, c in compressed.items() if status[p] == "compressed"}
        return Outcome(status, used, tuple(ranking), parts, n)

    def rank_only(self, files: list[FileIn], reread: Reread) -> tuple[Ranked, ...]:
        """The ranking alone (``--explain-ranking`` on a repository that fits)."""
        ranking, _facts, _sections = self._gather(files, reread, outlines=False)
        self._store()
        return tuple(ranking)

    def _gather(
        self, files: list[FileIn], reread: Reread, outlines: bool
    ) -> tuple[list[Ranked], dict[str, Facts], dict[str, str]]:
        """The ranking, every file's facts and (``outlines``) the compressed sections, from the
        cache where it has them; the rest parsed and rendered from the text read again."""
        by_path = {f.path: f for f in files}
        pkeys = {f.path: self.parse_key(f.path, f.content) for f in files}
        pending = self._start_ranking(pkeys)
        try:
            facts = pending.facts if pending.facts is not None else self._load_facts(pkeys, graph=False)
            skeleton_keys = {f.path: self._skeleton_key(f.key) for f in files}
            sections: dict[str, str] = {}
            if outlines:
                wanted = {p: k for p, k in skeleton_keys.items() if p in facts and facts[p].elided}
                sections = self._load_sections(wanted)
            missing = {f.path for f in files if f.path not in facts}
            if outlines:
                missing |= {p for p in skeleton_keys if p in facts and facts[p].elided and p not in sections}
            texts = reread(sorted(missing)) if missing else {}
            for path in sorted(missing):
                text = texts.get(path)
                if text is None:  # unreadable now: no facts, sent whole or not at all
                    facts.setdefault(path, Facts(None, "none"))
                    continue
                self.see(path, by_path[path].key, by_path[path].content, text, outline=outlines)
                facts[path] = self._facts[pkeys[path]]
                section = self._sections.get(skeleton_keys[path])
                if section is not None:
                    sections[path] = section
            ranking = self._finish_ranking(pending, pkeys, facts)
        finally:
            if pending.reader is not None:
                pending.reader.close()
        return ranking, facts, sections

    def _load_facts(self, pkeys: Mapping[str, str], graph: bool) -> dict[str, Facts]:
        found: dict[str, Facts] = {}
        wanted = [k for k in pkeys.values() if k not in self._facts]
        rows = self.cache.get_parses(wanted, graph=graph) if wanted else {}
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

    def _load_sections(self, keys: Mapping[str, str]) -> dict[str, str]:
        found: dict[str, str] = {}
        stored = self.cache.get_blobs([k for k in keys.values() if k not in self._sections])
        for path, key in keys.items():
            section = self._sections.get(key, stored.get(key))
            if section is not None:
                found[path] = section
        return found

    def _count_sections(
        self, sections: Mapping[str, str], facts: Mapping[str, Facts], count: Count
    ) -> dict[str, Compressed]:
        paths = sorted(sections)
        counts = count([sections[p] for p in paths]) if paths else []
        return {
            p: Compressed(sections[p], n, facts[p].elided, facts[p].method, facts[p].note)
            for p, n in zip(paths, counts, strict=True)
        }

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
                pending.ranking = [Ranked(p, int(r), g, float(s), tuple(w)) for p, r, g, s, w, _ in rows]
                pending.facts = {
                    row[0]: Facts.from_json(row[5], None) if row[5] else _NO_OUTLINE for row in rows
                }
                return pending
            except (ValueError, TypeError):
                pending.ranking = pending.facts = None
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

    def _finish_ranking(
        self, pending: _Pending, pkeys: Mapping[str, str], facts: Mapping[str, Facts]
    ) -> list[Ranked]:
        if pending.ranking is not None:
            return pending.ranking
        churn = pending.churn
        if churn is None:
            assert pending.reader is not None
            try:
                churn = pending.reader.result()
            finally:
                pending.reader.close()
                pending.reader = None
            self._new_blobs[pending.churn_key] = churn.to_json()
        full = self._load_facts(pkeys, graph=True)
        for path, f in facts.items():  # files unreadable now have placeholder facts
            full.setdefault(path, f)
        ranking = rank_files(graphs.build(full), churn, self.focus.changed, self.focus.ref)
        self._new_blobs[pending.rank_key] = json.dumps(
            [[r.path, r.rank, r.group, r.score, list(r.why), _outline_json(facts[r.path])] for r in ranking]
        )
        return ranking

    def _store(self) -> None:
        blobs = dict(self._new_blobs)
        blobs.update(self._sections)
        self.cache.put_parses(self._new_parses)
        self.cache.put_blobs(blobs)
        self._new_parses, self._new_blobs = {}, {}


_NO_OUTLINE = Facts(None, "none")


class _Filler:
    """Spends what the whole-file choice left of the budget: the most important compressed file
    gets its elided ranges back from the top while they fit, or the most important file left
    out goes in as its first lines. Every candidate form is counted exactly."""

    def __init__(
        self,
        stage: FitStage,
        choice: dict[str, str],
        compressed: dict[str, Compressed],
        by_path: Mapping[str, FileIn],
        count: Count,
        reread: Reread,
    ) -> None:
        self.stage, self.choice, self.compressed = stage, choice, compressed
        self.by_path, self.count, self.reread = by_path, count, reread

    def fill(
        self, ranking: list[Ranked], limit: int, done: tuple[tuple[str, ...], int], assemble: Assemble
    ) -> tuple[tuple[str, ...], int]:
        tried = 0
        for r in ranking:
            room = limit - done[1]
            if room < FILL_MIN or tried >= FILL_FILES:
                break
            form = self.choice.get(r.path)
            if form == plan.FULL or (form == plan.COMPRESSED and not self.compressed[r.path].elided):
                continue
            tried += 1
            text = self.reread([r.path]).get(r.path)
            if text is None:
                continue
            before = (self.choice.get(r.path), self.compressed.get(r.path))
            if form == plan.COMPRESSED:
                allowance = self.compressed[r.path].tokens + room
            else:  # its tree line, and maybe the header's note on compressed files, cost too
                allowance = room - TREE_LINE - len(r.path.rsplit("/", 1)[-1]) // 3
            for _ in range(3):
                if form == plan.COMPRESSED:
                    self._restore(r.path, text, allowance)
                else:
                    self._head(r.path, text, allowance)
                if (self.choice.get(r.path), self.compressed.get(r.path)) == before:
                    break
                trial = assemble(*_split(self.choice, self.compressed))
                if trial[1] <= limit:
                    done = trial
                    break
                self._set(r.path, *before)  # the estimates were short: try again with less
                allowance -= trial[1] - limit
        return done

    def _set(self, path: str, form: str | None, compressed: Compressed | None) -> None:
        if form is None:
            self.choice.pop(path, None)
        else:
            self.choice[path] = form
        if compressed is None:
            self.compressed.pop(path, None)
        else:
            self.compressed[path] = compressed

    def _largest(self, forms: int, tokens: Callable[[int], int], allowance: int) -> int | None:
        """The largest ``i`` in 0..forms-1 whose form costs at most ``allowance`` (forms grow with
        ``i``, roughly: the answer is counted, not assumed)."""
        lo, hi, best = 0, forms - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if tokens(mid) <= allowance:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return best

    def _restore(self, path: str, text: str, allowance: int) -> None:
        c = self.compressed[path]
        if self.by_path[path].tokens <= allowance:  # it fits whole after all
            self._set(path, plan.FULL, None)
            return
        hidden = skeleton.elided_lines(c.elided)
        forms: dict[int, tuple[str, int]] = {}

        def tokens(restored: int) -> int:  # the first ``restored`` elided lines shown again
            if restored not in forms:
                forms[restored] = self._section(path, text, _show_first(c.elided, restored))
            return forms[restored][1]

        best = self._largest(hidden, tokens, allowance)
        if best:
            section, n = forms[best]
            note = f"{best} of its {hidden} elided lines shown again to fill the budget"
            note = f"{c.note}; {note}" if c.note else note
            self.compressed[path] = Compressed(section, n, _show_first(c.elided, best), c.method, note)

    def _head(self, path: str, text: str, allowance: int) -> None:
        total = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        if total < 2 or allowance <= 0:
            return
        forms: dict[int, tuple[str, int]] = {}

        def tokens(kept: int) -> int:  # the first ``kept`` + 1 lines
            if kept not in forms:
                forms[kept] = self._section(path, text, ((kept + 2, total),))
            return forms[kept][1]

        best = self._largest(total - 1, tokens, allowance)
        if best is not None:
            section, n = forms[best]
            note = "cut to fit what was left of the budget"
            self._set(path, plan.COMPRESSED, Compressed(section, n, ((best + 2, total),), "head", note))

    def _section(self, path: str, text: str, elided: tuple[tuple[int, int], ...]) -> tuple[str, int]:
        section = self.stage.render(path, text, elided)
        return section, self.count([section])[0]


def _outline_json(facts: Facts) -> str | None:
    """What a cached ranking keeps of a file's facts: its outline, when it has one."""
    return facts.meta_json() if facts.elided else None


def _show_first(elided: tuple[tuple[int, int], ...], lines: int) -> tuple[tuple[int, int], ...]:
    """``elided`` with its first ``lines`` elided lines shown again."""
    kept = []
    for a, b in elided:
        if lines >= b - a + 1:
            lines -= b - a + 1
            continue
        kept.append((a + lines, b))
        lines = 0
    return tuple(kept)


def _split(
    choice: Mapping[str, str], compressed: Mapping[str, Compressed]
) -> tuple[dict[str, tuple[str, int]], list[str]]:
    sent = {
        p: (compressed[p].section, compressed[p].tokens)
        for p, form in choice.items()
        if form == plan.COMPRESSED
    }
    return sent, [p for p, form in choice.items() if form == plan.FULL]
