"""A pull request to review, built for real: an origin repository (git), the job's checkout, a
GitHub stand-in and a model stand-in, both on 127.0.0.1; and `wholerepo pr-review` run as a job
would run it (GITHUB_* variables, an event file)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conftest import git, write_files
from fake_openai import Chat, FakeOpenAI, usage
from support.fake_github import PR, FakeGitHub, event_payload
from wholerepo.cli import main

TOKEN = "ghs_test_token_0123456789abcdef"
KEY = "sk-model-key-5e4d3c2b1a0f9e8d"
BOT = "github-actions[bot]"

APP = "def add(a, b):\n    return a + b\n\n\ndef div(a, b):\n    return a / b\n"
UTIL = (
    "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n\n\n"
    "def run_user_code():\n    return eval(input())\n"
)
BASE_FILES: dict[str, str | bytes] = {
    "app.py": APP,
    "util.py": UTIL,
    "README.md": "# hello\n",
    "REVIEW.md": "BASE-GUIDANCE: check division by zero.\n",
}


def finding(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "path": "app.py",
        "start_line": 10,
        "end_line": 10,
        "severity": "high",
        "category": "bug",
        "title": "sub() adds",
        "body": "The function named sub returns a + b.",
        "suggestion": "Subtract.",
        "quote": "return a + b",
        "replacement": "    return a - b",
    }
    item.update(overrides)
    return item


OUTSIDE = {
    "path": "util.py",
    "start_line": 6,
    "end_line": 6,
    "severity": "critical",
    "category": "security",
    "title": "eval of user input",
    "body": "eval(input()) runs whatever the user types.",
    "suggestion": None,
    "quote": "return eval(input())",
    "replacement": None,
}


def reply(*items: Mapping[str, Any], summary: str = "Reviewed.") -> Chat:
    return Chat(json.dumps({"summary": summary, "findings": list(items)}), usage=usage(1200, 80, hit=1000))


@dataclass
class World:
    tmp: Path
    origin: Path
    dev: Path
    ws: Path
    gh: FakeGitHub
    model: FakeOpenAI
    number: int = 7
    runs: list[Result] = field(default_factory=list)

    # -- the repository ---------------------------------------------------------------------

    def commit(self, files: Mapping[str, str | bytes | None], message: str = "change") -> str:
        for rel, content in files.items():
            if content is None:
                git(self.dev, "rm", "-q", rel)
        write_files(self.dev, {k: v for k, v in files.items() if v is not None})
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "-q", "--no-gpg-sign", "-m", message)
        return git(self.dev, "rev-parse", "HEAD").strip()

    def push(self, force: bool = False) -> str:
        """Push the feature branch; the pull request's head moves there."""
        head = git(self.dev, "rev-parse", "HEAD").strip()
        flag = ["--force"] if force else []
        git(self.dev, "push", "-q", *flag, "origin", "HEAD:refs/heads/feature")
        git(self.dev, "push", "-q", "--force", "origin", f"HEAD:refs/pull/{self.number}/head")
        self.gh.pulls[self.number].head_sha = head
        return head

    def checkout(self, sha: str | None = None) -> None:
        """The job's checkout: actions/checkout with ref: the head, fetch-depth 0."""
        git(self.ws, "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*")
        git(
            self.ws, "fetch", "-q", "origin", f"+refs/pull/{self.number}/head:refs/remotes/pull/{self.number}"
        )
        git(self.ws, "checkout", "-q", "--detach", sha or self.gh.pulls[self.number].head_sha)

    # -- the job ------------------------------------------------------------------------------

    def env(self, event_name: str = "pull_request", event: Mapping[str, Any] | None = None) -> dict[str, str]:
        payload = event if event is not None else event_payload(self.gh, self.number, "synchronize")
        event_file = self.tmp / f"event-{len(self.runs)}.json"
        event_file.write_text(json.dumps(payload))
        (self.tmp / "runner").mkdir(exist_ok=True)
        return {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event_file),
            "GITHUB_REPOSITORY": self.gh.repository,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": self.gh.api_url,
            "GITHUB_GRAPHQL_URL": self.gh.graphql_url,
            "GITHUB_WORKSPACE": str(self.ws),
            "GITHUB_STEP_SUMMARY": str(self.tmp / "step-summary.md"),
            "GITHUB_OUTPUT": str(self.tmp / "output.txt"),
            "RUNNER_TEMP": str(self.tmp / "runner"),
            "OPENAI_API_KEY": KEY,
            "WHOLEREPO_RETRY_BACKOFF": "0.01",
        }

    def run(
        self,
        *args: str,
        event_name: str = "pull_request",
        event: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        base_url: bool = True,
    ) -> Result:
        environment = {**self.env(event_name, event), **(env or {})}
        argv = ["pr-review", "--github-pace", "0", *args]
        if base_url:
            argv[1:1] = ["--base-url", self.model.url]
        result = CliRunner().invoke(main, argv, env=environment, catch_exceptions=False)
        self.runs.append(result)
        assert "Traceback" not in result.output
        for secret in (TOKEN, KEY):
            assert secret not in result.stdout and secret not in result.stderr
            for path in self.tmp.rglob("*"):
                if path.is_file() and path.suffix in (".md", ".json", ".sarif", ".txt"):
                    assert secret not in path.read_text(errors="replace")
        assert self.gh.violations == []
        return result

    # -- what GitHub holds now --------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        comments = self.gh.summary_comments(self.number)
        assert len(comments) == 1, f"{len(comments)} summary comments"
        return comments[0]

    def inline_bodies(self) -> list[str]:
        return [c["body"] for c in self.gh.review_comments if c["in_reply_to_id"] is None]

    def outputs(self) -> dict[str, str]:
        values: dict[str, str] = {}
        text = (self.tmp / "output.txt").read_text()
        for match in re.finditer(r"^([\w-]+)=(.*)$", text, re.MULTILINE):
            values[match.group(1)] = match.group(2)
        return values


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(origin), str(dev))
    write_files(dev, BASE_FILES)
    git(dev, "add", "-A")
    git(dev, "commit", "-q", "--no-gpg-sign", "-m", "base")
    git(dev, "push", "-q", "origin", "HEAD:refs/heads/main")
    base = git(dev, "rev-parse", "HEAD").strip()
    git(dev, "checkout", "-q", "-b", "feature")
    head = _first_head(dev)
    git(dev, "push", "-q", "origin", "HEAD:refs/heads/feature")
    git(dev, "push", "-q", "origin", "HEAD:refs/pull/7/head")
    ws = tmp_path / "workspace"
    git(tmp_path, "clone", "-q", str(origin), str(ws))
    with FakeOpenAI() as model:
        gh = FakeGitHub(origin)
        gh.pulls[7] = PR(7, base, head)
        w = World(tmp_path, origin, dev, ws, gh, model)
        w.checkout()
        try:
            yield w
        finally:
            gh.close()


def _first_head(dev: Path) -> str:
    write_files(
        dev, {"app.py": APP + "\n\ndef sub(a, b):\n    return a + b\n", "README.md": "# hello\n\nsub()\n"}
    )
    git(dev, "add", "-A")
    git(dev, "commit", "-q", "--no-gpg-sign", "-m", "add sub")
    return git(dev, "rev-parse", "HEAD").strip()
