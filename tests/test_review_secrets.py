"""A review of a repository holding the seeded secrets sends none of them.

The bytes the loopback endpoint received are searched for every secret value, including the
values a ``--base`` diff removes (they would appear on its ``-`` lines).
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from conftest import MakeRepo, git
from fake_openai import Chat, FakeOpenAI
from test_redact import GCP_JSON, PEM_BLOCK, PEM_LINES, SEEDS, source_for
from test_redact_corpus import leaky_repo
from wholerepo.cli import main

KEY = "sk-wire-7c6b5a4938271605f4e3"


def secrets() -> list[str]:
    return [s.value for s in SEEDS] + PEM_LINES


def received(fake: FakeOpenAI) -> bytes:
    return b"".join(r.body for r in fake.requests) + b"".join(
        "".join(f"{k}:{v}" for k, v in r.headers.items() if k != "authorization").encode()
        for r in fake.requests
    )


def review(fake: FakeOpenAI, repo: Path, *args: str) -> int:
    result = CliRunner().invoke(
        main,
        [
            "review",
            str(repo),
            "--base-url",
            fake.url,
            "--format",
            "json",
            "-o",
            str(repo.parent / "r.json"),
            *args,
        ],
        env={"DEEPSEEK_API_KEY": KEY, "WHOLEREPO_MAX_RETRIES": "0"},
        catch_exceptions=False,
    )
    assert "Traceback" not in result.output
    return result.exit_code


def test_review_sends_none_of_the_seeded_secrets(make_repo: MakeRepo) -> None:
    files = {f"conf/s{i:02d}.py": source_for(seed) for i, seed in enumerate(SEEDS)}
    files["conf/keys.py"] = 'KEY = """\n' + PEM_BLOCK + '"""\n'
    files["deploy/gcp-sa.json"] = GCP_JSON
    files[".env"] = "\n".join(f"S{i}={v}" for i, v in enumerate(secrets())) + "\n"
    repo = make_repo(files, name="leaky")
    with FakeOpenAI() as fake:
        fake.script(Chat(json.dumps({"summary": "ok", "findings": []})))
        assert review(fake, repo) == 0
        wire = received(fake)
    assert len(fake.chats) == 1
    assert b"[REDACTED:" in wire
    leaked = [s for s in secrets() if s.encode() in wire or json.dumps(s)[1:-1].encode() in wire]
    assert leaked == []


def test_secrets_removed_by_the_diff_are_not_sent_either(make_repo: MakeRepo) -> None:
    seeds = SEEDS[:8]
    repo = make_repo({f"s{i}.py": source_for(seed) for i, seed in enumerate(seeds)}, name="rotating")
    git(repo, "tag", "before")
    for i in range(len(seeds)):  # the change deletes every secret line
        (repo / f"s{i}.py").write_text('"""Settings."""\nimport os\nTOKEN = os.environ["TOKEN"]\n')
    git(repo, "commit", "-qam", "rotate", "--no-gpg-sign")
    with FakeOpenAI() as fake:
        fake.script(Chat(json.dumps({"summary": "ok", "findings": []})))
        assert review(fake, repo, "--base", "before") == 0
        wire = received(fake)
    user = "".join(m["content"] for m in fake.chats[0].json["messages"])
    assert "before" in user and "\n-" in user  # the diff is there, with its removed lines
    assert [s.value for s in seeds if s.value.encode() in wire] == []

    # The same review with --no-redact does send them: the check above can fail.
    with FakeOpenAI() as fake:
        fake.script(Chat(json.dumps({"summary": "ok", "findings": []})))
        assert review(fake, repo, "--base", "before", "--no-redact") == 0
        wire = received(fake)
    assert all(s.value.encode() in wire for s in seeds)


def test_review_sends_none_of_the_corpus_secrets(make_repo: MakeRepo) -> None:
    """Issue 11's shapes (notebooks, XML, connection strings, Secrets, names...) stay home too."""
    repo, values = leaky_repo(make_repo)
    with FakeOpenAI() as fake:
        fake.script(Chat(json.dumps({"summary": "ok", "findings": []})))
        assert review(fake, repo) == 0
        wire = received(fake)
    assert len(fake.chats) == 1 and b"[REDACTED:" in wire
    leaked = [v for v in values if v.encode() in wire or json.dumps(v)[1:-1].encode() in wire]
    assert leaked == []
