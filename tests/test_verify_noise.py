"""The verifier measured on noisy findings over real code (five files of Click, tests/data/click).

tests/noisy_findings.py draws ~2,400 findings the way the issue measured them: true findings,
most clean and some with one slip a model makes, plus fabricated and generic made-up ones. Here
the outcome is scored per slip and held to the goal: at least 95 % of true findings kept at the
right lines, at most 1 % presented as verified at a wrong place, every fabricated one rejected,
no generic made-up one verified. A sample is then sent through the real CLI (a loopback
OpenAI-compatible server), and Markdown, SARIF and JSON must agree with each other and with the
library on which findings are verified, where, and how.

The per-slip table, before and after, is in docs/verifier.md (bench/verify_noise.py prints it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import noisy_findings as nf
from conftest import MakeRepo
from fake_openai import Chat, FakeOpenAI
from wholerepo.cli import main
from wholerepo.reviewer.findings import LOCATIONS, Verification, verify

GOAL_RIGHT = 0.95
GOAL_WRONG = 0.01

# Per slip: the least share kept at the right lines, the most presented at a wrong place. Set a
# little under what the seeds 1-11 and 16 measure (docs/verifier.md), so a regression shows.
FLOORS: dict[str, tuple[float, float]] = {
    "clean": (1.0, 0.0),
    "handled": (1.0, 0.0),
    "path-no-first-folder": (1.0, 0.0),
    "path-case": (1.0, 0.0),
    "path-rooted": (1.0, 0.0),
    "fenced": (1.0, 0.0),
    "paraphrase": (0.7, 0.02),
    "truncated": (0.95, 0.0),
    "unicode-quotes": (1.0, 0.0),
    "comma-spaces": (1.0, 0.0),
    "null-swapped": (0.9, 0.0),
    "null-shifted": (0.0, 0.15),  # no quote and wrong lines: unanchored, a few slip through
    "repeated": (0.25, 0.15),  # copies of the code: unanchored unless a hint picks one
    "end-past-eof": (1.0, 0.0),
    "off-by-one": (0.99, 0.01),
    "duplicate-title": (1.0, 0.0),
    "duplicate-quote": (1.0, 0.0),
}
SEEDS = (16, 1, 2)


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return nf.click_files()


def measure(seed: int, files: dict[str, str]) -> tuple[list[nf.Case], Verification, nf.Score]:
    cases = nf.generate(seed, files)
    verification = verify([c.item for c in cases], files)
    return cases, verification, nf.score(cases, nf.placements(verification))


@pytest.fixture(scope="module")
def measured(files: dict[str, str]) -> Iterator[dict[int, tuple[list[nf.Case], Verification, nf.Score]]]:
    yield {seed: measure(seed, files) for seed in SEEDS}


def test_the_generator_is_deterministic_and_as_the_issue_counts(files: dict[str, str]) -> None:
    first, second = nf.generate(16, files), nf.generate(16, files)
    assert first == second
    assert nf.generate(17, files) != first
    counts: dict[str, int] = {}
    for case in first:
        counts[case.slip] = counts.get(case.slip, 0) + 1
    assert counts["null-shifted"] == 60 and counts["off-by-one"] == 120 and counts["fab-middle"] == 14
    assert sum(1 for c in first if c.kind == "true") == 2382
    assert sum(1 for c in first if c.kind == "fabricated") == 42
    # Every true finding's truth is real code, and the slips really are slips.
    for case in first:
        if case.kind == "true":
            assert case.path in files and 1 <= case.start <= case.end <= files[case.path].count("\n")
    fenced = [c.item["quote"] for c in first if c.slip == "fenced"]
    assert all(q.startswith("```") and q.endswith("```") for q in fenced)
    rooted = [c.item["path"] for c in first if c.slip == "path-rooted"]
    assert all(p.startswith("/src/click/") for p in rooted)
    fabricated = [c.item["quote"] for c in first if c.slip in ("fab-absent", "fab-other-file")]
    assert all(re.sub(r"\s+", " ", q).strip() not in re.sub(r"\s+", " ", files[c.item["path"]])
               for q, c in zip(fabricated, [c for c in first if c.slip in ("fab-absent", "fab-other-file")],
                               strict=True))  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_the_goal(seed: int, measured: dict[int, tuple[list[nf.Case], Verification, nf.Score]]) -> None:
    _, _, score = measured[seed]
    assert score.rate("true", "right") >= GOAL_RIGHT, nf.markdown_table(score)
    assert score.rate("true", "wrong") <= GOAL_WRONG, nf.markdown_table(score)
    assert score.rate("fabricated", "rejected") == 1.0, nf.markdown_table(score)
    assert score.kinds["generic"]["wrong"] == 0, nf.markdown_table(score)  # none verified anywhere
    assert score.kinds["true"]["missing"] == 0


@pytest.mark.parametrize("slip", sorted(FLOORS))
def test_each_slip_holds_its_floor(
    slip: str, measured: dict[int, tuple[list[nf.Case], Verification, nf.Score]]
) -> None:
    least_right, most_wrong = FLOORS[slip]
    for seed in SEEDS:
        score = measured[seed][2]
        assert score.slip_rate(slip, "right") >= least_right, (seed, dict(score.table[slip]))
        assert score.slip_rate(slip, "wrong") <= most_wrong, (seed, dict(score.table[slip]))


def test_every_verified_finding_says_how_it_was_placed(
    measured: dict[int, tuple[list[nf.Case], Verification, nf.Score]],
) -> None:
    cases, verification, _ = measured[16]
    slips = {c.tag: c.slip for c in cases}
    by_location: dict[str, set[str]] = {}
    for f in verification.verified:
        assert f.location in LOCATIONS
        tag = nf.tag_of(f.title)
        assert tag is not None
        by_location.setdefault(f.location, set()).add(slips[tag])
    assert "fenced" in by_location["quote-normalised"] and "unicode-quotes" in by_location["quote-normalised"]
    assert "paraphrase" in by_location["quote-near"]
    assert by_location["cited-lines"] == {"null-swapped", "null-shifted"}
    assert "clean" not in by_location["quote-near"] | by_location["cited-lines"]
    # Duplicates are merged into one finding that keeps every title, and counted.
    assert verification.merged >= 4
    kept = [nf.tags_in((f.title, *f.merged_titles)) for f in verification.verified]
    pairs = sorted(c.tag for c in cases if c.slip == "duplicate-quote")  # (t, t + 1) each
    assert pairs and all(b == a + 1 for a, b in zip(pairs[::2], pairs[1::2], strict=True))
    for tag in pairs[::2]:
        assert any({tag, tag + 1} <= tags for tags in kept)


# --------------------------------------------------------------------------- through the CLI

KEY = "sk-noise-7a1c"


def test_markdown_sarif_and_json_agree_through_the_cli(
    make_repo: MakeRepo, tmp_path: Path, files: dict[str, str]
) -> None:
    cases = nf.sample(nf.generate(16, files))
    items = [c.item for c in cases]
    repo = make_repo({**files, "LICENSE.txt": (nf.DATA / "LICENSE.txt").read_text(encoding="utf-8")})
    out = tmp_path / "out"
    with FakeOpenAI() as fake:
        fake.script(Chat(json.dumps({"summary": "Noisy findings.", "findings": items})))
        result = CliRunner().invoke(
            main,
            ["review", str(repo), "--base-url", fake.url, "--output-dir", str(out)],
            env={"DEEPSEEK_API_KEY": KEY},
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "review.json").read_text(encoding="utf-8"))
    doc = json.loads((out / "review.sarif").read_text(encoding="utf-8"))
    md = (out / "review.md").read_text(encoding="utf-8")

    verified, unanchored, unverified = nf.rows_from_json(data)
    assert nf.rows_from_sarif(doc) == verified
    assert nf.rows_from_markdown(md) == (verified, unanchored, unverified)
    # The CLI verified exactly as the library does on the same packed files.
    library = verify(items, files)
    assert (verified, unanchored, unverified) == nf.rows_from_verification(library)
    assert len(verified) > 40 and len(unanchored) > 5 and len(unverified) > 5
    assert not ({r[0] for r in verified} & unanchored) and not (unanchored & unverified)
    # Counts agree too, and every finding of the reply is accounted for exactly once.
    merged = sum(len(f["merged_titles"]) for f in data["verified"])  # same-title duplicates too
    assert data["merged"] == merged == doc["runs"][0]["properties"]["merged_findings"]
    assert doc["runs"][0]["properties"]["unanchored_findings"] == len(data["unanchored"])
    assert len(data["verified"]) + merged + len(data["unanchored"]) + len(data["unverified"]) == len(items)
    assert f"{len(data['verified'])} verified, {len(data['unanchored'])} unanchored" in md
    summary = (
        f"{len(data['unanchored'])} unanchored, {len(data['unverified'])} unverified, {merged} duplicates"
    )
    assert summary in result.stderr
    # And the sample scores as the whole measurement does: no fabricated finding got through.
    score = nf.score(cases, nf.placements_from_rows((verified, unanchored, unverified)))
    assert score.table == nf.score(cases, nf.placements(library)).table
    assert score.kinds["fabricated"]["rejected"] == sum(score.kinds["fabricated"].values()) > 0
    assert score.kinds["true"]["right"] >= 0.75 * sum(score.kinds["true"].values())
    assert KEY not in md + json.dumps(data) + json.dumps(doc)


def with_crlf(files: dict[str, str]) -> dict[str, str]:
    """Every third file (in path order) with CRLF line ends, as a Windows checkout packs it."""
    return {p: t.replace("\n", "\r\n") if i % 3 == 0 else t for i, (p, t) in enumerate(sorted(files.items()))}


@pytest.mark.parametrize("seed", [16, 1])
def test_slips_the_issue_did_not_count(files: dict[str, str], seed: int) -> None:
    # Tabs, dropped comments, joined lines, CRLF files, other tools' line numbers, paths with
    # anchors, quotes, URL escapes or the repository's folder, odd line values, lines 0 or past
    # the end: all kept at the right lines. A very common line (`return None`) never confirms a
    # place by itself: unanchored, never wrong. Every altered or unpacked fabrication is rejected.
    packed = with_crlf(files)
    cases = nf.generate_extra(seed, packed, repo="click")
    score = nf.score(cases, nf.placements(verify([c.item for c in cases], packed)))
    for slip in nf.EXTRA_SLIPS:
        counts = score.table[slip]
        assert counts["wrong"] == 0, (slip, counts)
        if slip != "common-quote":
            assert counts["right"] == sum(counts.values()), (slip, counts)
    assert score.kinds["fabricated"]["rejected"] == sum(nf.EXTRA_FABRICATED.values()), score.table
