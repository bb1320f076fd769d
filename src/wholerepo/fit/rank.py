"""Rank files by what the code depends on, and say why.

The order is a group, then a score within it:

1. ``changed``: with ``--base``, the files the diff touches;
2. ``neighbour``: the files a changed file imports, and those importing one;
3. ``project``: the README and the manifests at the root (pyproject.toml, package.json, go.mod...);
4. ``source``; 5. ``test``; 6. ``config``; 7. ``example``; 8. ``script``; 9. ``benchmark``;
10. ``docs``; 11. ``other`` (data, fixtures without a test directory, ...).

A file's group comes from the first directory of its path that names one (``tests/``,
``examples/``, ``scripts/``, ``bench/``, ``docs/``...), else from its name and extension, so a
``Makefile`` in ``doc/`` is documentation, not a project manifest.

The score (0 to about 1.3) is ``0.7 * centrality + 0.15 * churn + 0.15 * recency`` plus 0.2 for a
package's manifest and 0.15 for an entry point. Centrality is PageRank over graph.py's edges
(imports, and uses of names defined elsewhere), scaled logarithmically so that the most central
file is 1. Churn is how many of the last commits touched the file (log-scaled against the most
touched); recency halves every 90 days before HEAD's commit time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import NamedTuple

from .graph import Graph
from .history import Churn
from .kinds import CONFIG_EXT, DOC_EXT, ENTRY_POINTS, MANIFESTS, SOURCE_EXT

GROUPS = (
    "changed",
    "neighbour",
    "project",
    "source",
    "test",
    "config",
    "example",
    "script",
    "benchmark",
    "docs",
    "other",
)
DAMPING = 0.85
ITERATIONS = 50
TOLERANCE = 1e-6  # the L1 change of the whole vector (it sums to 1) below which it stops
HALF_LIFE_DAYS = 90.0
# Where PageRank's surfer restarts, by group: centrality is the code's view of itself, so tests,
# scripts and docs count less towards what is central.
TELEPORT = {
    "test": 0.25,
    "config": 0.1,
    "example": 0.15,
    "script": 0.15,
    "benchmark": 0.15,
    "docs": 0.05,
    "other": 0.05,
}
# Manifests that mark the root of a package below the repository's root (a Makefile, Dockerfile or
# requirements.txt in a subdirectory does not).
PACKAGE_MANIFESTS = MANIFESTS - {
    "CMakeLists.txt",
    "Makefile",
    "Dockerfile",
    "requirements.txt",
    "tsconfig.json",
    "meson.build",
}
_DIRS = (
    ("test", r"tests?|testing|spec|specs|__tests__|testdata|fixtures?|t|e2e|__snapshots__"),
    ("benchmark", r"bench|benches|benchmarks?|perf"),
    ("script", r"scripts?|tools?"),
    ("example", r"examples?|samples?|demos?"),
    ("docs", r"docs?|documentation|doc-src|changelog|changelog\.d|changes|man"),
)
_DIR_GROUPS = tuple((group, re.compile(pattern, re.IGNORECASE)) for group, pattern in _DIRS)
_TEST_NAME = re.compile(r"test_.*|.*_test\.\w+|.*[._-](test|spec)\.\w+|conftest\.py|.*Tests?\.java")


class Ranked(NamedTuple):  # a tuple: made by the hundred thousand on a large repository
    """One file's place: ``rank`` 1 is the most important."""

    path: str
    rank: int
    group: str
    score: float
    why: tuple[str, ...]


def role(path: str) -> tuple[str, str | None]:
    """(group, what makes the file special within it: "package manifest", "entry point" or None)."""
    parts = path.split("/")
    name = parts[-1]
    depth = len(parts) - 1
    if depth == 0 and (name.lower().startswith("readme") or name in MANIFESTS):
        return "project", "project manifest" if name in MANIFESTS else "project README"
    for directory in parts[:-1]:
        for group, pattern in _DIR_GROUPS:
            if pattern.fullmatch(directory):
                return group, None
    if _TEST_NAME.fullmatch(name):
        return "test", None
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if name in PACKAGE_MANIFESTS:
        return "source", "package manifest"
    if ext in SOURCE_EXT:
        return "source", "entry point" if name in ENTRY_POINTS else None
    if ext in DOC_EXT or name.upper().startswith(("CHANGELOG", "LICENSE", "AUTHORS", "CONTRIBUTING")):
        return "docs", None
    if ext in CONFIG_EXT or name.startswith(".") or name in MANIFESTS:
        return "config", None
    return "other", None


def pagerank(graph: Graph, teleport: Mapping[str, float] | None = None) -> dict[str, float]:
    """PageRank over the weighted edges. The random surfer restarts (and leaves a file that
    imports nothing) by ``teleport`` weights (evenly without them)."""
    paths = graph.paths
    n = len(paths)
    if n == 0:
        return {}
    weights = [teleport.get(p, 1.0) if teleport else 1.0 for p in paths]
    total_weight = sum(weights) or 1.0
    restart = [w / total_weight for w in weights]
    index = {p: i for i, p in enumerate(paths)}
    outgoing: list[tuple[list[int], list[float]]] = []
    for p in paths:
        edges = graph.edges.get(p)
        if not edges:
            outgoing.append(([], []))
            continue
        total = sum(edges.values())
        ordered = sorted(edges)
        outgoing.append(([index[t] for t in ordered], [edges[t] / total for t in ordered]))
    rank = list(restart)
    for _ in range(ITERATIONS):
        new = [0.0] * n
        dangling = 0.0
        for i, (targets, weights) in enumerate(outgoing):
            mass = rank[i]
            if not targets:
                dangling += mass
                continue
            mass *= DAMPING
            for j, w in zip(targets, weights, strict=True):
                new[j] += mass * w
        scale = (1.0 - DAMPING) + DAMPING * dangling
        change = 0.0
        for i in range(n):
            value = new[i] + scale * restart[i]
            change += abs(value - rank[i])
            new[i] = value
        rank = new
        if change < TOLERANCE:
            break
    return dict(zip(paths, rank, strict=True))


def rank_files(
    graph: Graph,
    churn: Churn,
    focus: Collection[str] = (),
    base_ref: str | None = None,
) -> list[Ranked]:
    """Every file of ``graph`` in order, with its score and reasons."""
    roles = {p: role(p) for p in graph.paths}
    scores = pagerank(graph, {p: TELEPORT.get(group, 1.0) for p, (group, _) in roles.items()})
    n = len(graph.paths)
    mean = 1.0 / n if n else 1.0
    top = max(scores.values(), default=mean)
    scale = math.log1p(top / mean - 1.0) if top > mean else 1.0
    most_touched = max(churn.touched.values(), default=0)
    changed = set(focus) & set(graph.paths)
    near: dict[str, list[str]] = {}
    for p in sorted(changed):
        for other in sorted(graph.imports.get(p, ())):
            if other not in changed:
                near.setdefault(other, []).append(f"imported by {p} (changed)")
        for other in sorted(graph.importers.get(p, ())):
            if other not in changed:
                near.setdefault(other, []).append(f"imports {p} (changed)")
    entries: list[tuple[int, float, str, tuple[str, ...]]] = []
    for path in graph.paths:
        group, special = roles[path]
        why: list[str] = []
        if path in changed:
            why.append(f"changed since {base_ref}" if base_ref else "changed")
            group_index = 0
        elif path in near:
            why.extend(near[path][:3] + ([f"and {len(near[path]) - 3} more"] if len(near[path]) > 3 else []))
            group_index = 1
        else:
            group_index = GROUPS.index(group)
        why.append(group if special is None else f"{group}: {special}")
        pr = scores.get(path, mean)
        centrality = max(0.0, math.log1p(max(pr / mean - 1.0, 0.0)) / scale) if scale > 0 else 0.0
        importers = len(graph.importers.get(path, ()))
        if importers:
            why.append(f"imported by {importers} file{'s' if importers != 1 else ''}")
        users = graph.referrers.get(path, 0)
        if users:
            why.append(f"names used in {users} file{'s' if users != 1 else ''}")
        if centrality >= 0.005:
            why.append(f"centrality {centrality:.2f}")
        touched = churn.touched.get(path, 0)
        churn_part = recency = 0.0
        if touched and most_touched:
            churn_part = math.log1p(touched) / math.log1p(most_touched)
            age_days = max(0.0, (churn.head_time - churn.last.get(path, churn.head_time)) / 86400.0)
            recency = 0.5 ** (age_days / HALF_LIFE_DAYS)
            why.append(
                f"changed in {touched} of the last {churn.commits} commits,"
                f" last {age_days:.0f} days before HEAD"
            )
        bonus = {"package manifest": 0.2, "entry point": 0.15}.get(special or "", 0.0)
        score = round(0.7 * centrality + 0.15 * churn_part + 0.15 * recency + bonus, 4)
        entries.append((group_index, score, path, tuple(why)))
    entries.sort(key=lambda e: (e[0], -e[1], e[2]))
    return [Ranked(path, i, GROUPS[g], score, why) for i, (g, score, path, why) in enumerate(entries, 1)]
