"""Measure the verifier on noisy findings over Click, per slip, and time it on 10,000 findings.

    python bench/verify_noise.py                 # the per-slip table for seed 16 (Markdown)
    python bench/verify_noise.py --seeds 16 1 2  # the overall figures over several seeds
    python bench/verify_noise.py --timing        # 10,000 findings: verify + merge, best of 3

The findings come from tests/noisy_findings.py (the generator the test suite uses) over the five
Click files in tests/data/click. To measure another wholerepo (an older commit, say), put its
``src`` first on PYTHONPATH: the script only calls ``wholerepo.findings.verify``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import noisy_findings as nf  # noqa: E402

from wholerepo.findings import verify  # noqa: E402


def table(seed: int) -> str:
    files = nf.click_files()
    cases = nf.generate(seed, files)
    score = nf.score(cases, nf.placements(verify([c.item for c in cases], files)))
    lines = [nf.markdown_table(score), ""]
    for kind in ("true", "fabricated", "generic"):
        counts = score.kinds[kind]
        n = sum(counts.values())
        lines.append(
            f"{kind}: {n} findings, right lines {score.rate(kind, 'right'):.2%}, wrong place"
            f" {score.rate(kind, 'wrong'):.2%}, rejected {score.rate(kind, 'rejected'):.2%}, unanchored"
            f" {(counts['unanchored'] + counts['missing']) / max(1, n):.2%}"
        )
    return "\n".join(lines)


def overall(seeds: list[int]) -> str:
    files = nf.click_files()
    rows = []
    for seed in seeds:
        cases = nf.generate(seed, files)
        score = nf.score(cases, nf.placements(verify([c.item for c in cases], files)))
        rows.append(
            f"seed {seed}: right {score.rate('true', 'right'):.2%}, wrong {score.rate('true', 'wrong'):.2%},"
            f" fabricated rejected {score.rate('fabricated', 'rejected'):.0%},"
            f" generic verified {score.kinds['generic']['wrong']}"
        )
    return "\n".join(rows)


def timing(n: int = 10_000, rounds: int = 3) -> str:
    files = nf.click_files()
    cases = nf.generate(7, files, scale=n / 2434)[:n]
    items = [c.item for c in cases]
    lines = sum(text.count("\n") for text in files.values())
    spent = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = verify(items, files)
        spent.append(time.perf_counter() - start)
    # The worst case for merging: every finding with the same title, path and category.
    same = [dict(item, title="one title for all", category="bug") for item in items]
    start = time.perf_counter()
    verify(same, files)
    same_title = time.perf_counter() - start
    return (
        f"{len(items):,} findings on {len(files)} files ({lines:,} lines): verify + merge best"
        f" {min(spent):.2f} s, median {statistics.median(spent):.2f} s;"
        f" {len(result.verified):,} verified. All with one title: {same_title:.2f} s."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=None)
    parser.add_argument("--timing", action="store_true")
    args = parser.parse_args()
    if args.timing:
        print(timing())
    elif args.seeds:
        print(overall(args.seeds))
    else:
        print(table(16))


if __name__ == "__main__":
    main()
