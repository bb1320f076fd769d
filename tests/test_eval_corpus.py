"""The corpus format (strict loading, refusing URLs), scoring arithmetic, ``plan_diff``, and the
shipped corpus (tests/data/eval/itsdangerous): its cases check out, each planted commit breaks
itsdangerous's own tests, and a perfect reviewer on the loopback endpoint scores as it should in
every mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import MakeRepo, git
from fake_openai import Chat, FakeOpenAI, usage
from wholerepo.cli import main
from wholerepo.errors import ConfigError, UsageError
from wholerepo.eval.corpus import Case, Expected, dump_toml, load_corpus, source_of, workspace
from wholerepo.eval.score import Found, Review, f1, matches, summarize
from wholerepo.packer import settings_for
from wholerepo.reviewer import Window, plan_diff

SHIPPED = Path(__file__).parent / "data" / "eval" / "itsdangerous"


# -- the format ---------------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "corpus.toml") -> Path:
    file = tmp_path / name
    file.write_text(text, encoding="utf-8")
    return file


@pytest.mark.parametrize(
    ("repo", "message"),
    [
        ("https://github.com/pallets/click.git", "local path"),
        ("git@github.com:pallets/click.git", "local path"),
        ("ext::sh -c touch% /tmp/pwned", "local path"),
        ("file:///tmp/repo", "local path"),
        ("--upload-pack=evil", "local path"),
    ],
)
def test_urls_and_options_are_refused(tmp_path: Path, repo: str, message: str) -> None:
    file = write(tmp_path, f'[[cases]]\nrepo = {json.dumps(repo)}\nbase = "a"\nhead = "b"\n')
    with pytest.raises(ConfigError, match=message):
        load_corpus(file)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ('repo = "r"\nbase = "a"\n', "'head' must be a non-empty string"),
        ('repo = "r"\nbase = "-x"\nhead = "b"\n', "not a git revision"),
        ('repo = "r"\nbase = "a"\nhead = "b"\nstart = 1\n', "unknown key 'start'"),
        (
            'repo = "r"\nbase = "a"\nhead = "b"\n[[cases.expected]]\npath = "../x.py"\nstart_line = 1\n'
            'description = "d"\n',
            "relative to the repository root",
        ),
        (
            'repo = "r"\nbase = "a"\nhead = "b"\n[[cases.expected]]\npath = "x.py"\nstart_line = 5\n'
            'end_line = 2\ndescription = "d"\n',
            "before 'start_line'",
        ),
        (
            'repo = "r"\nbase = "a"\nhead = "b"\n[[cases.expected]]\npath = "x.py"\nstart_line = 1\n'
            'severity = "huge"\ndescription = "d"\n',
            "'severity' must be one of",
        ),
    ],
)
def test_mistakes_are_one_line_errors(tmp_path: Path, case: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_corpus(write(tmp_path, "[[cases]]\n" + case))


def test_toml_and_json_read_the_same_and_round_trip(tmp_path: Path) -> None:
    data = {
        "name": "mine",
        "cases": [
            {
                "id": "one",
                "repo": "repo",
                "base": "main",
                "head": "feature",
                "kind": "off-by-one",
                "cross_file": False,
                "expected": [
                    {
                        "path": "a.py",
                        "start_line": 3,
                        "end_line": 4,
                        "category": "bug",
                        "description": 'a "q"\n',
                    }
                ],
            },
            {"id": "two", "repo": "repo", "base": "main", "head": "clean", "expected": []},
        ],
    }
    from_json = load_corpus(write(tmp_path, json.dumps(data), "corpus.json"))
    from_toml = load_corpus(write(tmp_path, dump_toml(data), "corpus.toml"))
    assert from_json.cases == from_toml.cases
    assert from_toml.cases[0].expected == (Expected("a.py", 3, 4, 'a "q"\n', "bug"),)
    assert from_toml.cases[1].clean and not from_toml.cases[0].clean
    with pytest.raises(UsageError, match="both"):
        load_corpus(tmp_path)  # a directory with corpus.json and corpus.toml: which one is meant?


def test_a_bundle_must_lie_in_the_corpus_directory(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.bundle"
    outside.write_bytes(b"")
    (tmp_path / "corpus").mkdir()
    file = write(tmp_path / "corpus", '[[cases]]\nrepo = "../elsewhere.bundle"\nbase = "a"\nhead = "b"\n')
    corpus = load_corpus(file)
    with pytest.raises(ConfigError, match="outside the corpus directory"):
        source_of(corpus, corpus.cases[0])


# -- scoring ------------------------------------------------------------------------------------


def found(path: str, start: int, end: int | None = None) -> Found:
    return Found(path, start, end or start, "high", "bug", "t")


def test_matching_tolerance() -> None:
    issue = Expected("a.py", 10, 12, "d")
    assert matches(found("a.py", 15), issue, 3) and not matches(found("a.py", 16), issue, 3)
    assert matches(found("a.py", 5, 7), issue, 3) and not matches(found("a.py", 5, 6), issue, 3)
    assert matches(found("a.py", 11), issue, 0) and not matches(found("b.py", 11), issue, 3)


def test_scores_micro_average_over_cases() -> None:
    cases = [
        Case(
            "a", "r", "b", "h", (Expected("a.py", 1, 1, "x"), Expected("a.py", 50, 50, "y")), cross_file=False
        ),
        Case("b", "r", "b", "h", (Expected("b.py", 9, 9, "z"),), cross_file=True),
        Case("c", "r", "b", "h", ()),
    ]
    reviews = [
        Review("a", "repo", 1, findings=(found("a.py", 2), found("a.py", 30)), unverified=2),
        Review("b", "repo", 1, findings=(found("b.py", 9),)),
        Review("c", "repo", 1, findings=(found("c.py", 1), found("c.py", 9))),
    ]
    summaries, scores = summarize(cases, reviews)
    figures = summaries["repo"].repeats[0]
    assert (figures["expected"], figures["found"], figures["findings"], figures["hits"]) == (3, 2, 5, 2)
    assert figures["recall"] == pytest.approx(2 / 3) and figures["precision"] == pytest.approx(2 / 5)
    assert figures["f1"] == pytest.approx(f1(2 / 5, 2 / 3))
    assert figures["false_alarms_per_clean_case"] == 2.0
    assert figures["recall_cross_file"] == 1.0 and figures["recall_local"] == 0.5
    assert figures["verified_share"] == pytest.approx(5 / 7)
    assert [s.false for s in scores] == [1, 0, 2]


def test_failed_reviews_are_not_scored() -> None:
    cases = [Case("a", "r", "b", "h", (Expected("a.py", 1, 1, "x"),))]
    summaries, scores = summarize(cases, [Review("a", "diff", 1, error="HTTP 500")])
    assert scores == [] and summaries["diff"].repeats[0]["failed"] == 1
    assert summaries["diff"].repeats[0]["recall"] is None


# -- plan_diff ----------------------------------------------------------------------------------


def test_plan_diff_sends_the_change_and_verifies_against_the_changed_files(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "a b[1].py": "def f(x):\n    return x + 1\n",
            "keep.py": "KEEP = 'unchanged text 5d1e'\n",
            "gone.py": "OLD = 1\n",
        }
    )
    git(repo, "checkout", "-q", "-b", "change")
    (repo / "a b[1].py").write_text("def f(x):\n    return x + 2\n")
    (repo / "gone.py").unlink()
    git(repo, "commit", "-qam", "change")
    p = plan_diff(repo, settings_for(repo), Window(100_000, "--context-window"), base="main")
    assert p.files == {"a b[1].py": "def f(x):\n    return x + 2\n"}
    assert "unchanged text 5d1e" not in p.user and "keep.py" not in p.user
    assert "+    return x + 2" in p.user and "-OLD = 1" in p.user
    assert p.diff is not None and p.diff.changed == {"a b[1].py": frozenset({2})}
    with pytest.raises(UsageError, match="empty"):
        plan_diff(repo, settings_for(repo), Window(100_000, "--context-window"), base="HEAD")


# -- the shipped corpus -------------------------------------------------------------------------


def test_the_shipped_corpus_checks_out() -> None:
    corpus = load_corpus(SHIPPED)
    assert len(corpus.cases) == 12
    bugs = [c for c in corpus.cases if not c.clean]
    assert len(bugs) == 9 and sum(1 for c in bugs if c.cross_file) == 5
    with workspace() as space:
        for case in corpus.cases:
            checkout = space.checkout(corpus, case)
            for issue in case.expected:
                lines = (checkout.path / issue.path).read_text(encoding="utf-8").splitlines()
                assert "".join(lines[issue.start_line - 1 : issue.end_line]).strip()
            changed = git(checkout.path, "diff", "--name-only", checkout.base, "HEAD").split()
            if case.kind == "callee-change":
                assert all(issue.path not in changed for issue in case.expected)
            space.release(checkout)
            assert not checkout.path.exists()


def test_every_shipped_plant_breaks_the_projects_tests(tmp_path: Path) -> None:
    pytest.importorskip("freezegun")  # itsdangerous's tests use it
    corpus = load_corpus(SHIPPED)
    with workspace() as space:
        for case in [None, *corpus.cases]:
            checkout = space.checkout(corpus, case or corpus.cases[0])
            if case is None:
                git(checkout.path, "checkout", "-q", "--detach", checkout.base)
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"],
                cwd=checkout.path,
                capture_output=True,
                text=True,
                check=False,
                env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(checkout.path / "src"),
                     "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
            )  # fmt: skip
            passes = proc.returncode == 0
            assert passes is (case is None or case.clean), (
                f"{case.id if case else 'base'}: {proc.stdout[-500:]}"
            )
            space.release(checkout)


def test_the_shipped_corpus_is_what_plant_makes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planting the shipped snapshot again with the documented command gives the same corpus."""
    pytest.importorskip("freezegun")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # the same outcomes, seconds faster
    source = tmp_path / "itsdangerous"
    subprocess.run(
        ["git", "clone", "-q", str(SHIPPED / "repo.bundle"), str(source)], check=True, capture_output=True
    )
    git(source, "checkout", "-q", "base")
    result = CliRunner().invoke(
        main, ["eval", "plant", str(source), "-o", str(tmp_path / "again"), "--count", "12", "--seed", "4"]
    )
    assert result.exit_code == 0, result.stderr

    def body(file: Path) -> list[str]:
        return [line for line in file.read_text().splitlines() if not line.startswith("source = ")]

    assert body(tmp_path / "again" / "corpus.toml") == body(SHIPPED / "corpus.toml")


def perfect_replies(corpus_dir: Path, modes: int) -> list[Chat]:
    """A reviewer that reports exactly each planted issue, quoting the head's code."""
    corpus = load_corpus(corpus_dir)
    replies = []
    with workspace() as space:
        for case in corpus.cases:
            checkout = space.checkout(corpus, case)
            items: list[dict[str, Any]] = []
            for issue in case.expected:
                lines = (checkout.path / issue.path).read_text(encoding="utf-8").splitlines()
                items.append(
                    {
                        "path": issue.path,
                        "start_line": issue.start_line,
                        "end_line": issue.end_line,
                        "severity": issue.severity or "high",
                        "category": issue.category or "bug",
                        "title": f"{issue.description[:60]} (line {issue.start_line})",
                        "body": issue.description,
                        "quote": "\n".join(lines[issue.start_line - 1 : issue.end_line]),
                    }
                )
            space.release(checkout)
            text = json.dumps({"summary": "Reviewed.", "findings": items})
            replies += [Chat(text, usage=usage(20_000, 200)) for _ in range(modes)]
    return replies


def test_the_shipped_corpus_in_all_three_modes_against_a_perfect_reviewer(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    with FakeOpenAI() as server:
        # diff and repo per case: fit's request is repo's (the repository fits whole), not sent again.
        server.script(*perfect_replies(SHIPPED, 2))
        result = CliRunner().invoke(
            main,
            ["eval", str(SHIPPED), "--base-url", server.url, "--jobs", "1", "-o", str(out), "--chart",
             str(tmp_path / "eval.png")] if _has_matplotlib() else
            ["eval", str(SHIPPED), "--base-url", server.url, "--jobs", "1", "-o", str(out)],
            catch_exceptions=False,
        )  # fmt: skip
        sent = [r.json["messages"][-1]["content"] for r in server.chats]
    assert result.exit_code == 0, result.stderr
    data = json.loads(out.read_text())
    repo, diff = data["summary"]["repo"], data["summary"]["diff"]
    assert repo["recall"] == 1.0 and repo["precision"] == 1.0 and data["summary"]["fit"]["recall"] == 1.0
    assert repo["false_alarms_per_clean_case"] == 0.0
    # Diff-only review cannot place a finding in a file it never saw: the broken callers.
    assert diff["recall_cross_file"] == pytest.approx(1 / 5) and diff["recall_local"] == 1.0
    assert diff["precision"] == 1.0 and diff["verified_share"] == pytest.approx(5 / 9)
    assert sum(len(t) for t in sent[0::2]) * 5 < sum(len(t) for t in sent[1::2])  # diff << repo
    assert len(sent) == 2 * len(data["cases"])
    assert {r["reply_of"] for c in data["cases"] for r in c["reviews"] if r["mode"] == "fit"} == {"repo"}
    if _has_matplotlib():
        assert (tmp_path / "eval.png").read_bytes().startswith(b"\x89PNG")


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None
