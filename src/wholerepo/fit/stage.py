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

# Token estimate of one more file's line in the directory tree (checked by counting afterwards).
TREE_LINE = 6

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

    def parse_key(self, path: str, content: bytes) -> str:
        return _key("parse", self.text_key, content, path)

    def _skeleton_key(self, key: str) -> str:
        return _key("outline", key)

    def see(self, path: str, key: str, content: bytes, text: str) -> None:
        """A file decoded in this run: parse it (and render its compressed form) while the text is here."""
        pkey = self.parse_key(path, content)
        if pkey in self._facts:
            return
        facts = analyze(path, text)
        self._facts[pkey] = facts
        self._new_parses[pkey] = (facts.meta_json(), facts.graph_json())
        if facts.elided and self.compress:
            self._sections[self._skeleton_key(key)] = self._render(path, text, facts)

    def _render(self, path: str, text: str, facts: Facts) -> str:
        s = self.settings
        body = skeleton.render(text, facts.elided, s.line_numbers, s.line_number_interval)
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

        ``frame`` bounds from above the tokens of the output without any file section."""
        by_path = {f.path: f for f in files}
        pkeys = {f.path: self.parse_key(f.path, f.content) for f in files}
        pending = self._start_ranking(pkeys)
        facts = self._load_facts(pkeys, graph=False)
        skeleton_keys = {f.path: self._skeleton_key(f.key) for f in files}
        sections: dict[str, str] = {}
        if self.compress:
            wanted = {p: k for p, k in skeleton_keys.items() if p in facts and facts[p].elided}
            sections = self._load_sections(wanted)
        missing = [f.path for f in files if f.path not in facts]
        if self.compress:
            missing += [p for p in skeleton_keys if p in facts and facts[p].elided and p not in sections]
        if missing:
            texts = reread(sorted(set(missing)))
            for path in sorted(set(missing)):
                text = texts.get(path)
                if text is None:  # unreadable now: no facts, sent whole or not at all
                    facts.setdefault(path, Facts(None, "none"))
                    continue
                self.see(path, by_path[path].key, by_path[path].content, text)
                facts[path] = self._facts[pkeys[path]]
                section = self._sections.get(skeleton_keys[path])
                if section is not None:
                    sections[path] = section
        ranking = self._finish_ranking(pending, pkeys, facts)
        compressed = self._count_sections(sections, facts, count)
        options = [
            plan.Option(
                r.path,
                by_path[r.path].tokens,
                compressed[r.path].tokens if r.path in compressed else None,
                TREE_LINE + len(r.path.rsplit("/", 1)[-1]) // 4,
            )
            for r in ranking
        ]

        def tokens_of(choice: Mapping[str, str]) -> int:
            return assemble(*_split(choice, compressed))[1]

        choice = plan.plan(options, limit, frame, self.compress, tokens_of)
        parts, n = assemble(*_split(choice, compressed))
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
        pkeys = {f.path: self.parse_key(f.path, f.content) for f in files}
        pending = self._start_ranking(pkeys)
        facts = self._load_facts(pkeys, graph=False)
        by_path = {f.path: f for f in files}
        missing = sorted(p for p in pkeys if p not in facts)
        if missing:
            texts = reread(missing)
            for path in missing:
                if path in texts:
                    self.see(path, by_path[path].key, by_path[path].content, texts[path])
                    facts[path] = self._facts[pkeys[path]]
                else:
                    facts[path] = Facts(None, "none")
        ranking = self._finish_ranking(pending, pkeys, facts)
        self._store()
        return tuple(ranking)

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
                pending.ranking = [
                    Ranked(p, int(r), g, float(s), tuple(w)) for p, r, g, s, w in json.loads(stored[rank_key])
                ]
                return pending
            except (ValueError, TypeError):
                pass
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
            self._new_blobs[pending.churn_key] = churn.to_json()
        full = self._load_facts(pkeys, graph=True)
        for path, f in facts.items():  # files unreadable now have placeholder facts
            full.setdefault(path, f)
        ranking = rank_files(graphs.build(full), churn, self.focus.changed, self.focus.ref)
        self._new_blobs[pending.rank_key] = json.dumps(
            [[r.path, r.rank, r.group, r.score, list(r.why)] for r in ranking]
        )
        return ranking

    def _store(self) -> None:
        blobs = dict(self._new_blobs)
        blobs.update(self._sections)
        self.cache.put_parses(self._new_parses)
        self.cache.put_blobs(blobs)
        self._new_parses, self._new_blobs = {}, {}


def _split(
    choice: Mapping[str, str], compressed: Mapping[str, Compressed]
) -> tuple[dict[str, tuple[str, int]], list[str]]:
    sent = {
        p: (compressed[p].section, compressed[p].tokens)
        for p, form in choice.items()
        if form == plan.COMPRESSED
    }
    return sent, [p for p, form in choice.items() if form == plan.FULL]
