"""A new user's first runs, each as it was seen going wrong: local servers without keys, endpoints
that answer HTML, dry runs that must match the real run, subdirectories, earlier outputs and
virtual environments inside the repository, and the small things around them."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import wholerepo
from conftest import MakeRepo, git
from fake_openai import Chat, FakeOpenAI, Raw, Status, usage
from support.builders import APP, finding, reply
from wholerepo.cli import main

DS_KEY = "sk-deepseek-3f2e1d0c9b8a7f6e"
OA_KEY = "sk-openai-4a5b6c7d8e9f0a1b"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    environment = {"WHOLEREPO_RETRY_BACKOFF": "0.01", "WHOLEREPO_MAX_RETRIES": "2", **(env or {})}
    result = CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)
    assert "Traceback" not in result.output
    for key in (DS_KEY, OA_KEY):
        assert key not in result.output
    return result


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    return make_repo({"app.py": APP, "README.md": "# demo\n"}, name="demo")


# -- keys ---------------------------------------------------------------------------------------


def test_local_server_needs_no_key_and_never_gets_deepseeks(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Chat(reply(finding())))
    result = invoke("review", str(repo), "--base-url", fake.url, env={"DEEPSEEK_API_KEY": DS_KEY})
    assert result.exit_code == 0, result.stderr
    assert all("authorization" not in r.headers for r in fake.requests)
    assert all(DS_KEY.encode() not in r.body for r in fake.requests)


def test_local_server_gets_openai_key_or_the_named_one(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Chat(reply()), Chat(reply()))
    env = {"DEEPSEEK_API_KEY": DS_KEY, "OPENAI_API_KEY": OA_KEY}
    assert invoke("review", str(repo), "--base-url", fake.url, env=env).exit_code == 0
    named = invoke("review", str(repo), "--base-url", fake.url, "--api-key-env", "DEEPSEEK_API_KEY", env=env)
    assert named.exit_code == 0
    first, second = fake.chats
    assert first.headers["authorization"] == f"Bearer {OA_KEY}"
    assert second.headers["authorization"] == f"Bearer {DS_KEY}"


def test_401_from_a_keyless_local_server_names_the_variable(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Status(401, {"error": {"message": "Invalid API Key"}}))
    result = invoke("review", str(repo), "--base-url", fake.url)
    assert result.exit_code == 3
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "OPENAI_API_KEY" in error and "--api-key-env" in error


# -- endpoints that do not speak JSON -------------------------------------------------------------


def test_html_at_models_is_exit_3_with_the_body_saved(repo: Path, tmp_path: Path) -> None:
    page = b"<!DOCTYPE html><html><title>llama.cpp</title></html>"
    out = tmp_path / "out"
    with FakeOpenAI(models_raw=Raw(page, "text/html")) as server:
        result = invoke("review", str(repo), "--base-url", server.url, "--output-dir", str(out))
        assert server.chats == []  # stopped before the repository was sent
    assert result.exit_code == 3
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "the endpoint did not return JSON (check --base-url)" in error
    assert (out / "review.raw.txt").read_bytes() == page


@pytest.mark.parametrize(
    "raw",
    [Raw(b"<html>502 Bad Gateway</html>", "text/html"), Raw(b"data: {not json\n\n", "text/event-stream")],
)
def test_chat_reply_that_is_not_json_is_exit_3(
    fake: FakeOpenAI, repo: Path, tmp_path: Path, raw: Raw
) -> None:
    fake.script(raw, raw)
    result = invoke("review", str(repo), "--base-url", fake.url, "--output-dir", str(tmp_path / "o"))
    assert result.exit_code == 3, result.stderr
    assert "did not return JSON (check --base-url)" in result.stderr
    if raw.content_type == "text/html":
        assert (tmp_path / "o" / "review.raw.txt").read_bytes() == raw.body


# -- the dry run is the real run ------------------------------------------------------------------


def test_dry_run_reports_what_the_real_run_sends(make_repo: MakeRepo) -> None:
    files = {f"pkg{i % 3}/m{i}.py": f"VALUE_{i} = {i}\n" * 150 for i in range(12)}
    root = make_repo({**files, "app.py": APP})
    models = [{"id": "local-model", "object": "model", "max_model_len": 9000}]
    with FakeOpenAI(models=models) as server:
        dry = invoke("review", str(root), "--base-url", server.url, "--dry-run", "--max-output-tokens", "500")
        assert dry.exit_code == 0, dry.stderr
        assert "9,000 (endpoint /models)" in dry.stdout  # the window came from /models
        assert "local-model" in dry.stdout
        assert "do not fit and will not be sent" in dry.stdout and "pkg" in dry.stdout
        as_json = invoke(
            "review", str(root), "--base-url", server.url, "--dry-run", "--format", "json",
            "--max-output-tokens", "500",
        )  # fmt: skip
        planned = json.loads(as_json.stdout)
        server.script(Chat(reply(), usage=usage(planned["prompt_tokens"], 5)))
        real = invoke("review", str(root), "--base-url", server.url, "--max-output-tokens", "500",
                      "--manifest", str(root.parent / "m.json"), "--format", "json")  # fmt: skip
        assert real.exit_code == 0, real.stderr
        [chat] = server.chats
    assert chat.json["model"] == "local-model"
    assert (
        f"sending {planned['files_included']} files, {planned['prompt_tokens']:,} prompt tokens"
        in real.stderr
    )
    assert planned["not_sent"]["files"] > 0
    report = json.loads(real.stdout)
    over = [n for n in report["not_sent"] if n["reason"] == "over-budget"]
    assert len(over) == planned["not_sent"]["files"]
    manifest = json.loads((root.parent / "m.json").read_text())
    sent = {f["path"] for f in manifest["files"] if f["status"] == "included"}
    user = chat.json["messages"][1]["content"]
    assert all(f'<file path="{p}">' in user for p in sent)
    assert all(f'<file path="{n["path"]}">' not in user for n in over)


def test_one_served_model_is_used_and_several_need_a_choice(repo: Path) -> None:
    with FakeOpenAI(models=[{"id": "only-one", "object": "model"}]) as server:
        server.script(Chat(reply()))
        result = invoke("review", str(repo), "--base-url", server.url)
        assert result.exit_code == 0
        assert server.chats[0].json["model"] == "only-one"
        assert "serves one model, only-one: using it" in result.stderr
    two = [{"id": "a", "object": "model"}, {"id": "b", "object": "model"}]
    with FakeOpenAI(models=two) as server:
        result = invoke("review", str(repo), "--base-url", server.url)
        assert result.exit_code == 2 and "--model" in result.stderr and server.chats == []


# -- paths, outputs and what is packed --------------------------------------------------------------


def test_subdirectory_review_reports_repository_paths(
    make_repo: MakeRepo, fake: FakeOpenAI, tmp_path: Path
) -> None:
    root = make_repo({"services/api/app.py": APP, "README.md": "# r\n"})
    fake.script(Chat(reply(finding())), Chat(reply(finding(path="services/api/app.py"))))
    for _ in range(2):  # the model may cite the pack's path or the repository's
        out = tmp_path / f"out{len(fake.chats)}"
        result = invoke(
            "review", str(root / "services" / "api"), "--base-url", fake.url, "--output-dir", str(out)
        )
        assert result.exit_code == 0, result.stderr
        data = json.loads((out / "review.json").read_text())
        assert [f["path"] for f in data["verified"]] == ["services/api/app.py"]
        sarif = json.loads((out / "review.sarif").read_text())
        [res] = sarif["runs"][0]["results"]
        location = res["locations"][0]["physicalLocation"]["artifactLocation"]
        assert location == {"uri": "services/api/app.py", "uriBaseId": "%SRCROOT%"}
        assert "services/api/app.py:2" in (out / "review.md").read_text()


def test_earlier_outputs_are_never_packed_again(make_repo: MakeRepo, fake: FakeOpenAI) -> None:
    root = make_repo({"app.py": APP})
    assert (
        invoke(
            "pack", str(root), "-o", str(root / "repo.xml"), "--manifest", str(root / "files.json")
        ).exit_code
        == 0
    )
    assert invoke("pack", str(root), "--style", "markdown", "-o", str(root / "repo.md")).exit_code == 0
    fake.script(Chat(reply(finding())))
    out = root / "reports"
    assert invoke("review", str(root), "--base-url", fake.url, "--output-dir", str(out)).exit_code == 0
    (out / "review.raw.txt").write_text("not json at all\n")
    renamed = root / "old-review.txt"
    renamed.write_text((out / "review.md").read_text())
    result = wholerepo.pack(root, cache=False)
    reasons = {f.path: f.reason for f in result.files}
    expected = ["repo.xml", "files.json", "repo.md", "reports/review.md", "reports/review.json",
                "reports/review.sarif", "reports/review.raw.txt", "old-review.txt"]  # fmt: skip
    assert {p: reasons[p] for p in expected} == dict.fromkeys(expected, "wholerepo-output")
    assert reasons["app.py"] is None


def test_code_that_quotes_the_markers_is_still_packed(make_repo: MakeRepo) -> None:
    # wholerepo's own sources quote every marker; a project that does the same is packed whole.
    root = make_repo(
        {
            "detect.py": (
                'INTRO = b"chosen and ordered by wholerepo"\n'
                'MARK = \'"generator": "wholerepo"\'\n'
                'SARIF = \'"id": "wholerepo/review"\'\n'
                'GENERATED = re.compile(rb"@generated\\b")\n'
            ),
            "doc.md": "Files with `@generated` in a comment are skipped.\n",
            "gen.go": "// Code generated by stringer. DO NOT EDIT.\npackage x\n",
            "gen.js": "/**\n * @generated\n */\nvar x = 1;\n",
            "gen.sql": "-- @generated by a tool\nselect 1;\n",
        }
    )
    reasons = {f.path: f.reason for f in wholerepo.pack(root, cache=False).files}
    assert reasons == {
        "detect.py": None,
        "doc.md": None,
        "gen.go": "generated",
        "gen.js": "generated",
        "gen.sql": "generated",
    }


def test_an_earlier_pack_too_large_to_read_is_still_named_as_one(make_repo: MakeRepo) -> None:
    root = make_repo({"app.py": APP, "big.py": "x = 1\n" * 50_000})
    assert (
        invoke("pack", str(root), "-o", str(root / "repo.xml"), "--max-file-size", "10000000").exit_code == 0
    )
    result = wholerepo.pack(root, cache=False, max_file_size=100_000)
    reasons = {f.path: f.reason for f in result.files}
    assert reasons["repo.xml"] == "wholerepo-output"
    assert reasons["big.py"] == "too-large"


def test_virtual_environments_and_node_modules_are_vendored(make_repo: MakeRepo) -> None:
    root = make_repo(
        {
            "app.py": APP,
            "venv/pyvenv.cfg": "home = /usr/bin\n",
            "venv/lib/python3.11/site-packages/six.py": "X = 1\n",
            "env2/pyvenv.cfg": "home = /usr/bin\n",
            "env2/bin/activate": "echo hi\n",
            "web/node_modules/left-pad/index.js": "module.exports = 1\n",
            "vendor/modules.txt": "# github.com/x/y v1\n",
            "vendor/github.com/x/y/y.go": "package y\n",
            "src/vendor_utils.py": "Y = 2\n",  # a name, not a vendored tree
        },
        commit=False,
    )
    result = invoke("pack", str(root), "-o", str(root.parent / "out.xml"))
    assert result.exit_code == 0
    pack = wholerepo.pack(root, cache=False)
    vendored = sorted(f.path for f in pack.files if f.reason == "vendored")
    assert vendored == [
        "env2/bin/activate", "env2/pyvenv.cfg", "vendor/github.com/x/y/y.go", "vendor/modules.txt",
        "venv/lib/python3.11/site-packages/six.py", "venv/pyvenv.cfg", "web/node_modules/left-pad/index.js",
    ]  # fmt: skip
    assert {f.path for f in pack.included} == {"app.py", "src/vendor_utils.py"}
    assert "files of vendored trees:" in result.stderr and "web/node_modules/" in result.stderr


def test_output_directory_is_created_before_anything_is_sent(
    fake: FakeOpenAI, repo: Path, tmp_path: Path
) -> None:
    fake.script(Chat(reply(finding())))
    target = tmp_path / "new" / "dir" / "review.sarif"
    result = invoke("review", str(repo), "--base-url", fake.url, "-o", str(target))
    assert result.exit_code == 0
    assert json.loads(target.read_text())["version"] == "2.1.0"


def test_output_that_cannot_be_created_stops_before_sending(
    fake: FakeOpenAI, repo: Path, tmp_path: Path
) -> None:
    (tmp_path / "blocker").write_text("x\n")
    result = invoke("review", str(repo), "--base-url", fake.url, "-o", str(tmp_path / "blocker" / "r.md"))
    assert result.exit_code == 2
    assert fake.requests == []


def test_files_get_the_usual_permissions_unless_unredacted(repo: Path, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        assert invoke("pack", str(repo), "-o", str(tmp_path / "a.xml")).exit_code == 0
        assert invoke("pack", str(repo), "--no-redact", "-o", str(tmp_path / "b.xml")).exit_code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.xml").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.xml").stat().st_mode) == 0o600


# -- smaller things -------------------------------------------------------------------------------


def test_conflicting_line_number_flags(repo: Path) -> None:
    result = invoke("pack", str(repo), "--line-numbers", "all", "--no-line-numbers")
    assert result.exit_code == 2 and "contradict" in result.stderr
    assert invoke("pack", str(repo), "--line-numbers", "none", "--no-line-numbers", "-q").exit_code == 0


def test_include_that_matches_nothing(repo: Path) -> None:
    result = invoke("pack", str(repo), "-i", "*.rs")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "'*.rs'" in line and "gitignore syntax" in line
    partly = invoke("pack", str(repo), "-q", "-i", "*.py", "-i", "*.rs")
    assert partly.exit_code == 0 and "--include '*.rs' matches no file" in partly.stderr


def test_empty_diff_warns_and_reviews_plainly(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Chat(reply(finding())))
    result = invoke("review", str(repo), "--base-url", fake.url, "--base", "HEAD", "--fail-on", "high")
    assert "the diff against HEAD is empty" in result.stderr
    user = fake.chats[0].json["messages"][1]["content"]
    assert "<untrusted_diff>" not in user and "HEAD" not in user.split("</untrusted_repository>")[1]
    assert result.exit_code == 1  # no diff: every finding is in scope


def test_fail_on_scope(fake: FakeOpenAI, make_repo: MakeRepo) -> None:
    root = make_repo({"app.py": APP, "other.py": "X = 1\n"})
    git(root, "checkout", "-q", "-b", "feature")
    (root / "other.py").write_text("X = 2\n")
    git(root, "commit", "-qam", "change other.py")
    base = ("review", str(root), "--base-url", fake.url, "--base", "main", "--fail-on", "high")
    fake.script(*(Chat(reply(finding())) for _ in range(3)))
    outside = invoke(*base)  # the finding is on app.py, which the change did not touch
    assert outside.exit_code == 0, outside.stderr
    assert (
        "not failing the run for high bug at app.py:2: it is outside the diff (--fail-on-scope all counts it)"
        in outside.stderr
    )
    everywhere = invoke(*base, "--fail-on-scope", "all")
    assert everywhere.exit_code == 1
    assert (
        "failing the run (--fail-on high, scope all): high bug at app.py:2: add() subtracts"
        in everywhere.stderr
    )
    assert invoke(*base, "--fail-on-scope", "diff").exit_code == 0


def test_singular_and_retry_lines_in_ci(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Status(503), Chat(reply(finding())))
    result = invoke("review", str(repo), "--base-url", fake.url, env={"CI": "true"})
    assert result.exit_code == 0
    assert "wholerepo: 1 verified finding (1 high)" in result.stderr
    assert "wholerepo: 503 from the endpoint, retry 1/2 in 0 s" in result.stderr
    assert "reply complete after" in result.stderr


def test_pack_api_rejects_unknown_options(repo: Path) -> None:
    with pytest.raises(TypeError, match="bogus"):
        wholerepo.pack(repo, bogus=1)


def test_models_default_timeout_is_short() -> None:
    result = CliRunner().invoke(main, ["models", "--help"])
    assert "[default: 20]" in result.stdout


def test_a_key_sent_over_plain_http_off_this_machine_is_warned_about(repo: Path) -> None:
    env = {"OPENAI_API_KEY": OA_KEY}
    far = invoke("review", str(repo), "--dry-run", "--base-url", "http://llm.invalid/v1", env=env)
    assert far.exit_code == 0, far.stderr  # the host does not resolve: the dry run goes on
    assert "the API key (OPENAI_API_KEY) goes to llm.invalid over plain http" in far.stderr
    for url in (
        "https://llm.invalid/v1",
        "http://localhost:9/v1",
        "http://127.0.0.1:9/v1",
        "http://[::1]:9/v1",
    ):
        near = invoke("review", str(repo), "--dry-run", "--base-url", url, env=env)
        assert near.exit_code == 0, (url, near.stderr)
        assert "plain http" not in near.stderr, url
    keyless = invoke("review", str(repo), "--dry-run", "--base-url", "http://llm.invalid/v1")
    assert "plain http" not in keyless.stderr  # no key, nothing to read
