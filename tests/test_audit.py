"""`wholerepo audit`: a repository ~5x over the budget, cut into shards, sent to the real loopback
endpoint (tests/fake_openai.py) concurrently, merged; failures, resume, Ctrl-C, two endpoints,
and plan / run --shard / merge against one audit."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tokenizers import Tokenizer as HFTokenizer

from conftest import MakeRepo, git
from fake_openai import Chat, FakeOpenAI, Interrupt, Status, usage
from wholerepo.audit.plan import make_plan
from wholerepo.cli import main
from wholerepo.packer import settings_for
from wholerepo.reviewer.plan import Window

KEY = "sk-audit-5c4d3e2f1a0b9c8d"
BUDGET = 6000
PACKAGES = ("alpha", "beta", "gamma", "delta", "omega")


def _module(pkg: str, m: int, rng: random.Random) -> str:
    lines = [f"from src.{pkg} import mod{(m + 1) % 5}\n\n"]
    for fn in range(7):
        lines.append(f"def {pkg}_f{m}_{fn}(x):\n")
        for k in range(7):
            lines.append(f"    y{k} = x * {k} + {rng.randint(0, 999)}  # body {pkg}-{m}-{fn}-{k}\n")
        lines.append("    return y0\n\n")
    return "".join(lines)


def files() -> dict[str, str]:
    rng = random.Random(7)
    out = {"README.md": "# demo\n\nA repository larger than one request.\n"}
    for pkg in PACKAGES:
        out[f"src/{pkg}/__init__.py"] = ""
        for m in range(5):
            out[f"src/{pkg}/mod{m}.py"] = _module(pkg, m, rng)
            out[f"tests/{pkg}/test_mod{m}.py"] = (
                f"from src.{pkg}.mod{m} import {pkg}_f{m}_0\n\n\ndef test_it():\n"
                f"    assert {pkg}_f{m}_0(1) is not None\n"
            )
    return out


BODY = re.compile(r"# body [a-z]+-\d-\d-\d")


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    return make_repo(files(), name="mono")


def reply_for(request: dict[str, Any], *, findings: bool = True) -> Chat:
    """A reply naming the first function of the first module the shard shows in full."""
    user = request["messages"][-1]["content"]
    shown = re.findall(r'<file path="(src/\w+/mod\d\.py)">', user)
    items = []
    if findings and shown:
        path = shown[0]
        pkg, m = re.search(r"src/(\w+)/mod(\d)", path).groups()  # type: ignore[union-attr]
        items.append(
            {
                "path": path,
                "start_line": 3,
                "end_line": 3,
                "severity": "medium",
                "category": "bug",
                "title": f"Unused input in {pkg}_f{m}_0",
                "body": "The function ignores most of what it computes.",
                "suggestion": None,
                "quote": f"def {pkg}_f{m}_0(x):",
                "replacement": None,
            }
        )
    text = json.dumps({"summary": f"{len(shown)} modules", "findings": items})
    return Chat(text, usage=usage(prompt=1000, completion=50, hit=200), delay=0.15)


def audit(
    fake: FakeOpenAI | list[FakeOpenAI], repo: Path, *args: str, env: dict[str, str] | None = None
) -> Result:
    servers = fake if isinstance(fake, list) else [fake]
    urls = [a for s in servers for a in ("--base-url", s.url)]
    environment = {
        "OPENAI_API_KEY": KEY,
        "WHOLEREPO_RETRY_BACKOFF": "0.01",
        "WHOLEREPO_RETRY_AFTER_CAP": "0.05",
        "WHOLEREPO_MAX_RETRIES": "0",
        **(env or {}),
    }
    result = CliRunner().invoke(
        main,
        ["audit", str(repo), *urls, "--budget", str(BUDGET), "--context-window", "200000", *args],
        env=environment,
        catch_exceptions=False,
    )
    assert "Traceback" not in result.output
    assert KEY not in result.stdout and KEY not in result.stderr
    return result


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(respond=reply_for) as server:
        yield server


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def shard_paths(user: str) -> list[str]:
    """The files a request shows in full (after the map)."""
    own = user[user.index("</repository_map>") :] if "</repository_map>" in user else user
    return re.findall(r'<file path="([^"]+)">', own)


# -- the plan ---------------------------------------------------------------------------------------


def test_five_times_over_budget_every_body_sent_once_exact_and_within_budget(
    fake: FakeOpenAI, repo: Path, hf: HFTokenizer, tmp_path: Path
) -> None:
    settings = settings_for(repo, {"budget": BUDGET})
    plan = make_plan(repo, settings, Window(200_000, "test"), model="deepseek-flash")
    total = sum(f.tokens for f in plan.whole.files if f.status == "included")
    assert total > 4 * BUDGET  # about five times over
    assert len(plan.shards) >= 5
    # Every file in exactly one shard (nothing skipped here), tests beside their package.
    listed = [p for s in plan.shards for p in s.paths]
    assert sorted(listed) == sorted(files())
    for s in plan.shards:
        for p in s.paths:
            if p.startswith("tests/"):
                assert p.replace("tests/", "src/").replace("test_mod", "mod") in s.paths
    result = audit(fake, repo, "--format", "json", "-o", str(tmp_path / "a.json"))
    assert result.exit_code == 0, result.stderr
    chats = [r.json for r in fake.chats]
    assert len(chats) == len(plan.shards)
    bodies: list[str] = []
    prefixes = set()
    for body in chats:
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        # The map is byte-identical across requests, and first.
        prefixes.add(user[: user.index("</repository_map>")])
        # Counts exact: ours against Hugging Face's tokenizer, and within the budget.
        paths = shard_paths(user)
        s = next(s for s in plan.shards if list(s.paths) == sorted(paths))
        exact = len(hf.encode(system, add_special_tokens=False).ids) + len(
            hf.encode(user, add_special_tokens=False).ids
        )
        assert exact == plan.prompt_tokens(s)
        assert plan.repo_map.tokens + s.tokens <= BUDGET
        own = user[user.index("</repository_map>") :]
        bodies += BODY.findall(own)
        assert not BODY.findall(user[: user.index("</repository_map>")])  # outlines elide bodies
    assert len(prefixes) == 1
    expected = [m for text in files().values() for m in BODY.findall(text)]
    assert sorted(bodies) == sorted(expected)  # every function body sent exactly once
    # Filled: every shard but the last at >= 90 % of the budget.
    fills = sorted(plan.fill(s) for s in plan.shards)
    assert all(f >= 0.9 for f in fills[1:]), fills
    data = load(tmp_path / "a.json")
    assert len(data["verified"]) == len(plan.shards)
    assert data["partial"] is False


def test_dry_run_prints_shards_tokens_and_cost_and_sends_nothing(fake: FakeOpenAI, repo: Path) -> None:
    result = audit(fake, repo, "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert fake.chats == []
    assert report["requests"] == len(report["shards"]) >= 5
    assert all(s["prompt_tokens"] > 0 for s in report["shards"])
    assert report["shared_prefix_tokens"] > report["map_tokens"] > 0
    # The budget is the repository part; every request adds the same instructions on top of it.
    assert report["instruction_tokens"] > 0
    assert all(
        s["prompt_tokens"] <= report["budget"] + report["instruction_tokens"] for s in report["shards"]
    )
    assert (
        max(s["prompt_tokens"] for s in report["shards"])
        > report["instruction_tokens"] + report["map_tokens"]
    )
    cost = report["estimated_cost_usd"]
    assert cost["input_with_cache"] < cost["input_without_cache"]
    assert cost["cache_hit_tokens"] == report["shared_prefix_tokens"] * (report["requests"] - 1)
    text = audit(fake, repo, "--dry-run").stdout
    assert "shard    1:" in text and "without the prefix cache" in text
    assert f"plus {report['instruction_tokens']:,} of instructions" in text


def test_plan_is_deterministic_and_a_matrix(fake: FakeOpenAI, repo: Path, tmp_path: Path) -> None:
    out = [tmp_path / "p1.json", tmp_path / "p2.json"]
    for o in out:
        r = CliRunner().invoke(
            main,
            ["audit", "plan", str(repo), "--base-url", fake.url, "--budget", str(BUDGET),
             "--context-window", "200000", "-o", str(o)],
            env={"OPENAI_API_KEY": KEY},
            catch_exceptions=False,
        )  # fmt: skip
        assert r.exit_code == 0, r.stderr
    assert out[0].read_bytes() == out[1].read_bytes()
    entries = load(out[0])
    assert [e["shard"] for e in entries] == list(range(1, len(entries) + 1))
    assert sorted(p for e in entries for p in e["paths"]) == sorted(files())


# -- sending ------------------------------------------------------------------------------------------


def test_concurrency_is_bounded_and_used(fake: FakeOpenAI, repo: Path) -> None:
    result = audit(fake, repo, "--concurrency", "2")
    assert result.exit_code == 0, result.stderr
    assert fake.max_in_flight == 2
    assert len(re.findall(r"wholerepo: shard \d+/\d+ done", result.stderr)) == len(fake.chats)


def test_two_endpoints_are_both_used(repo: Path, tmp_path: Path) -> None:
    with FakeOpenAI(respond=reply_for) as one, FakeOpenAI(respond=reply_for) as two:
        result = audit(
            [one, two], repo, "--concurrency", "1", "--format", "json", "-o", str(tmp_path / "r.json")
        )
        assert result.exit_code == 0, result.stderr
        assert one.chats and two.chats
        sent = [shard_paths(r.json["messages"][-1]["content"]) for r in [*one.chats, *two.chats]]
        assert len(sent) == len({tuple(s) for s in sent})  # each shard sent once
        assert one.max_in_flight == two.max_in_flight == 1
    assert load(tmp_path / "r.json")["endpoint"] == f"{one.url}, {two.url}"


def test_a_failed_shard_exits_3_keeps_the_others_then_resume_sends_only_it(
    repo: Path, tmp_path: Path
) -> None:
    failing = "src/gamma/mod0.py"
    broken_gpu = {"on": True}

    def respond(request: dict[str, Any]) -> Any:
        if broken_gpu["on"] and failing in shard_paths(request["messages"][-1]["content"]):
            return Status(500, {"error": {"message": "the GPU fell over"}})
        return reply_for(request)

    out = tmp_path / "out"
    with FakeOpenAI(respond=respond) as fake:
        first = audit(fake, repo, "--output-dir", str(out), "--format", "json", "--format", "markdown")
        assert first.exit_code == 3
        broken = [r for r in fake.chats if failing in shard_paths(r.json["messages"][-1]["content"])]
        assert len(broken) == 1
        total = len(fake.chats)
        data = load(out / "review.json")
        assert data["partial"] is True
        assert len(data["verified"]) == total - 1  # every finished shard's finding is there
        number = re.search(r"shards? did not finish: (\d+)", first.stderr)
        assert number is not None and f"shard {number.group(1)} failed" in data["partial_reason"]
        assert any(n["path"] == failing and "failed" in n["reason"] for n in data["not_sent"])
        assert "GPU fell over" in (out / "review.md").read_text()

        broken_gpu["on"] = False
        second = audit(fake, repo, "--output-dir", str(out), "--format", "json", "--resume")
        assert second.exit_code == 0, second.stderr
        again = fake.chats[total:]
        assert len(again) == 1  # only the failed shard
        assert again[0].body == broken[0].body  # its request byte-identical
        resumed = load(out / "review.json")

        whole = audit(fake, repo, "--format", "json", "-o", str(tmp_path / "whole.json"), "--no-cache")
        assert whole.exit_code == 0
        assert len(fake.chats) == 2 * total + 1
    assert resumed == load(tmp_path / "whole.json")  # the same report as one uninterrupted run


def test_ctrl_c_mid_audit_keeps_finished_shards_and_resume_completes(repo: Path, tmp_path: Path) -> None:
    settings = settings_for(repo, {"budget": BUDGET})
    plan = make_plan(repo, settings, Window(200_000, "test"), model="deepseek-flash")
    last = plan.shards[-1].paths[0]
    cut = {"on": True}

    def respond(request: dict[str, Any]) -> Any:
        if cut["on"] and last in shard_paths(request["messages"][-1]["content"]):
            return Interrupt('{"summary": "cut", "findings": [')
        return reply_for(request)

    out = tmp_path / "o.json"
    with FakeOpenAI(respond=respond) as fake:
        first = audit(fake, repo, "--concurrency", "1", "--format", "json", "-o", str(out))
        assert first.exit_code == 130
        assert "Interrupted" in first.stderr and "--resume" in first.stderr
        data = load(out)
        assert data["partial"] is True
        assert len(data["verified"]) == len(plan.shards) - 1
        sent = len(fake.chats)
        cut["on"] = False
        second = audit(fake, repo, "--concurrency", "1", "--format", "json", "-o", str(out), "--resume")
        assert second.exit_code == 0, second.stderr
        assert len(fake.chats) == sent + 1
    done = load(out)
    assert done["partial"] is False and len(done["verified"]) == len(plan.shards)


# -- across CI runners ---------------------------------------------------------------------------------


def test_plan_run_merge_give_the_same_report_as_one_audit(
    fake: FakeOpenAI, repo: Path, tmp_path: Path
) -> None:
    env = {"OPENAI_API_KEY": KEY}
    common = ["--base-url", fake.url, "--budget", str(BUDGET), "--context-window", "200000"]
    plan_file = tmp_path / "plan.json"
    runner = CliRunner()
    r = runner.invoke(main, ["audit", "plan", str(repo), *common, "-o", str(plan_file)], env=env)
    assert r.exit_code == 0, r.stderr
    shards = [e["shard"] for e in load(plan_file)]
    for k in shards:
        r = runner.invoke(
            main,
            ["audit", "run", str(repo), *common, "--plan", str(plan_file), "--shard", str(k),
             "-o", str(tmp_path / f"shard-{k}.json"), "--no-cache"],
            env=env,
        )  # fmt: skip
        assert r.exit_code == 0, r.stderr
    pieces = sorted(str(p) for p in tmp_path.glob("shard-*.json"))
    for fmt in ("sarif", "markdown", "json"):
        r = runner.invoke(
            main, ["audit", "merge", *pieces, "--format", fmt, "-o", str(tmp_path / f"m.{fmt}")]
        )
        assert r.exit_code == 0, r.stderr
        one = audit(fake, repo, "--format", fmt, "-o", str(tmp_path / f"a.{fmt}"), "--no-cache")
        assert one.exit_code == 0
        assert (tmp_path / f"m.{fmt}").read_text() == (tmp_path / f"a.{fmt}").read_text()
    sarif = load(tmp_path / "m.sarif")
    assert len(sarif["runs"]) == 1
    assert len(sarif["runs"][0]["results"]) == len(shards)
    # A missing shard file: the others merge, the run exits 3 and names it.
    r = runner.invoke(
        main, ["audit", "merge", *pieces[1:], "--format", "json", "-o", str(tmp_path / "p.json")]
    )
    assert r.exit_code == 3 and "did not finish" in r.stderr
    assert len(load(tmp_path / "p.json")["verified"]) == len(shards) - 1


def test_run_refuses_a_plan_of_another_checkout(fake: FakeOpenAI, repo: Path, tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": KEY}
    common = ["--base-url", fake.url, "--budget", str(BUDGET), "--context-window", "200000"]
    plan_file = tmp_path / "plan.json"
    assert (
        CliRunner()
        .invoke(main, ["audit", "plan", str(repo), *common, "-o", str(plan_file)], env=env)
        .exit_code
        == 0
    )
    (repo / "src/alpha/mod0.py").write_text("x = 1\n" * 400)
    git(repo, "commit", "-qam", "change")
    r = CliRunner().invoke(
        main,
        [
            "audit",
            "run",
            str(repo),
            *common,
            "--plan",
            str(plan_file),
            "--shard",
            "1",
            "-o",
            str(tmp_path / "s.json"),
        ],
        env=env,
    )
    assert r.exit_code == 2 and "not the plan of this checkout" in r.stderr
    assert fake.chats == []


def test_a_finding_in_another_shards_file_is_verified_against_that_file(repo: Path, tmp_path: Path) -> None:
    def respond(request: dict[str, Any]) -> Any:
        user = request["messages"][-1]["content"]
        if "src/alpha/mod0.py" in shard_paths(user):
            return reply_for(request, findings=False)
        other = {
            "path": "src/alpha/mod0.py", "start_line": 3, "end_line": 3, "severity": "low",
            "category": "bug", "title": "Seen through the map", "body": "b", "suggestion": None,
            "quote": "def alpha_f0_0(x):", "replacement": None,
        }  # fmt: skip
        ghost = {**other, "title": "Invented", "quote": "def not_there(x):"}
        return Chat(json.dumps({"summary": "s", "findings": [other, ghost]}), usage=usage())

    with FakeOpenAI(respond=respond) as fake:
        result = audit(fake, repo, "--format", "json", "-o", str(tmp_path / "r.json"))
        assert result.exit_code == 0, result.stderr
        n = len(fake.chats)
    data = load(tmp_path / "r.json")
    verified = [f for f in data["verified"] if f["title"] == "Seen through the map"]
    assert len(verified) == 1 and verified[0]["start_line"] == 3  # de-duplicated across shards
    assert len(verified[0]["merged_titles"]) == n - 2
    assert all(u["title"] == "Invented" for u in data["unverified"])


def test_help_and_default_command() -> None:
    r = CliRunner().invoke(main, ["audit", "--help"])
    assert r.exit_code == 0 and "Examples:" in r.stdout and "audit plan" in r.stdout
    r = CliRunner().invoke(main, ["audit", ".", "--help"])
    assert r.exit_code == 0 and "--concurrency" in r.stdout and "--resume" in r.stdout


def test_merge_names_the_missing_shards_runs_and_run_names_its_one_shard(
    fake: FakeOpenAI, repo: Path, tmp_path: Path
) -> None:
    env = {"OPENAI_API_KEY": KEY}
    common = ["--base-url", fake.url, "--budget", str(BUDGET), "--context-window", "200000"]
    plan_file = tmp_path / "plan.json"
    runner = CliRunner()
    assert (
        runner.invoke(main, ["audit", "plan", str(repo), *common, "-o", str(plan_file)], env=env).exit_code
        == 0
    )
    total = len(load(plan_file))
    r = runner.invoke(
        main,
        ["audit", "run", str(repo), *common, "--plan", str(plan_file), "--shard", "2",
         "-o", str(tmp_path / "shard-2.json")],
        env=env,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert f"shard 2 of {total}" in r.stderr
    assert "to send of" not in r.stderr and len(fake.chats) == 1
    r = runner.invoke(main, ["audit", "merge", str(tmp_path / "shard-2.json"), "--format", "json"])
    assert r.exit_code == 3
    assert "--resume" not in r.stderr  # merge has no --resume
    assert "wholerepo audit run --plan plan.json --shard 1 -o shard-1.json" in r.stderr
    assert f"--shard {total} -o shard-{total}.json" in r.stderr
    assert "--shard 2 " not in r.stderr


def test_the_report_is_an_audit_with_each_warning_and_other_title_once(repo: Path, tmp_path: Path) -> None:
    def respond(request: dict[str, Any]) -> Any:
        same = {
            "path": "src/alpha/mod0.py", "start_line": 3, "end_line": 3, "severity": "low",
            "category": "bug", "title": "echo may drop output", "body": "b", "suggestion": None,
            "quote": "def alpha_f0_0(x):", "replacement": None,
        }  # fmt: skip
        other = {**same, "title": "Output can be lost"}
        user = request["messages"][-1]["content"]
        items = [same, other] if "src/alpha/mod0.py" in shard_paths(user) else [same]
        # The endpoint counts far fewer prompt tokens than we do: a drift warning in every shard.
        return Chat(json.dumps({"summary": "s", "findings": items}), usage=usage(prompt=100))

    out = tmp_path / "out"
    with FakeOpenAI(respond=respond) as fake:
        result = audit(
            fake, repo, "--output-dir", str(out), "--format", "json", "--format", "markdown",
            "--format", "sarif",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        shards = len(fake.chats)
    assert shards >= 5
    data = load(out / "review.json")
    drift = [w for w in data["warnings"] if "prompt tokens where wholerepo counted" in w]
    assert len(drift) == 1 and f"in {shards} of {shards} shards" in drift[0]
    assert result.stderr.count("prompt tokens where wholerepo counted") == 1
    md = (out / "review.md").read_text()
    assert md.startswith("# wholerepo audit\n")
    assert md.count("where wholerepo counted") == 1
    [finding] = data["verified"]
    assert len(finding["merged_titles"]) == shards  # every duplicate counted...
    also = [line for line in md.splitlines() if line.startswith("Also reported as:")]
    assert also == ["Also reported as: Output can be lost."]  # ...but each other title named once
    sarif = load(out / "review.sarif")
    assert sarif["runs"][0]["tool"]["driver"]["name"] == "wholerepo"  # the tool's name stays


def test_the_also_line_is_left_out_when_every_duplicate_has_the_same_title(
    repo: Path, tmp_path: Path
) -> None:
    def respond(request: dict[str, Any]) -> Any:
        same = {
            "path": "src/alpha/mod0.py", "start_line": 3, "end_line": 3, "severity": "low",
            "category": "bug", "title": "echo may drop output", "body": "b", "suggestion": None,
            "quote": "def alpha_f0_0(x):", "replacement": None,
        }  # fmt: skip
        return Chat(json.dumps({"summary": "s", "findings": [same]}), usage=usage())

    with FakeOpenAI(respond=respond) as fake:
        result = audit(fake, repo, "--format", "markdown", "-o", str(tmp_path / "a.md"))
        assert result.exit_code == 0, result.stderr
    md = (tmp_path / "a.md").read_text()
    assert "merged with" in md and "Also reported as" not in md


def test_an_earlier_audits_plan_shards_and_report_are_never_packed(
    fake: FakeOpenAI, repo: Path, tmp_path: Path
) -> None:
    import wholerepo

    env = {"OPENAI_API_KEY": KEY}
    common = ["--base-url", fake.url, "--budget", str(BUDGET), "--context-window", "200000"]
    out = tmp_path / "out"
    runner = CliRunner()
    r = runner.invoke(main, ["audit", "plan", str(repo), *common, "-o", str(out / "plan.json")], env=env)
    assert r.exit_code == 0, r.stderr
    args = ["--plan", str(out / "plan.json"), "--shard", "1", "-o", str(out / "shard-1.json")]
    assert runner.invoke(main, ["audit", "run", str(repo), *common, *args], env=env).exit_code == 0
    r = runner.invoke(main, ["audit", "merge", str(out / "shard-1.json"), "--output-dir", str(out)])
    assert r.exit_code == 3  # the other shards are missing; the report is written all the same
    kept = repo / "kept"
    kept.mkdir()
    for name, renamed in (("plan.json", "p.json"), ("shard-1.json", "s.json"), ("review.md", "r.md"),
                          ("review.sarif", "r.sarif"), ("review.json", "r.json")):  # fmt: skip
        (kept / renamed).write_bytes((out / name).read_bytes())
    reasons = {f.path: f.reason for f in wholerepo.pack(repo, cache=False).files}
    mine = [f"kept/{n}" for n in ("p.json", "s.json", "r.md", "r.sarif", "r.json")]
    assert {p: reasons[p] for p in mine} == dict.fromkeys(mine, "wholerepo-output")
    assert reasons["src/alpha/mod0.py"] is None
