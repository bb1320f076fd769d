"""`wholerepo eval CORPUS` end to end against the real loopback endpoint, on a corpus built with git.

The corpus has three cases on one small repository: a local bug (an off-by-one in the changed
file), a cross-file bug (a callee whose parameters were swapped; the broken caller is in a file
the change does not touch) and a clean rename. The endpoint is scripted case by case; with one
job at a time the requests arrive in the corpus's order (case, then mode, then repeat).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conftest import MakeRepo, git
from fake_openai import Chat, FakeOpenAI, Status, usage
from wholerepo.cli import main

MARKER = "UNCHANGED-FILE-MARKER-41c7"
BASE = {
    "app/calc.py": (
        "def total(prices):\n"
        "    result = 0\n"
        "    for i in range(len(prices)):\n"
        "        result += prices[i]\n"
        "    return result\n"
        "\n"
        "\n"
        "def scale(value, factor):\n"
        "    return value * factor\n"
    ),
    "app/money.py": ("def convert(amount, rate):\n    return round(amount * rate, 2)\n"),
    "app/report.py": (
        f'"""{MARKER}: this file never changes."""\n'
        "from app.money import convert\n"
        "\n"
        "\n"
        "def euros(dollars):\n"
        "    rate = 0.9\n"
        "    return convert(dollars, rate)\n"
    ),
    "README.md": "# shop\n",
}
CASES: dict[str, dict[str, str]] = {
    # the loop stops one element early
    "local": {"app/calc.py": BASE["app/calc.py"].replace("range(len(prices))", "range(len(prices) - 1)")},
    # convert() now takes the rate first; report.py (unchanged) still passes the amount first
    "cross": {"app/money.py": "def convert(rate, amount):\n    return round(amount * rate, 2)\n"},
    # a rename, nothing else
    "clean": {"app/calc.py": BASE["app/calc.py"].replace("result", "running")},
}
EXPECTED: dict[str, list[dict[str, Any]]] = {
    "local": [{"path": "app/calc.py", "start_line": 3, "end_line": 3, "description": "skips the last price"}],
    "cross": [
        {
            "path": "app/report.py",
            "start_line": 7,
            "end_line": 7,
            "category": "bug",
            "severity": "high",
            "description": "convert() now takes (rate, amount); this caller passes (amount, rate)",
        }
    ],
    "clean": [],
}
# What a perfect reviewer answers for each case: the planted bug, quoted from the head.
PERFECT = {
    "local": {
        "path": "app/calc.py",
        "start_line": 3,
        "end_line": 3,
        "quote": "for i in range(len(prices) - 1):",
    },
    "cross": {
        "path": "app/report.py",
        "start_line": 7,
        "end_line": 7,
        "quote": "return convert(dollars, rate)",
    },
}
# A finding that is real code but no expected issue: a false alarm wherever it is made.
WRONG = {"path": "app/calc.py", "start_line": 9, "end_line": 9, "quote": "return value * factor"}


def finding(place: dict[str, Any], title: str = "A defect") -> dict[str, Any]:
    return {"severity": "high", "category": "bug", "title": title, "body": "See the quoted code.", **place}


def reply(*items: dict[str, Any]) -> Chat:
    return Chat(json.dumps({"summary": "Reviewed.", "findings": list(items)}), usage=usage(1000, 40))


@pytest.fixture
def corpus(make_repo: MakeRepo, tmp_path: Path) -> Path:
    repo = make_repo(BASE, name="shop")
    base = git(repo, "rev-parse", "HEAD").strip()
    cases = []
    for name, files in CASES.items():
        git(repo, "checkout", "-q", "-b", name, base)
        for path, text in files.items():
            (repo / path).write_text(text)
        git(repo, "commit", "-qam", name)
        cases.append({"id": name, "repo": "../shop", "base": base, "head": name, "expected": EXPECTED[name]})
    git(repo, "checkout", "-q", "main")
    directory = tmp_path / "corpus"
    directory.mkdir()
    (directory / "corpus.json").write_text(json.dumps({"name": "shop", "cases": cases}))
    return directory


def run_eval(server: FakeOpenAI, corpus: Path, *extra: str) -> Result:
    args = ["eval", str(corpus), "--base-url", server.url, "--jobs", "1", *extra]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_exact_answers_score_recall_and_precision_one(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    with FakeOpenAI() as server:
        server.script(reply(finding(PERFECT["local"])), reply(finding(PERFECT["cross"])), reply())
        result = run_eval(server, corpus, "--context", "repo", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    summary = report(out)["summary"]["repo"]
    assert summary["recall"] == 1.0 and summary["precision"] == 1.0 and summary["f1"] == 1.0
    assert summary["false_alarms_per_clean_case"] == 0.0
    assert summary["recall_cross_file"] is None  # the corpus does not say which cases are cross-file
    assert summary["verified_share"] == 1.0
    assert summary["totals"]["prompt_tokens"] > 0 and summary["totals"]["completion_tokens"] == 120


def test_no_answer_scores_recall_zero(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    with FakeOpenAI() as server:
        server.script(reply(), reply(), reply())
        result = run_eval(server, corpus, "--context", "repo", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    summary = report(out)["summary"]["repo"]
    assert summary["recall"] == 0.0 and summary["f1"] == 0.0
    assert summary["precision"] is None  # nothing was claimed
    assert summary["totals"]["findings"] == 0


def test_a_wrong_finding_per_case_lowers_precision_by_the_expected_amount(
    corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval.json"
    with FakeOpenAI() as server:
        server.script(
            reply(finding(PERFECT["local"]), finding(WRONG)),
            reply(finding(PERFECT["cross"]), finding(WRONG)),
            reply(finding(WRONG)),
        )
        result = run_eval(server, corpus, "--context", "repo", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    summary = report(out)["summary"]["repo"]
    # 2 hits among 2 + 3 verified findings; every issue still found.
    assert summary["recall"] == 1.0
    assert summary["precision"] == pytest.approx(2 / 5)
    assert summary["f1"] == pytest.approx(2 * 0.4 / 1.4)
    # The clean case's finding is a false alarm: one clean case, one false alarm.
    assert summary["false_alarms_per_clean_case"] == 1.0 and summary["totals"]["false_alarms"] == 1
    cases = {c["id"]: c for c in report(out)["cases"]}
    assert [f["hit"] for f in cases["local"]["reviews"][0]["findings"]] == [True, False]


def test_diff_mode_sends_only_the_change(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.md"
    with FakeOpenAI() as server:
        # The diff-only reviewer names the caller it cannot see: never verified, never a hit.
        server.script(reply(finding(PERFECT["local"])), reply(finding(PERFECT["cross"])), reply())
        result = run_eval(server, corpus, "--context", "diff", "-o", str(out), "--format", "json")
        sent = [r.json for r in server.chats]
    assert result.exit_code == 0, result.stderr
    assert len(sent) == 3
    for request in sent:
        user = request["messages"][-1]["content"]
        assert "<untrusted_diff>" in user
        assert MARKER not in user and "app/report.py" not in user  # the unchanged file
        assert "README.md" not in user
    assert "app/calc.py" in sent[0]["messages"][-1]["content"]
    assert "def scale(value, factor)" not in sent[0]["messages"][-1]["content"]  # beyond the hunk's context
    assert "app/money.py" in sent[1]["messages"][-1]["content"]
    data = report(out)
    summary = data["summary"]["diff"]
    assert summary["recall"] == 0.5  # the local bug, not the cross-file one
    cases = {c["id"]: c for c in data["cases"]}
    assert cases["cross"]["reviews"][0]["findings"] == [] and cases["cross"]["reviews"][0]["unverified"] == 1
    assert cases["local"]["reviews"][0]["files_sent"] == 0


def test_cross_file_expected_issue_lies_outside_the_diff(corpus: Path) -> None:
    repo = corpus.parent / "shop"
    changed = git(repo, "diff", "--name-only", "main", "cross").split()
    assert changed == ["app/money.py"]
    assert EXPECTED["cross"][0]["path"] not in changed


def test_all_three_modes_and_the_markdown_table(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.md"
    with FakeOpenAI() as server:
        for case in ("local", "cross", "clean"):
            items = [finding(PERFECT[case])] if case in PERFECT else []
            server.script(*(reply(*items) for _ in range(2)))
        result = run_eval(server, corpus, "-o", str(out))
        # fit's request is repo's, byte for byte (the repository fits whole): sent once.
        assert len(server.chats) == 6
    assert result.exit_code == 0, result.stderr
    text = out.read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert {"diff", "repo", "fit"} <= set(rows)
    assert rows["repo"].split("|")[2].strip() == "1.00"  # recall
    assert rows["diff"].split("|")[2].strip() == "0.50"
    assert "fit: the repository fitted into the window by the packer's fitting" in text
    assert "fit: 3 of 3 cases fitted the window the same way as repo" in text
    assert "repo's reply is reused for fit, not sent again" in text
    assert "| cross | – | – | 1 | 0/1, 0 false | 1/1, 0 false | 1/1, 0 false |" in text


def test_a_failed_review_is_retried_and_finished_ones_kept(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    with FakeOpenAI() as server:
        server.script(reply(finding(PERFECT["local"])), Status(400, {"error": {"message": "bad"}}), reply())
        first = run_eval(server, corpus, "--context", "repo", "-o", str(out))
        assert first.exit_code == 3
        assert "1 reviews failed" in first.stderr
        data = report(out)
        assert data["summary"]["repo"]["totals"]["failed"] == 1
        assert data["summary"]["repo"]["recall"] == 1.0  # of what was scored: the local case
        checkpoint = tmp_path / "eval.checkpoint.jsonl"
        assert checkpoint.is_file() and oct(checkpoint.stat().st_mode & 0o777) == "0o600"
        # The second run sends only the failed review.
        server.script(reply(finding(PERFECT["cross"])))
        second = run_eval(server, corpus, "--context", "repo", "-o", str(out))
        assert second.exit_code == 0, second.stderr
        assert len(server.chats) == 4
    data = report(out)
    assert data["summary"]["repo"]["recall"] == 1.0 and data["summary"]["repo"]["totals"]["failed"] == 0
    cached = {c["id"]: c["reviews"][0]["from_checkpoint"] for c in data["cases"]}
    assert cached == {"local": True, "cross": False, "clean": True}


def test_repeat_gives_the_spread(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    with FakeOpenAI() as server:
        server.script(
            reply(finding(PERFECT["local"])),  # local #1
            reply(),  # local #2
            reply(finding(PERFECT["cross"])),  # cross #1
            reply(finding(PERFECT["cross"])),  # cross #2
            reply(),
            reply(),
        )
        result = run_eval(server, corpus, "--context", "repo", "--repeat", "2", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    summary = report(out)["summary"]["repo"]
    assert [r["recall"] for r in summary["repeats"]] == [1.0, 0.5]
    assert summary["recall"] == 0.75
    assert summary["spread"]["recall"]["min"] == 0.5 and summary["spread"]["recall"]["max"] == 1.0
    assert summary["spread"]["recall"]["stdev"] == pytest.approx(0.353553, abs=1e-5)


def test_tolerance_decides_a_near_miss(corpus: Path, tmp_path: Path) -> None:
    near = {"path": "app/calc.py", "start_line": 5, "end_line": 5, "quote": "return result"}  # 2 lines off
    scores = []
    for tolerance in ("3", "1"):
        out = tmp_path / f"eval-{tolerance}.json"
        with FakeOpenAI() as server:
            server.script(reply(finding(near)), reply(), reply())
            result = run_eval(
                server, corpus, "--context", "repo", "--tolerance", tolerance, "--fresh", "-o", str(out)
            )
        assert result.exit_code == 0, result.stderr
        scores.append(report(out)["summary"]["repo"]["recall"])
    assert scores == [0.5, 0.0]


def test_judge_is_recorded_apart(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    with FakeOpenAI() as server:
        server.script(
            reply(finding(PERFECT["local"])),
            Chat('{"same_issue": true}'),  # the judge, right after the local review
            reply(finding(PERFECT["cross"])),
            Chat('{"same_issue": false}'),
            reply(),
        )
        result = run_eval(server, corpus, "--context", "repo", "--judge", "-o", str(out))
        judge_request = server.chats[1].json
    assert result.exit_code == 0, result.stderr
    summary = report(out)["summary"]["repo"]
    assert summary["recall"] == 1.0 and summary["judge_recall"] == 0.5 and summary["judge_precision"] == 0.5
    assert "skips the last price" in judge_request["messages"][-1]["content"]


def test_eval_plant_and_eval_help() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["eval", "--help"], prog_name="wholerepo")
    assert result.exit_code == 0
    assert "wholerepo eval CORPUS" in result.stdout and "--context" in result.stdout
    assert "Examples:" in result.stdout
    result = runner.invoke(main, ["eval", "plant", "--help"])
    assert result.exit_code == 0 and "--seed" in result.stdout and "--count" in result.stdout


def test_corpus_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.toml"
    corpus.write_text('[[cases]]\nrepo = "https://example.com/x.git"\nbase = "a"\nhead = "b"\n')
    result = CliRunner().invoke(main, ["eval", str(corpus), "--base-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 2
    assert "must be a local path" in result.stderr and "Traceback" not in result.output


def test_several_requests_in_flight(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    with FakeOpenAI() as server:
        server.script(*(reply() for _ in range(6)))
        result = run_eval(server, corpus, "--jobs", "4", "-o", str(out))
        assert len(server.chats) == 6  # diff and repo; fit takes repo's reply
    assert result.exit_code == 0, result.stderr
    data = report(out)
    assert sorted((c["id"], r["mode"]) for c in data["cases"] for r in c["reviews"]) == sorted(
        (case, mode) for case in CASES for mode in ("diff", "repo", "fit")
    )


def test_an_earlier_evals_report_and_checkpoint_are_never_packed(corpus: Path, tmp_path: Path) -> None:
    import wholerepo

    repo = corpus.parent / "shop"
    out = repo / "results"
    with FakeOpenAI() as server:
        server.script(reply(finding(PERFECT["local"])), reply(), reply())
        assert run_eval(server, corpus, "--context", "repo", "-o", str(out / "eval.md")).exit_code == 0
        # The same reviews again, from the checkpoint beside the report, as JSON.
        assert run_eval(server, corpus, "--context", "repo", "-o", str(out / "eval.json")).exit_code == 0
        assert len(server.chats) == 3
    # Renamed, so the names alone cannot give them away.
    for name, renamed in (("eval.md", "a.md"), ("eval.json", "b.json"), ("eval.checkpoint.jsonl", "c.jsonl")):
        (out / name).rename(out / renamed)
    reasons = {f.path: f.reason for f in wholerepo.pack(repo, cache=False).files}
    mine = ["results/a.md", "results/b.json", "results/c.jsonl"]
    assert {p: reasons[p] for p in mine} == dict.fromkeys(mine, "wholerepo-output")
    assert reasons["app/calc.py"] is None


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


@pytest.mark.skipif(_has_matplotlib(), reason="matplotlib is installed: --chart works here")
def test_chart_without_matplotlib_fails_before_anything_is_sent(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.md"
    with FakeOpenAI() as server:
        server.script(*(reply() for _ in range(9)))
        result = run_eval(server, corpus, "-o", str(out), "--chart", str(tmp_path / "eval.png"))
        assert server.chats == [] and server.requests == []
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --chart needs matplotlib")
    assert result.stderr.count("\n") == 1 and "wholerepo[chart]" in result.stderr
    assert not out.exists() and not (tmp_path / "eval.checkpoint.jsonl").exists()


def test_an_error_every_run_repeats_is_said_once_with_its_fix_not_run_again(
    corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval.json"
    with FakeOpenAI() as server:
        # An output limit the window cannot hold, given on purpose (by default it is a quarter of it).
        small = ("--context-window", "4000", "--max-output-tokens", "32768")
        result = run_eval(server, corpus, *small, "-o", str(out))
        assert server.chats == []  # nothing fits: nothing is sent
    assert result.exit_code == 3, result.stderr
    assert "run the same command again to retry" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    summary = errors[0]
    assert summary.startswith("Error: 9 reviews failed: the prompt does not fit (lower")
    assert "--context-window" in summary and "fails the same way" in summary
    assert result.stderr.count("tokens and --max-output-tokens 32,768") == 1  # the first review's
    assert result.stderr.count("failed: the prompt does not fit, as above") == 8
    data = report(out)
    assert all(r["error_repeats"] for c in data["cases"] for r in c["reviews"])
    with FakeOpenAI() as server:  # the next run fails the same way; the report says it once
        again = run_eval(server, corpus, *small, "-o", str(tmp_path / "eval.md"))
        assert server.chats == []
    assert again.exit_code == 3
    notes = (tmp_path / "eval.md").read_text().split("## Notes", 1)[1]
    assert notes.count("fail again on every run with these options: the prompt does not fit") == 1
    assert "retried on the next run" not in notes


def test_an_endpoint_failure_that_may_pass_still_says_run_again(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    with FakeOpenAI() as server:
        server.script(reply(), Status(400, {"error": {"message": "bad"}}), reply())
        result = run_eval(server, corpus, "--context", "repo", "-o", str(out))
    assert result.exit_code == 3
    assert "1 reviews failed and were not scored; run the same command again" in result.stderr
    assert not any(line.startswith("Error:") for line in result.stderr.splitlines())
    assert [r["error_repeats"] for c in report(out)["cases"] for r in c["reviews"]] == [False] * 3


def test_fit_identical_to_repo_is_sent_once_and_a_different_fit_is_sent(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    with FakeOpenAI() as server:
        server.script(*(reply() for _ in range(3)))
        result = run_eval(server, corpus, "--context", "fit", "--context", "repo", "-o", str(out))
        assert result.exit_code == 0, result.stderr
        assert len(server.chats) == 3  # one request per case, for both modes
        data = report(out)
        runs = {(c["id"], r["mode"]): r for c in data["cases"] for r in c["reviews"]}
        assert all(runs[(case, "fit")]["reply_of"] == "repo" for case in CASES)
        assert all(runs[(case, "repo")]["reply_of"] is None for case in CASES)
        assert "(repo's reply: the same request)" in result.stderr
        # Again: both from repo's checkpoint record, nothing sent.
        again = run_eval(server, corpus, "--context", "fit", "--context", "repo", "-o", str(out))
        assert again.exit_code == 0 and len(server.chats) == 3
        assert all(r["from_checkpoint"] for c in report(out)["cases"] for r in c["reviews"])
    # A budget smaller than the repository shapes repo (fit ignores it): two requests per case.
    with FakeOpenAI() as server:
        server.script(*(reply() for _ in range(6)))
        shaped = run_eval(
            server, corpus, "--context", "repo", "--context", "fit", "--budget", "150", "--fresh",
            "-o", str(out),
        )  # fmt: skip
        assert shaped.exit_code == 0, shaped.stderr
        assert len(server.chats) == 6
        users = [r.json["messages"][-1]["content"] for r in server.chats]
    assert MARKER in users[1] and MARKER not in users[0]  # fit sends the file repo's budget left out
    assert all(r["reply_of"] is None for c in report(out)["cases"] for r in c["reviews"])
    assert "'s reply: the same request" not in shaped.stderr
