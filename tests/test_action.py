"""The Action: action.yml's contract, its review step run exactly as a runner runs it (its own
script, a real-looking event file, the GITHUB_* environment) against the stand-ins, and every
workflow of the repository and of examples/ clean under actionlint."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import prworld
from conftest import git
from prworld import BOT, KEY, OUTSIDE, TOKEN, World, finding, reply
from support.fake_github import event_payload

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
world = prworld.world  # the fixture

INPUTS = {
    "api-key", "base-url", "model", "fail-on", "prompt", "include", "exclude", "budget", "sarif-file",
    "inline-comments", "max-inline-comments", "min-inline-severity", "github-token", "fail-on-scope",
    "context-window", "max-output-tokens",
}  # fmt: skip
OUTPUTS = {"findings", "highest-severity", "report-json", "report-markdown", "sarif-file"}


def action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ACTION.read_text())
    return data


def test_the_action_declares_the_contract() -> None:
    a = action()
    assert set(a["inputs"]) >= INPUTS and set(a["outputs"]) >= OUTPUTS
    assert a["inputs"]["inline-comments"]["default"] == "true"
    assert a["inputs"]["github-token"]["default"] == "${{ github.token }}"
    assert a["branding"]["icon"] and a["branding"]["color"]
    runs = a["runs"]
    assert runs["using"] == "composite"
    uses = [s.get("uses", "") for s in runs["steps"]]
    assert any(u.startswith("actions/setup-python@") for u in uses)
    cache = next(s for s in runs["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert "head.sha" in cache["with"]["key"] and cache["with"]["restore-keys"].strip()
    assert "wholerepo-cache" in cache["with"]["path"]
    install = next(s for s in runs["steps"] if "pip install" in s.get("run", ""))
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    review = next(s for s in runs["steps"] if s.get("id") == "review")
    assert "wholerepo" in review["run"] and "pr-review" in review["run"]
    assert review["env"]["WHOLEREPO_CACHE_DIR"] == cache["with"]["path"]
    for name in OUTPUTS:
        assert a["outputs"][name]["value"] == f"${{{{ steps.review.outputs.{name} }}}}"
    # Inputs never reach the script's text, only its environment (no injection).
    assert "${{" not in review["run"]


def _expand(value: str, inputs: dict[str, str], runner_temp: str) -> str:
    def one(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("inputs."):
            return inputs[expr[len("inputs.") :]]
        if expr == "runner.temp":
            return runner_temp
        raise AssertionError(f"the test does not evaluate ${{{{ {expr} }}}}")

    return re.sub(r"\$\{\{(.*?)\}\}", one, value)


def run_as_the_action(w: World, with_: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The review step of action.yml, as a runner runs it: its env block evaluated, its script in
    bash, the job's GITHUB_* variables, wholerepo installed (here: this checkout's)."""
    a = action()
    inputs = {name: str(spec.get("default", "")) for name, spec in a["inputs"].items()}
    inputs["github-token"] = TOKEN
    inputs.update(with_)
    step = next(s for s in a["runs"]["steps"] if s.get("id") == "review")
    job = w.env("pull_request", event_payload(w.gh, w.number, "synchronize"))
    job.pop("OPENAI_API_KEY")  # the key comes in through the input only
    step_env = {k: _expand(str(v), inputs, job["RUNNER_TEMP"]) for k, v in step["env"].items()}
    env = {**os.environ, **job, **step_env}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    Path(job["GITHUB_OUTPUT"]).write_text("")
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=w.ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    for secret in (TOKEN, KEY):
        assert secret not in proc.stdout and secret not in proc.stderr
    assert w.gh.violations == []
    return proc


def test_pr_review_runs_as_the_action_runs_it(world: World) -> None:
    inputs = {
        "api-key": KEY,
        "base-url": world.model.url,
        "fail-on": "critical",
        "sarif-file": "review.sarif",
        "include": "*.py, *.md",
        "max-inline-comments": "5",
    }
    world.model.script(reply(finding(), OUTSIDE))
    first = run_as_the_action(world, inputs)
    # The critical finding is outside the diff: --fail-on counts the diff's findings.
    assert first.returncode == 0, first.stderr
    outputs = world.outputs()
    assert outputs["findings"] == "2" and outputs["highest-severity"] == "critical"
    assert Path(outputs["sarif-file"]).name == "review.sarif" and (world.ws / "review.sarif").is_file()
    assert Path(outputs["report-json"]).is_file() and Path(outputs["report-markdown"]).is_file()
    assert "## wholerepo review" in (world.tmp / "step-summary.md").read_text()
    assert len(world.gh.reviews) == 1 and len(world.gh.review_comments) == 1
    summary = world.summary()
    assert summary["user"]["login"] == BOT
    # Writes are serial and at least a second apart (the Action's default pace).
    writes = world.gh.writes()
    assert all(b.at - a.at >= 0.99 for a, b in itertools.pairwise(writes))
    assert "GitHub requests:" in first.stderr
    # The key went to the model, as a Bearer header, and nowhere else.
    assert world.model.chats[0].headers["authorization"] == f"Bearer {KEY}"

    requests_before = len(world.gh.requests)
    world.model.script(reply(finding(), OUTSIDE))
    second = run_as_the_action(world, inputs)
    assert second.returncode == 0, second.stderr
    assert world.summary()["id"] == summary["id"]
    assert len(world.gh.reviews) == 1 and len(world.gh.review_comments) == 1
    second_run = world.gh.requests[requests_before:]
    assert not [r for r in second_run if r.status == 422]
    # Inline comments off: nothing posted inline, the summary says why.
    world.model.script(reply(finding(title="another one", start_line=9, end_line=9, quote="def sub(a, b):")))
    third = run_as_the_action(world, {**inputs, "inline-comments": "false"})
    assert third.returncode == 0, third.stderr
    assert len(world.gh.review_comments) == 1
    assert "inline comments are off" in world.summary()["body"]


def test_fail_on_through_the_action_fails_the_step(world: World) -> None:
    world.model.script(reply(finding()))
    proc = run_as_the_action(world, {"api-key": KEY, "base-url": world.model.url, "fail-on": "high"})
    assert proc.returncode == 1
    assert "failing the run" in proc.stderr


def test_scope_window_and_output_inputs_reach_the_review(world: World) -> None:
    world.model.script(reply(finding(), OUTSIDE))
    inputs = {"api-key": KEY, "base-url": world.model.url, "fail-on": "critical", "fail-on-scope": "all"}
    proc = run_as_the_action(world, {**inputs, "context-window": "65536", "max-output-tokens": "5000"})
    assert proc.returncode == 1, proc.stderr  # the critical finding outside the diff counts now
    [chat] = world.model.chats
    assert chat.json["max_tokens"] == 5000
    small = run_as_the_action(world, {**inputs, "context-window": "1500"})
    assert small.returncode == 3  # the window the input gives is what the prompt must fit
    assert "1,500-token window (--context-window)" in small.stderr
    assert len(world.model.chats) == 1


# -- actionlint ---------------------------------------------------------------------------------------


def actionlint() -> str | None:
    here = Path(sys.executable).parent / "actionlint"
    return str(here) if here.exists() else shutil.which("actionlint")


WORKFLOWS = sorted([*ROOT.glob(".github/workflows/*.yml"), *ROOT.glob("examples/*.yml")])


@pytest.mark.skipif(actionlint() is None, reason="actionlint is not installed (pip install -e '.[test]')")
def test_every_workflow_and_the_action_pass_actionlint() -> None:
    assert any(p.name == "wholerepo.yml" for p in WORKFLOWS)
    proc = subprocess.run(
        [str(actionlint()), "-oneline", *[str(p) for p in WORKFLOWS]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # This repository's workflow uses the Action through `uses: ./`, so actionlint reads
    # action.yml too; a wrong input proves it does.
    own = (ROOT / ".github/workflows/wholerepo.yml").read_text()
    assert "uses: ./" in own


@pytest.mark.skipif(actionlint() is None, reason="actionlint is not installed (pip install -e '.[test]')")
def test_actionlint_checks_the_actions_inputs(tmp_path: Path) -> None:
    (tmp_path / ".github/workflows").mkdir(parents=True)
    shutil.copy(ACTION, tmp_path / "action.yml")
    bad = (
        (ROOT / ".github/workflows/wholerepo.yml")
        .read_text()
        .replace("fail-on: high", "fail-on: high\n          no-such-input: x")
    )
    (tmp_path / ".github/workflows/bad.yml").write_text(bad)
    git(tmp_path, "init", "-q")
    proc = subprocess.run(
        [str(actionlint()), "-oneline"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert (
        proc.returncode == 1 and '"no-such-input" is not defined in action "wholerepo review"' in proc.stdout
    )


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_actions_scripts_pass_shellcheck() -> None:
    for step in action()["runs"]["steps"]:
        if "run" in step:
            proc = subprocess.run(
                ["shellcheck", "-s", "bash", "-"],
                input=step["run"],
                capture_output=True,
                text=True,
                check=False,
            )
            assert proc.returncode == 0, proc.stdout


def test_examples_name_inputs_the_action_has() -> None:
    names = set(action()["inputs"])
    for path in WORKFLOWS:
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                uses = step.get("uses", "")
                if uses == "./" or uses.startswith("wholerepo/wholerepo@"):
                    assert set(step.get("with", {})) <= names, path
    assert json.dumps(sorted(names))
