"""Which lines GitHub accepts a review comment on: hunks from GitHub's patches and from git agree,
and every anchor we allow, the GitHub stand-in accepts (every one we refuse, it answers 422)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from conftest import git, write_files
from support.fake_github import PR, FakeGitHub, pull_files
from wholerepo.publish import inline, summary
from wholerepo.publish.hunks import from_api, from_git
from wholerepo.publish.state import State, encode
from wholerepo.publish.workspace import diff_text
from wholerepo.reviewer.findings import Finding
from wholerepo.reviewer.result import ReviewResult

TOKEN = "ghs_test_token_0123456789abcdef"
LONG = "".join(f"line {n}\n" for n in range(1, 51))
PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256))


@pytest.fixture
def pr(tmp_path: Path) -> tuple[Path, str, str]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    write_files(
        repo,
        {
            "long.txt": LONG,
            "gone.py": "a = 1\nb = 2\n",
            "old_name.py": "".join(f"value_{n} = {n}\n" for n in range(1, 21)),
            "logo.png": PNG,
            "shrink.py": "one\ntwo\nthree\nfour\nfive\n",
        },
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-gpg-sign", "-m", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    lines = LONG.splitlines(keepends=True)
    lines[1] = "line 2 changed\n"  # a hunk near the top
    lines[39] = "line 40 changed\n"  # another far below
    lines.insert(45, "inserted\n")
    renamed = "".join(f"value_{n} = {n}\n" for n in range(1, 21)).replace("value_10 = 10", "value_10 = 100")
    write_files(
        repo,
        {
            "long.txt": "".join(lines),
            "new.py": "print('new')\nprint('more')\n",
            "logo.png": PNG + b"\0changed",
            "shrink.py": "one\nfive\n",
        },
    )
    (repo / "gone.py").unlink()
    (repo / "old_name.py").unlink()
    write_files(repo, {"new_name.py": renamed})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-gpg-sign", "-m", "head")
    head = git(repo, "rev-parse", "HEAD").strip()
    return repo, base, head


def test_github_patches_and_git_give_the_same_table(pr: tuple[Path, str, str]) -> None:
    repo, base, head = pr
    api = from_api(pull_files(repo, base, head))
    local = from_git(diff_text(repo, base, head))
    assert api.files.keys() == local.files.keys()
    for path, diff in api.files.items():
        other = local.files[path]
        assert (diff.hunks, diff.added, diff.has_patch) == (other.hunks, other.added, other.has_patch), path
    long = api.files["long.txt"]
    assert long.status == "modified" and len(long.hunks) == 2
    assert {2, 40, 46} <= long.added
    assert api.files["new.py"].status == "added" and api.files["new.py"].hunks == ((1, 2),)
    assert api.files["gone.py"].status == "removed" and not api.files["gone.py"].has_patch
    assert api.files["new_name.py"].status == "renamed" and api.files["new_name.py"].old_path == "old_name.py"
    assert api.renames() == {"old_name.py": "new_name.py"}
    assert not api.files["logo.png"].has_patch  # binary: no patch, no comment
    assert api.files["shrink.py"].added == frozenset()  # deletions only: context lines remain
    assert api.files["shrink.py"].hunks  # ... and they take comments on the RIGHT side


CASES = [
    # (path, start, end, accepted)
    ("long.txt", 2, 2, True),
    ("long.txt", 1, 5, True),  # context lines of the first hunk
    ("long.txt", 40, 40, True),
    ("long.txt", 44, 47, True),
    ("long.txt", 20, 20, False),  # between the hunks
    ("long.txt", 2, 40, False),  # spans two hunks
    ("long.txt", 5, 8, False),  # starts in a hunk, ends outside it
    ("new.py", 1, 2, True),
    ("new_name.py", 10, 10, True),
    ("new_name.py", 1, 1, False),
    ("gone.py", 1, 1, False),
    ("logo.png", 1, 1, False),
    ("shrink.py", 1, 2, True),
    ("untouched.py", 1, 1, False),
]


@pytest.mark.parametrize(("path", "start", "end", "accepted"), CASES)
def test_an_anchor_we_allow_is_one_github_accepts(
    pr: tuple[Path, str, str], path: str, start: int, end: int, accepted: bool
) -> None:
    repo, base, head = pr
    table = from_api(pull_files(repo, base, head))
    anchor, why = table.anchor(path, start, end)
    assert (anchor is not None) == accepted, why
    with FakeGitHub(repo) as gh:
        gh.pulls[1] = PR(1, base, head)
        fields = anchor.comment_fields() if anchor else {"path": path, "line": end, "side": "RIGHT"}
        if anchor is None and start < end:
            fields.update(start_line=start, start_side="RIGHT")
        answer = requests.post(
            f"{gh.api_url}/repos/{gh.repository}/pulls/1/reviews",
            json={"commit_id": head, "event": "COMMENT", "body": "x", "comments": [{**fields, "body": "c"}]},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == (200 if accepted else 422), answer.text
        assert gh.violations == []


def test_a_one_line_comment_never_sends_start_line() -> None:
    """GitHub answers 422 to start_line == line."""
    from wholerepo.publish.hunks import Anchor

    assert "start_line" not in Anchor("a.py", 3, None).comment_fields()
    assert "start_line" not in Anchor("a.py", 3, 3).comment_fields()
    assert Anchor("a.py", 5, 3).comment_fields()["start_line"] == 3


def _finding(**kw: object) -> Finding:
    base: dict[str, object] = dict(
        path="long.txt",
        start_line=2,
        end_line=2,
        severity="high",
        category="bug",
        title="t",
        body="b",
        suggestion=None,
        quote=None,
        fingerprint="0" * 32,
    )
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def test_a_suggestion_spanning_two_hunks_stays_in_the_summary(pr: tuple[Path, str, str]) -> None:
    repo, base, head = pr
    table = from_api(pull_files(repo, base, head))
    head_lines = {"long.txt": git(repo, "show", f"{head}:long.txt").split("\n")}
    spanning = _finding(start_line=2, end_line=40, replacement="x\n" * 39, fingerprint="1" * 32)
    single = _finding(start_line=2, end_line=2, replacement="line 2 fixed", fingerprint="2" * 32)
    planned, held = inline.select(
        [spanning, single], table, head_lines, enabled=True, cap=10, min_severity="low"
    )
    assert [p.finding.fingerprint for p in planned] == ["2" * 32]
    assert planned[0].suggestion == "line 2 fixed"
    assert "```suggestion\nline 2 fixed\n```" in planned[0].comment()["body"]
    [kept] = held
    assert kept.finding is spanning and "more than one hunk" in kept.reason
    result = ReviewResult("", (spanning, single), (), "m", "http://x", "deepseek-v4", 10, "0")
    view = summary.Summary(
        result=result,
        open=[spanning, single],
        new=frozenset(),
        inline={"2" * 32: "inline comment"},
        held={kept.finding.fingerprint: kept.reason},
        fixed=[],
        dismissed=[],
        head_sha=head,
        blob_url="https://github.com/o/r/blob",
        commit_url="https://github.com/o/r/commit",
        mode="full review",
    )
    text = summary.render(view, encode(State()))
    assert "the lines span more than one hunk of the diff" in text
    assert text.rstrip().endswith("-->") and "<!-- wholerepo:summary -->" in text


@pytest.mark.parametrize(
    ("replacement", "offered"),
    [
        ("line 2 changed", False),  # changes nothing
        ("x <!-- wholerepo:summary --> y", False),  # could forge a marker
        ("x\x1b[31m", False),  # a control sequence
        ("", True),  # delete the line
        ("    fixed()", True),
        (None, False),
    ],
)
def test_a_suggestion_is_offered_only_when_it_applies_as_it_stands(
    replacement: str | None, offered: bool
) -> None:
    lines = ["line 1", "line 2 changed", "line 3"]
    got = inline.suggestion_for(_finding(replacement=replacement), lines)
    assert (got is not None) == offered


def test_the_summary_stays_under_githubs_limit_with_its_markers() -> None:
    many = [
        _finding(
            start_line=n,
            end_line=n,
            title=f"finding {n} " + "x" * 200,
            body="y" * 1500,
            fingerprint=f"{n:032x}",
        )
        for n in range(1, 400)
    ]
    result = ReviewResult("s" * 60_000, tuple(many), (), "m", "http://x", "deepseek-v4", 10, "0")
    view = summary.Summary(
        result=result,
        open=many,
        new=frozenset(),
        inline={},
        held={},
        fixed=[],
        dismissed=[],
        head_sha="a" * 40,
        blob_url="b",
        commit_url="c",
        mode="full review",
    )
    marker = encode(State(head="a" * 40))
    text = summary.render(view, marker)
    assert len(text) <= summary.BODY_LIMIT
    assert marker in text and "<!-- wholerepo:summary -->" in text
    assert "more findings did not fit" in text
