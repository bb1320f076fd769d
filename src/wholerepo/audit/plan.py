"""An audit's plan: one pack of the whole repository, cut into shards, each an exact request.

``make_plan`` packs every file with no budget (each file's section and its exact count, from the
packer's cache when warm), then, unless one request holds everything, surveys the repository
(fit/: the import graph, the ranking, the outlines), builds the repository map in at most
``map_share`` of the budget and cuts the files into shards filling the rest (shard.py). The cut
and the map are cached under a key over every file's content and the settings that shape them,
so a warm plan is one pack and one cache row.

Every request is: the system message; ``<untrusted_repository>``, the map, the shard's own pack
(a header with the tree of its files, their sections, a footer), ``</untrusted_repository>``; the
instructions with the audit's note. The system message, the marker and the map are the same in
every request: the endpoint's prefix cache serves them from the second request on.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..llm import pricing
from ..packer import Pack, PackedFile, pack
from ..packer import render as styles
from ..packer.cache import TokenCache, default_cache_dir
from ..packer.run import code_digest, fit_inputs_of, texts_of
from ..reviewer.plan import Frame, Plan, Window, frame, plan_pack, window_label
from ..reviewer.prompts import REPOSITORY_HEAD, SYSTEM
from ..reviewer.result import NotSent
from ..settings import Settings
from ..tokens.counter import TokenCounter
from . import repomap, shard

Progress = Callable[[str, int, int], None]

MAP_SHARE = 0.15  # of the budget, at most, for the repository map
UNLIMITED = 1 << 62
PLAN_VERSION = "audit-plan/1"
SHARD_NOTE = "The files under review in this request, in full; the repository map above shows the rest."
AUDIT_NOTE = (
    "This request is one of several that together audit the whole repository. It starts with a"
    " repository map, the same in every request: the tree of every file and outlines of the most"
    " important ones. The files after the map are the ones under review here, shown in full:"
    " report findings in them. Report a finding in a file seen only in the map only when the code"
    " shown in full shows it (a wrong call, a broken contract), and cite only lines you can see."
)


@dataclass(frozen=True)
class Shard:
    """One request's files: ``index`` from 1, the paths (sorted), their exact tokens in the
    request (the shard's pack: header, sections, footer) and a name for people."""

    index: int
    paths: tuple[str, ...]
    tokens: int
    name: str


@dataclass(frozen=True)
class AuditPlan:
    """Everything an audit sends, counted exactly; nothing sent yet."""

    settings: Settings = field(repr=False)
    whole: Pack = field(repr=False)
    frame: Frame = field(repr=False)
    model: str
    repo_map: repomap.RepoMap = field(repr=False)
    shards: tuple[Shard, ...]
    selected: tuple[int, ...]  # the shards to send (all, or those --changed-since touches)
    not_sent: tuple[NotSent, ...]  # files no shard holds, and why (paths from the repository root)
    prefix_tokens: int  # exact: the system message, the repository marker and the map
    digest: str
    warnings: tuple[str, ...] = ()
    changed_since: str | None = None
    sections: Mapping[str, tuple[str, int]] = field(default_factory=dict, repr=False)

    @property
    def budget(self) -> int:
        return self.frame.budget

    @property
    def prefix(self) -> str:
        return self.whole.prefix

    def shard(self, index: int) -> Shard:
        if not 1 <= index <= len(self.shards):
            raise UsageError(f"--shard {index}: the plan has shards 1 to {len(self.shards)}")
        return self.shards[index - 1]

    def prompt_tokens(self, s: Shard) -> int:
        return self.frame.fixed + self.repo_map.tokens + s.tokens

    def fill(self, s: Shard) -> float:
        """The share of the budget the shard's request uses for the repository (map included)."""
        return (self.repo_map.tokens + s.tokens) / self.budget if self.budget else 0.0

    @functools.cached_property
    def _files(self) -> dict[str, PackedFile]:
        return {f.path: f for f in self.whole.files}

    def pack_of(self, s: Shard) -> Pack:
        files = self._files
        parts, tokens = _assemble(self.settings, s.paths, self.sections, _Counter(self.settings))
        return Pack(
            root=self.whole.root,
            files=tuple(files[p] for p in s.paths),
            parts=parts,
            prompt_tokens=tokens,
            tokenizer=self.whole.tokenizer,
            budget=self.budget - self.repo_map.tokens,
            style=self.whole.style,
            in_git=self.whole.in_git,
            settings=self.whole.settings,
            prefix=self.whole.prefix,
        )

    def request(self, s: Shard, model: str | None = None) -> Plan:
        """The shard's exact request; findings may name any file of the repository."""
        packed = self.pack_of(s)
        if packed.prompt_tokens != s.tokens:  # a file changed since planning
            raise UsageError(f"shard {s.index} changed since it was planned: plan the audit again")
        return plan_pack(
            packed,
            self.frame,
            model=model or self.model,
            head=self.repo_map.text,
            head_tokens=self.repo_map.tokens,
            context=self.whole.texts,
        )

    def to_json(self) -> list[dict[str, Any]]:
        """The plan as a JSON list, one entry per shard to send: a GitHub Actions matrix."""
        return [
            {
                "generator": "wholerepo",  # how a later pack knows the file is ours, not code
                "shard": s.index,
                "of": len(self.shards),
                "name": s.name,
                "files": len(s.paths),
                "prompt_tokens": self.prompt_tokens(s),
                "fill": round(self.fill(s), 4),
                "plan": self.digest,
                "paths": [self.prefix + p for p in s.paths],
            }
            for s in self.shards
            if s.index in self.selected
        ]

    def cost(self, endpoints: int = 1) -> dict[str, Any] | None:
        """The estimated cost of the selected shards: every prompt token a cache miss, and with the
        shared prefix a hit from each endpoint's second request on; output at its limit."""
        price = pricing.price_for(self.model, self.settings.prices)
        if price is None:
            return None
        sent = [self.shards[i - 1] for i in self.selected]
        prompt = sum(self.prompt_tokens(s) for s in sent)
        hits = self.prefix_tokens * max(0, len(sent) - max(1, endpoints)) if self.repo_map.tokens else 0
        output = self.frame.max_tokens * len(sent)
        no_cache = pricing.cost(price, cache_miss_tokens=prompt)
        cached = pricing.cost(price, cache_hit_tokens=hits, cache_miss_tokens=prompt - hits)
        out = pricing.cost(price, output_tokens=output)
        return {
            "prompt_tokens": prompt,
            "cache_hit_tokens": hits,
            "input_without_cache": no_cache,
            "input_with_cache": cached,
            "output_max": out,
            "max_total_without_cache": round(no_cache + out, 6),
            "max_total_with_cache": round(cached + out, 6),
        }


class _Counter:
    """Exact counts through the cache, opened for one use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, texts: list[str]) -> list[int]:
        cache = TokenCache(default_cache_dir() if self.settings.cache else None)
        counter = TokenCounter(self.settings.tokenizer, store=cache if cache.enabled else None)
        try:
            return counter.count_many(texts)
        finally:
            counter.close()
            cache.close()


def _head(settings: Settings, paths: Sequence[str]) -> str:
    head = styles.Header(
        styles.render_tree(paths), (SHARD_NOTE,), settings.line_numbers, settings.line_number_interval
    )
    return styles.render_header(settings.style, head, len(paths))


def _assemble(
    settings: Settings,
    paths: Sequence[str],
    sections: Mapping[str, tuple[str, int]],
    count: Callable[[list[str]], list[int]],
) -> tuple[tuple[str, ...], int]:
    """A shard's pack text in parts (header, sections in path order, footer) and its exact count:
    the sections' counts add up with the header's and the footer's (packer/render.py)."""
    ordered = sorted(paths)
    head = _head(settings, ordered)
    footer = styles.render_footer(settings.style)
    texts = [sections[p][0] for p in ordered]
    tokens = [sections[p][1] for p in ordered]
    if settings.style == "json" and ordered:
        texts[-1] = texts[-1][:-2] + "\n"  # the last array element has no trailing comma
        head_n, last_n, foot_n = count([head, texts[-1], footer])
        tokens[-1] = last_n
    else:
        head_n, foot_n = count([head, footer])
    return (head, *texts, footer), head_n + sum(tokens) + foot_n


def _sections(whole: Pack) -> dict[str, tuple[str, int]]:
    """Each included file's section as the packer rendered it, and its exact count."""
    included = sorted(f.path for f in whole.files if f.status == "included")
    found = {}
    tokens = {f.path: f.tokens for f in whole.files}
    for path, section in zip(included, whole.parts[1:-1], strict=True):
        found[path] = (section, tokens[path])
    if whole.style == "json" and included:  # the pack's last element lost its comma: restore it
        last = included[-1]
        found[last] = (found[last][0][:-1] + ",\n", tokens[last])
    return found


def _under(path: str, subdirs: Sequence[str]) -> bool:
    return any(not d or path == d or path.startswith(d + "/") for d in subdirs)


def _subdirs(root: Path, given: Sequence[str]) -> list[str]:
    out = []
    for d in given:
        target = (root / d).resolve()
        try:
            rel = target.relative_to(root.resolve()).as_posix()
        except ValueError:
            raise UsageError(f"--path {d!r} is outside {root}") from None
        if not target.exists():
            raise UsageError(f"--path {d!r} does not exist in {root}")
        out.append("" if rel == "." else rel.rstrip("/"))
    return out


def make_plan(
    path: Path,
    settings: Settings,
    window: Window,
    *,
    model: str,
    subdirs: Sequence[str] = (),
    changed_since: str | None = None,
    map_share: float = MAP_SHARE,
    on_progress: Progress | None = None,
) -> AuditPlan:
    """Plan the audit of ``path``: shards, map and every request, exact; nothing is sent."""
    if not 0 <= map_share < 1:
        raise UsageError(f"--map-share must be at least 0 and below 1, got {map_share}")
    f = frame(settings, window, note=AUDIT_NOTE)
    whole = pack(
        path, replace(settings, budget=UNLIMITED), on_progress=on_progress, keep_file_text=False, explain=True
    )
    prefix = whole.prefix
    sections = _sections(whole)
    included = sorted(sections)
    wanted = _subdirs(path, subdirs) if subdirs else [""]
    candidates = [p for p in included if _under(p, wanted)]
    not_sent = [NotSent(prefix + x.path, x.reason or "skipped") for x in whole.skipped]
    not_sent += [NotSent(prefix + p, "outside --path") for p in included if not _under(p, wanted)]
    count = _Counter(settings)
    budget = f.budget

    def fits(room: int) -> Callable[[Sequence[str]], bool]:
        return lambda paths: _assemble(settings, paths, sections, count)[1] <= room

    key = _plan_key(whole, settings, budget, map_share, candidates)
    cache = TokenCache(default_cache_dir() if settings.cache else None)
    try:
        stored = cache.get_blobs([key]).get(key) if settings.redact else None
        found = _load(stored)
        if found is None:
            found = _cut(whole, settings, candidates, sections, budget, map_share, fits, cache, count)
            if settings.redact:
                cache.put_blobs({key: json.dumps(found)})
    finally:
        cache.close()
    repo_map = repomap.RepoMap(found["map"], found["map_tokens"], tuple(found["outlined"]), found["depth"])
    shards = []
    for i, paths in enumerate(found["shards"], 1):
        tokens = _assemble(settings, paths, sections, count)[1]
        shards.append(Shard(i, tuple(sorted(paths)), tokens, shard.describe(paths)))
    not_sent += [NotSent(prefix + p, "larger than one request") for p in found["too_large"]]
    selected = tuple(s.index for s in shards)
    warnings = list(whole.warnings)
    if changed_since is not None:
        from ..git.diff import diff_against

        changed = set(diff_against(path, changed_since).changed)
        selected = tuple(s.index for s in shards if changed.intersection(s.paths))
        for s in shards:
            if s.index not in selected:
                not_sent += [NotSent(prefix + p, f"unchanged since {changed_since}") for p in s.paths]
        if not selected:
            warnings.append(f"no file changed since {changed_since}: nothing to audit")
    system_n, head_n = count([SYSTEM, REPOSITORY_HEAD])
    digest = hashlib.blake2b(
        json.dumps([PLAN_VERSION, [s.paths for s in shards], repo_map.text, budget, f.fixed]).encode(
            "utf-8", "surrogateescape"
        ),
        digest_size=12,
    ).hexdigest()
    return AuditPlan(
        settings=settings,
        whole=whole,
        frame=f,
        model=model,
        repo_map=repo_map,
        shards=tuple(shards),
        selected=selected,
        not_sent=tuple(sorted(not_sent, key=lambda n: n.path)),
        prefix_tokens=system_n + head_n + repo_map.tokens,
        digest=digest,
        warnings=tuple(warnings),
        changed_since=changed_since,
        sections=sections,
    )


def _plan_key(whole: Pack, settings: Settings, budget: int, map_share: float, paths: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(
        json.dumps(
            [PLAN_VERSION, code_digest(), settings.style, settings.tokenizer, settings.line_numbers,
             settings.line_number_interval, settings.redact, budget, map_share, whole.prefix]
        ).encode()
    )  # fmt: skip
    wanted = set(paths)
    for f in fit_inputs_of(whole):
        digest.update(f"{f.path}\0{f.key}\0{int(f.path in wanted)}\n".encode("utf-8", "surrogateescape"))
    return "audit-plan:" + digest.hexdigest()


def _load(stored: str | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    try:
        found = json.loads(stored)
        if isinstance(found, dict) and {"shards", "too_large", "map", "map_tokens"} <= set(found):
            return found
    except ValueError:
        pass
    return None


def _cut(
    whole: Pack,
    settings: Settings,
    candidates: list[str],
    sections: Mapping[str, tuple[str, int]],
    budget: int,
    map_share: float,
    fits: Callable[[int], Callable[[Sequence[str]], bool]],
    cache: TokenCache,
    count: Callable[[list[str]], list[int]],
) -> dict[str, Any]:
    """The shards and the map, computed: one request without a map when everything fits in it."""
    found: dict[str, Any] = {"map": "", "map_tokens": 0, "outlined": [], "depth": None, "too_large": []}
    if candidates and len(candidates) == len(sections) and fits(budget)(candidates):
        found["shards"] = [candidates]
        return found
    from ..packer.fit import stage_at

    counter = TokenCounter(settings.tokenizer, store=cache if cache.enabled else None)
    try:
        inputs = fit_inputs_of(whole)
        stage = stage_at(whole.root, whole.in_git, settings, counter, cache, None, code_digest())
        reread = texts_of(whole)
        survey = stage.survey(inputs, reread)
        outline_tokens = stage.outline_tokens(inputs, survey.outlined, counter.count_many, reread)
        repo_map = repomap.build(
            sorted(sections),
            survey.ranking,
            outline_tokens,
            lambda paths: stage.outlines(inputs, paths, counter.count_many, reread),
            int(budget * map_share),
            counter.count_many,
        )
    finally:
        counter.close()
    room = budget - repo_map.tokens
    frame_n = _assemble(settings, [], sections, count)[1]
    sizes = {p: sections[p][1] + shard.tree_cost(p) for p in candidates}
    result = shard.cut(sizes, room - frame_n, fits(room), survey.graph)
    found.update(
        shards=[list(s) for s in result.shards],
        too_large=list(result.too_large),
        map=repo_map.text,
        map_tokens=repo_map.tokens,
        outlined=list(repo_map.outlined),
        depth=repo_map.depth,
    )
    return found


def dry_run_report(plan: AuditPlan, endpoints: Sequence[str], notes: Sequence[str] = ()) -> dict[str, Any]:
    """What an audit would send and cost, as data (printed as text or JSON)."""
    sent = [plan.shards[i - 1] for i in plan.selected]
    return {
        "dry_run": True,
        "endpoints": list(endpoints),
        "model": plan.model,
        "tokenizer": plan.settings.tokenizer,
        "budget": plan.budget,  # for the repository part of a request: map and files
        "instruction_tokens": plan.frame.fixed,  # what every request adds to it
        "context_window": plan.frame.window.tokens,
        "context_window_source": plan.frame.window.source,
        "max_output_tokens": plan.frame.max_tokens,
        "map_tokens": plan.repo_map.tokens,
        "map_outlines": len(plan.repo_map.outlined),
        "shared_prefix_tokens": plan.prefix_tokens if plan.repo_map.tokens else 0,
        "requests": len(sent),
        "shards": [
            {
                "shard": s.index,
                "name": s.name,
                "files": len(s.paths),
                "prompt_tokens": plan.prompt_tokens(s),
                "fill": round(plan.fill(s), 4),
            }
            for s in sent
        ],
        "files_in_shards": sum(len(s.paths) for s in sent),
        "not_sent": _reasons(plan.not_sent),
        "estimated_cost_usd": plan.cost(len(endpoints)),
        "notes": [*notes, *plan.warnings],
        "plan": plan.digest,
    }


def _reasons(items: Sequence[NotSent]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in items:
        counts[n.reason] = counts.get(n.reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def dry_run_text(report: Mapping[str, Any]) -> str:
    lines = [
        f"wholerepo audit --dry-run: nothing was sent to {', '.join(report['endpoints'])}",
        f"  model:          {report['model']}",
        f"  budget:         {report['budget']:,} tokens of repository (map and files) a request,"
        f" plus {report['instruction_tokens']:,} of instructions and up to"
        f" {report['max_output_tokens']:,} of output",
        f"  context window: {report['context_window']:,} ({window_label(report['context_window_source'])})",
        f"  map:            {report['map_tokens']:,} tokens ({report['map_outlines']:,} outlines),"
        f" shared prefix {report['shared_prefix_tokens']:,} tokens in every request",
        f"  requests:       {report['requests']:,} ({report['files_in_shards']:,} files)",
    ]
    for s in report["shards"]:
        lines.append(
            f"    shard {s['shard']:>4}: {s['prompt_tokens']:>10,} prompt tokens"
            f" (exact, {report['tokenizer']}), repository {s['fill']:7.2%} of the budget,"
            f" {s['files']:,} file{'s' if s['files'] != 1 else ''}:"
            f" {s['name']}"
        )
    if report["not_sent"]:
        shown = ", ".join(f"{reason} {n:,}" for reason, n in report["not_sent"].items())
        lines.append(f"  not sent:       {shown}")
    cost = report["estimated_cost_usd"]
    if cost is None:
        lines.append(f"  estimated cost: unknown (no price for {report['model']}; set prices in your config)")
    else:
        lines.append(
            f"  estimated cost: input ${cost['input_without_cache']:.4f} without the prefix cache,"
            f" ${cost['input_with_cache']:.4f} with it ({cost['cache_hit_tokens']:,} cache-hit tokens);"
            f" output up to ${cost['output_max']:.4f}; at most ${cost['max_total_with_cache']:.4f} with the"
            f" cache, ${cost['max_total_without_cache']:.4f} without (peak prices)"
        )
    lines.extend(f"  note: {note}" for note in report["notes"])
    return "\n".join(lines) + "\n"


def load_plan_file(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the plan file is not JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) and "shard" in e for e in data):
        raise UsageError("the plan file is not a plan written by `wholerepo audit plan`")
    return data
