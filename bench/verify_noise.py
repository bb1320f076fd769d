"""Measure the verifier on noisy findings over Click, per slip, and time it on 10,000 findings.

    python bench/verify_noise.py                 # the per-slip table for seed 16 (Markdown)
    python bench/verify_noise.py --seeds 16 1 2  # the overall figures over several seeds
    python bench/verify_noise.py --timing        # 10,000 findings: verify + merge, best of 3
    python bench/verify_noise.py --cli           # seed 16 through the real CLI in 50 review runs

The findings come from tests/noisy_findings.py (the generator the test suite uses) over the five
Click files in tests/data/click. To measure another wholerepo (an older commit, say), put its
``src`` first on PYTHONPATH: the script only calls ``wholerepo.reviewer.findings.verify``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import noisy_findings as nf
from wholerepo.reviewer.findings import verify


def table(seed: int) -> str:
    files = nf.click_files()
    cases = nf.generate(seed, files)
    return summary(nf.score(cases, nf.placements(verify([c.item for c in cases], files))))


def summary(score: nf.Score) -> str:
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
    text = (
        f"{len(items):,} findings on {len(files)} files ({lines:,} lines): verify + merge best"
        f" {min(spent):.2f} s, median {statistics.median(spent):.2f} s;"
        f" {len(result.verified):,} verified. All with one title: {same_title:.2f} s."
    )
    try:
        from wholerepo.reviewer.verify import merge_duplicates
    except ImportError:  # an older wholerepo
        return text
    verified = (list(result.verified) * (n // max(1, len(result.verified)) + 1))[:n]
    start = time.perf_counter()
    merge_duplicates(verified)
    return text + f" Merging {len(verified):,} verified findings alone: {time.perf_counter() - start:.2f} s."


def through_the_cli(seed: int = 16, runs: int = 50) -> str:
    """The whole set through the real CLI, a share per review run, against a loopback endpoint;
    each run's Markdown, SARIF and JSON must agree with each other and with the library."""
    import json
    import os
    import subprocess
    import tempfile

    from click.testing import CliRunner

    from fake_openai import Chat, FakeOpenAI
    from wholerepo.cli import main as cli

    files = nf.click_files()
    cases = nf.generate(seed, files)
    items = [c.item for c in cases]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        repo = root / "click"
        for path, text in files.items():
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(text, encoding="utf-8")
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": scratch}
        for args in (
            ["init", "-q"],
            ["add", "-A"],
            ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "c"],
        ):
            subprocess.run(["git", *args], cwd=repo, check=True, env=env)
        rows: tuple[set[nf.Row], set[int], set[int]] = (set(), set(), set())
        agreeing = 0
        with FakeOpenAI() as fake:
            for n in range(runs):
                share = items[n::runs]
                out = root / f"out{n}"
                fake.script(Chat(json.dumps({"summary": "Noisy findings.", "findings": share})))
                result = CliRunner().invoke(
                    cli,
                    ["review", str(repo), "--base-url", fake.url, "--output-dir", str(out)],
                    env={"DEEPSEEK_API_KEY": "sk-bench", "WHOLEREPO_CACHE_DIR": str(root / "cache")},
                    catch_exceptions=False,
                )
                assert result.exit_code == 0, result.output
                from_json = nf.rows_from_json(json.loads((out / "review.json").read_text(encoding="utf-8")))
                sarif = nf.rows_from_sarif(json.loads((out / "review.sarif").read_text(encoding="utf-8")))
                markdown = nf.rows_from_markdown((out / "review.md").read_text(encoding="utf-8"))
                library = nf.rows_from_verification(verify(share, files))
                agreeing += sarif == from_json[0] and markdown == from_json == library
                for whole, part in zip(rows, from_json, strict=True):
                    whole |= part
    score = nf.score(cases, nf.placements_from_rows(rows))
    return f"{agreeing} of {runs} runs: Markdown, SARIF, JSON and the library agree\n\n" + summary(score)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="*", default=None)
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--cli", action="store_true")
    args = parser.parse_args()
    if args.cli:
        print(through_the_cli())
    elif args.timing:
        print(timing())
    elif args.seeds:
        print(overall(args.seeds))
    else:
        print(table(16))


if __name__ == "__main__":
    main()
