"""Shard results into one ReviewResult, and shard results to and from ``shard-K.json``.

The merge is a pure function of the shard results and the plan's facts (which shards were to be
sent, what no shard holds): an audit run in one process and the same audit run as ``plan``, one
``run --shard K`` per CI runner and ``merge`` give the same report, whatever order the shards
finished in and whichever endpoint served them. Verified findings are de-duplicated across shards
by fingerprint, then near duplicates (same file and category, same lines and quote, or the same
title on overlapping lines) are merged as a single review merges them (verify.merge_duplicates).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import UsageError
from ..llm.base import Usage
from ..reviewer.findings import Finding, Unverified, finding_sort_key
from ..reviewer.result import NotSent, ReviewResult
from ..reviewer.run import DRIFT_PREFIX, drift_warning
from ..reviewer.verify import merge_duplicates

SHARD_FILE_VERSION = 1
DONE, FAILED, INTERRUPTED = "done", "failed", "interrupted"


@dataclass(frozen=True)
class ShardResult:
    """One shard's fate: done (``result`` complete), failed or interrupted (``result`` holds the
    findings that arrived, if any; ``error`` says what went wrong)."""

    index: int
    name: str
    status: str
    paths: tuple[str, ...] = field(default=(), repr=False)  # from the repository root
    result: ReviewResult | None = None
    error: str | None = None
    endpoint: str | None = None
    resumed: bool = False


@dataclass(frozen=True)
class AuditInfo:
    """What the merge needs of the plan; the same in every shard file of one plan."""

    plan: str  # the plan's digest
    shards: int
    selected: tuple[int, ...]
    not_sent: tuple[NotSent, ...]
    endpoints: tuple[str, ...]
    model: str
    tokenizer: str
    prompt_name: str
    tool_version: str


@dataclass(frozen=True)
class Merged:
    result: ReviewResult
    failed: tuple[int, ...]  # shards selected that did not finish: failed, interrupted or missing


def merge(info: AuditInfo, shards: Sequence[ShardResult]) -> Merged:
    """One ReviewResult from the shards' results."""
    by_index: dict[int, ShardResult] = {}
    for s in shards:
        if s.index not in by_index or (s.status == DONE and by_index[s.index].status != DONE):
            by_index[s.index] = s
    ordered = [by_index[i] for i in sorted(by_index) if i in info.selected]
    failed = tuple(i for i in info.selected if i not in by_index or by_index[i].status != DONE)
    results = [(s, s.result) for s in ordered if s.result is not None]
    seen: dict[str, int] = {}
    verified: list[Finding] = []
    for _s, r in results:
        for f in r.verified:
            at = seen.get(f.fingerprint) if f.fingerprint else None
            if at is not None:
                kept = verified[at]
                verified[at] = replace(kept, merged_titles=(*kept.merged_titles, f.title, *f.merged_titles))
                continue
            if f.fingerprint:
                seen[f.fingerprint] = len(verified)
            verified.append(f)
    verified = sorted(merge_duplicates(sorted(verified, key=finding_sort_key)), key=finding_sort_key)
    unverified = _unique(u for _s, r in results for u in r.unverified)
    unanchored = _unique(u for _s, r in results for u in r.unanchored)
    summaries = [(s, r.summary.strip()) for s, r in results if r.summary.strip()]
    if len(info.selected) == 1 and len(summaries) == 1:
        summary = summaries[0][1]
    else:
        summary = "\n\n".join(f"Shard {s.index} ({s.name}): {text}" for s, text in summaries)
    reasons = []
    if failed:
        what = []
        for i in failed:
            got = by_index.get(i)
            what.append(
                f"shard {i} {got.status}: {got.error}"
                if got is not None and got.error
                else f"shard {i} missing"
            )
        reasons.append(f"{len(failed)} of {len(info.selected)} shards did not finish ({'; '.join(what)})")
    for s, r in results:
        if r.partial and s.status == DONE:
            reasons.append(f"shard {s.index}: {r.partial_reason or 'partial'}")
    warnings = _distinct_warnings([r for _s, r in results], info)
    not_sent = list(info.not_sent)
    for i in failed:
        got = by_index.get(i)
        if got is not None:
            not_sent += [NotSent(p, f"shard {i} {got.status}") for p in got.paths]
    usage = _usage([r.usage for _s, r in results])
    costs = [r.cost_usd for _s, r in results]
    endpoint_tokens = [r.endpoint_prompt_tokens for _s, r in results]
    merged = ReviewResult(
        summary=summary,
        verified=tuple(verified),
        unverified=unverified,
        unanchored=unanchored,
        model=info.model,
        endpoint=", ".join(info.endpoints),
        tokenizer=info.tokenizer,
        prompt_tokens=sum(r.prompt_tokens for _s, r in results),
        tool_version=info.tool_version,
        endpoint_prompt_tokens=(
            sum(n for n in endpoint_tokens if n is not None)
            if endpoint_tokens and all(n is not None for n in endpoint_tokens)
            else None
        ),
        usage=usage,
        cost_usd=round(sum(c for c in costs if c is not None), 6) if costs and None not in costs else None,
        partial=bool(reasons),
        partial_reason="; ".join(reasons) if reasons else None,
        files_reviewed=sum(r.files_reviewed for s, r in results if s.status == DONE),
        prompt_name=info.prompt_name,
        warnings=tuple(warnings),
        not_sent=tuple(sorted(not_sent, key=lambda n: (n.path, n.reason))),
        command="audit",
    )
    return Merged(merged, failed)


def _unique(items: Any) -> tuple[Unverified, ...]:
    return tuple(dict.fromkeys(items))


def _usage(usages: Sequence[Usage | None]) -> Usage | None:
    present = [u for u in usages if u is not None]
    if not present:
        return None

    def total(name: str) -> int | None:
        values = [getattr(u, name) for u in present]
        return sum(values) if all(v is not None for v in values) else None

    return Usage(*(total(n) for n in ("prompt_tokens", "completion_tokens", "cache_hit_tokens",
                                     "cache_miss_tokens", "reasoning_tokens")))  # fmt: skip


def _distinct_warnings(results: Sequence[ReviewResult], info: AuditInfo) -> list[str]:
    """Each warning once, however many shards gave it. A shard's tokenizer drift carries its own
    figures, so the shards that drifted become one warning over their totals."""
    counts: dict[str, int] = {}
    drifts: list[str] = []
    drifted: list[ReviewResult] = []
    for r in results:
        for w in dict.fromkeys(r.warnings):
            if w.startswith(DRIFT_PREFIX):
                drifts.append(w)
                drifted.append(r)
            else:
                counts[w] = counts.get(w, 0) + 1
    warnings = [w if n == 1 else f"{w} ({n} shards)" for w, n in counts.items()]
    if drifts:
        ours = sum(r.prompt_tokens for r in drifted)
        theirs = sum(r.endpoint_prompt_tokens or 0 for r in drifted)
        text = drift_warning(theirs, ours, info.tokenizer, info.model) or drifts[0]
        warnings.append(text if len(results) == 1 else f"in {len(drifts)} of {len(results)} shards, {text}")
    return warnings


# -- shard files ---------------------------------------------------------------------------------


def result_to_json(r: ReviewResult) -> dict[str, Any]:
    return asdict(r)


def result_from_json(data: Mapping[str, Any]) -> ReviewResult:
    d = dict(data)
    d["verified"] = tuple(
        Finding(**{**f, "merged_titles": tuple(f.get("merged_titles", ()))}) for f in d["verified"]
    )
    d["unverified"] = tuple(Unverified(**u) for u in d["unverified"])
    d["unanchored"] = tuple(Unverified(**u) for u in d.get("unanchored", ()))
    d["usage"] = Usage(**d["usage"]) if d.get("usage") is not None else None
    d["warnings"] = tuple(d.get("warnings", ()))
    d["not_sent"] = tuple(NotSent(**n) for n in d.get("not_sent", ()))
    return ReviewResult(**d)


def shard_file(info: AuditInfo, s: ShardResult) -> str:
    """``shard-K.json``: the plan's facts and one shard's result."""
    data = {
        "generator": "wholerepo",
        "kind": "audit-shard",
        "version": SHARD_FILE_VERSION,
        "info": {**asdict(info), "not_sent": [asdict(n) for n in info.not_sent]},
        "shard": {
            "index": s.index,
            "name": s.name,
            "status": s.status,
            "paths": list(s.paths),
            "error": s.error,
            "endpoint": s.endpoint,
            "result": result_to_json(s.result) if s.result is not None else None,
        },
    }
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def read_shard_file(text: str, name: str) -> tuple[AuditInfo, ShardResult]:
    try:
        data = json.loads(text)
        if data.get("kind") != "audit-shard" or data.get("version") != SHARD_FILE_VERSION:
            raise ValueError("not a shard file of this version")
        i = data["info"]
        info = AuditInfo(
            plan=str(i["plan"]),
            shards=int(i["shards"]),
            selected=tuple(int(x) for x in i["selected"]),
            not_sent=tuple(NotSent(**n) for n in i["not_sent"]),
            endpoints=tuple(i["endpoints"]),
            model=str(i["model"]),
            tokenizer=str(i["tokenizer"]),
            prompt_name=str(i["prompt_name"]),
            tool_version=str(i["tool_version"]),
        )
        s = data["shard"]
        result = result_from_json(s["result"]) if s.get("result") is not None else None
        shard = ShardResult(
            int(s["index"]), str(s["name"]), str(s["status"]), tuple(s["paths"]), result, s.get("error"),
            s.get("endpoint"),
        )  # fmt: skip
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UsageError(f"{name} is not a shard file written by `wholerepo audit run`: {exc}") from None
    return info, shard


def merge_files(files: Sequence[tuple[str, str]]) -> Merged:
    """Merge shard files (name, text) of one plan."""
    if not files:
        raise UsageError("no shard files to merge")
    infos = []
    shards = []
    for name, text in files:
        info, s = read_shard_file(text, name)
        infos.append(info)
        shards.append(s)
    plans = {i.plan for i in infos}
    if len(plans) > 1:
        raise UsageError(
            f"the shard files come from {len(plans)} different plans: merge the shards of one plan"
        )
    return merge(infos[0], shards)
