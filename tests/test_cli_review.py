"""`wholerepo review` and `wholerepo models` through the CLI, against a real loopback endpoint.

Every exit code is reached here; every test checks that the API key appears nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conftest import MakeRepo, git
from fake_openai import CONTEXT_400, Chat, FakeOpenAI, Interrupt, ResetAfter, Stall, Status, usage
from support.builders import APP, finding, reply
from wholerepo.cli import main

KEY = "sk-cli-0d9e8f7a6b5c4d3e2f1a"
SECRET_OUTSIDE = "OUTSIDE-THE-REPO-8c1f"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def repo(make_repo: MakeRepo, tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_text(SECRET_OUTSIDE + "\n")
    return make_repo({"app.py": APP, "README.md": "# demo\n"}, name="demo")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def review(fake: FakeOpenAI, repo: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    environment = {
        "OPENAI_API_KEY": KEY,  # the key of a non-DeepSeek host
        "WHOLEREPO_RETRY_BACKOFF": "0.01",
        "WHOLEREPO_RETRY_AFTER_CAP": "0.05",
        "WHOLEREPO_MAX_RETRIES": "2",
    }
    environment.update(env or {})
    result = CliRunner().invoke(
        main, ["review", str(repo), "--base-url", fake.url, *args], env=environment, catch_exceptions=False
    )
    assert "Traceback" not in result.output
    assert KEY not in result.stdout and KEY not in result.stderr
    return result


def assert_no_key_in(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# -- exit 0 and 1 ---------------------------------------------------------------------------------


def test_fenced_json_markdown_to_stdout(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Chat("```json\n" + reply(finding()) + "\n```\n"))
    result = review(fake, repo)
    assert result.exit_code == 0, result.stderr
    assert "app.py:2" in result.stdout
    assert "return a - b" in result.stdout
    [chat] = fake.chats
    assert chat.headers["authorization"] == f"Bearer {KEY}"
    body = chat.json
    assert body["max_tokens"] == 32768
    assert body["model"] == "deepseek-flash"
    assert body["response_format"] == {"type": "json_object"}
    assert "thinking" not in body


def test_fail_on_threshold_gives_exit_1(fake: FakeOpenAI, repo: Path, out: Path) -> None:
    fake.script(Chat(reply(finding(severity="medium"))), Chat(reply(finding(severity="medium"))))
    below = review(fake, repo, "--fail-on", "high", "--output-dir", str(out))
    assert below.exit_code == 0
    at = review(fake, repo, "--fail-on", "medium", "--output-dir", str(out))
    assert at.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == ["review.json", "review.md", "review.sarif"]
    assert_no_key_in(out)


def test_prose_wrapped_json_and_all_formats(fake: FakeOpenAI, repo: Path, out: Path) -> None:
    text = "Here is my review of the code.\n\n" + reply(finding()) + "\n\nLet me know if you need more."
    fake.script(Chat(text, usage=usage(5000, 120, hit=4096, reasoning=30)))
    result = review(
        fake,
        repo,
        "--format",
        "json",
        "--format",
        "sarif",
        "--output-dir",
        str(out),
        "--max-output-tokens",
        "999",
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["review.json", "review.sarif"]
    data = load(out / "review.json")
    assert [(f["path"], f["start_line"]) for f in data["verified"]] == [("app.py", 2)]
    assert data["usage"]["cache_hit_tokens"] == 4096
    assert data["usage"]["reasoning_tokens"] == 30
    assert data["cost_usd"] == pytest.approx((4096 * 0.006 + 904 * 0.30 + 120 * 1.20) / 1e6, abs=1e-6)
    assert data["endpoint_prompt_tokens"] == 5000
    assert data["prompt_tokens"] != 5000 and any("tokenizer differs" in w for w in data["warnings"])
    sarif = load(out / "review.sarif")
    assert len(sarif["runs"][0]["results"]) == 1
    assert fake.chats[0].json["max_tokens"] == 999
    assert "cache" in result.stderr and "cost $" in result.stderr


def test_wrong_line_right_quote_moves_the_finding(fake: FakeOpenAI, repo: Path, out: Path) -> None:
    fake.script(Chat(reply(finding(start_line=5, end_line=5))))
    result = review(fake, repo, "--format", "json", "-o", str(out / "r.json"))
    assert result.exit_code == 0
    [moved] = load(out / "r.json")["verified"]
    assert (moved["start_line"], moved["moved_from"]) == (2, 5)


def test_hostile_and_ghost_paths_are_unverified_and_never_opened(
    fake: FakeOpenAI, repo: Path, out: Path
) -> None:
    items = [
        finding(path="../../etc/passwd", quote="root:x:0:0"),
        finding(path="../secret.txt", quote=SECRET_OUTSIDE),
        finding(path="/etc/hostname", quote=None),
        finding(path="ghost/missing.py", quote=None),
    ]
    fake.script(Chat(reply(*items)))
    result = review(fake, repo, "--output-dir", str(out), "--fail-on", "info")
    assert result.exit_code == 0  # nothing verified, so nothing to fail on
    data = load(out / "review.json")
    assert data["verified"] == []
    assert len(data["unverified"]) == 4
    assert load(out / "review.sarif")["runs"][0]["results"] == []
    for path in out.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "root:x:0:0:root" not in text  # /etc/passwd's content was never read
        assert SECRET_OUTSIDE not in text.replace('"quote": "' + SECRET_OUTSIDE, "")
    assert "Unverified" in (out / "review.md").read_text(encoding="utf-8")


def test_429_with_retry_after_then_success(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Status(429, headers={"Retry-After": "2"}), Chat(reply(finding())))
    result = review(fake, repo, "--fail-on", "high")
    assert result.exit_code == 1
    assert len(fake.chats) == 2


def test_503_then_success(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Status(503), Chat(reply()))
    result = review(fake, repo)
    assert result.exit_code == 0
    assert len(fake.chats) == 2


def test_blank_reply_is_retried_once(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Chat("    "), Chat(reply(finding())))
    result = review(fake, repo, "--fail-on", "low")
    assert result.exit_code == 1
    assert len(fake.chats) == 2


def test_reset_mid_stream_then_success(fake: FakeOpenAI, repo: Path) -> None:
    full = reply(finding())
    fake.script(ResetAfter(full[:40]), Chat(full))
    result = review(fake, repo, "--fail-on", "high")
    assert result.exit_code == 1
    assert len(fake.chats) == 2


def test_non_streaming_with_leading_blank_lines(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Chat(reply(finding()), keepalives=6))
    result = review(fake, repo, "--fail-on", "high", env={"WHOLEREPO_STREAM": "false"})
    assert result.exit_code == 1
    assert not fake.chats[0].json.get("stream")


def test_repository_prefix_is_byte_identical_across_runs(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Chat(reply()), Chat(reply()))
    assert review(fake, repo).exit_code == 0
    assert review(fake, repo, "--prompt", "security").exit_code == 0
    first, second = (c.json["messages"] for c in fake.chats)
    assert first[0] == second[0]  # the system message
    end = "</untrusted_repository>\n"
    prefix = first[1]["content"][: first[1]["content"].index(end) + len(end)]
    assert "app.py" in prefix and second[1]["content"].startswith(prefix)
    assert first[1]["content"] != second[1]["content"]  # the instructions after it differ


def test_base_ref_marks_findings_in_diff(fake: FakeOpenAI, repo: Path, out: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "app.py").write_text(APP + "\n\ndef sub(a, b):\n    return a + b\n")
    git(repo, "commit", "-qam", "add sub")
    items = [finding(), finding(start_line=10, end_line=10, quote="return a + b", title="sub adds")]
    fake.script(Chat(reply(*items)))
    result = review(fake, repo, "--base", "main", "--format", "json", "-o", str(out / "r.json"))
    assert result.exit_code == 0, result.stderr
    data = load(out / "r.json")
    assert data["base_ref"] == "main"
    assert sorted((f["start_line"], f["in_diff"]) for f in data["verified"]) == [(2, False), (10, True)]
    user = fake.chats[0].json["messages"][1]["content"]
    assert user.index("</untrusted_repository>") < user.index("+    return a + b") < user.index("main`")


def test_models_command_lists_ids(repo: Path) -> None:
    models = [
        {"id": "b-model", "object": "model", "max_model_len": 65536},
        {"id": "a-model", "object": "model"},
    ]
    with FakeOpenAI(models=models) as server:
        result = CliRunner().invoke(
            main, ["models", "--base-url", server.url], env={"OPENAI_API_KEY": KEY}, catch_exceptions=False
        )
        assert result.exit_code == 0
        assert result.stdout == "a-model\nb-model\tmax_model_len=65536\n"
        assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


# -- dry run ---------------------------------------------------------------------------------------


def test_dry_run_sends_nothing_and_needs_no_key(fake: FakeOpenAI, repo: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["review", str(repo), "--base-url", fake.url, "--dry-run", "--format", "json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["prompt_tokens"] > data["repository_tokens"] > 0
    assert data["estimated_cost_usd"]["max_total"] > 0
    # It asks /models, as the real run does, and sends nothing else.
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/v1/models")]
    assert data["context_window_source"] == "default"
    text = CliRunner().invoke(main, ["review", str(repo), "--dry-run"], catch_exceptions=False)
    assert text.exit_code == 0
    assert f"{data['prompt_tokens']:,} exact" in text.stdout and "estimated cost" in text.stdout
    # DeepSeek without a key: /models cannot be asked, and the dry run says so.
    assert "did not ask the endpoint's /models: no API key (DEEPSEEK_API_KEY is not set)" in text.stdout


# -- exit 2 ---------------------------------------------------------------------------------------


def test_missing_deepseek_key_is_exit_2_with_a_hint(repo: Path) -> None:
    result = CliRunner().invoke(main, ["review", str(repo)], catch_exceptions=False)
    assert result.exit_code == 2
    assert "DEEPSEEK_API_KEY" in result.stderr and "--api-key-env" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["-o", "x.md", "--output-dir", "d"],
        ["--format", "json", "--format", "sarif"],
        ["--prompt", "no-such-prompt"],
        ["--base", "no-such-ref"],
        ["--fail-on", "severe"],
        ["--api-key-env", "UNSET_VARIABLE"],
        ["--budget", "5"],  # the user's budget, not the window, is too small: as in pack
        ["--base-url", "127.0.0.1:9/v1"],  # no scheme: said, not "unknown url type"
    ],
)
@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_usage_errors_are_exit_2(fake: FakeOpenAI, repo: Path, args: list[str], dry: bool) -> None:
    # A dry run checks what the real run checks: passing it means the real run starts.
    result = review(fake, repo, *args, *(["--dry-run"] if dry else []))
    if dry and args[0] == "--api-key-env":  # but it needs no key
        assert result.exit_code == 0, result.output
        assert "did not ask the endpoint's /models: no API key (UNSET_VARIABLE is not set)" in result.stdout
        return
    assert result.exit_code == 2, result.output
    assert fake.chats == []
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: ")
    if args[0] == "--budget":
        assert "--budget 5 is too small" in line and "raise --budget" in line
    if args[0] == "--base-url":
        assert "is not an http(s) URL" in line and "http://127.0.0.1:8080/v1" in line


def test_the_missing_key_hint_names_the_dry_run_only_where_there_is_one(repo: Path) -> None:
    review_ = CliRunner().invoke(main, ["review", str(repo)], catch_exceptions=False)
    models = CliRunner().invoke(main, ["models"], catch_exceptions=False)
    assert review_.exit_code == models.exit_code == 2
    assert "--dry-run needs no key" in review_.stderr
    assert "DEEPSEEK_API_KEY" in models.stderr and "--dry-run" not in models.stderr


def test_the_dry_run_says_a_default_window_is_a_guess(fake: FakeOpenAI, repo: Path, tmp_path: Path) -> None:
    text = review(fake, repo, "--dry-run").stdout
    assert "1,048,576 (default: the endpoint did not report its window; pass --context-window" in text
    user = tmp_path / "user.toml"
    user.write_text("context_window = 64000\n")
    data = json.loads(
        review(fake, repo, "--dry-run", "--format", "json", env={"WHOLEREPO_CONFIG": str(user)}).stdout
    )
    assert data["context_window"] == 64000
    assert data["context_window_source"] == f"context_window in {user}"
    env = {"WHOLEREPO_CONTEXT_WINDOW": "64000"}
    assert "64,000 (WHOLEREPO_CONTEXT_WINDOW)" in review(fake, repo, "--dry-run", env=env).stdout


# -- exit 3 ---------------------------------------------------------------------------------------


def test_context_length_400_names_our_count_and_the_flag(fake: FakeOpenAI, repo: Path) -> None:
    dry = CliRunner().invoke(main, ["review", str(repo), "--dry-run", "--format", "json"])
    count = json.loads(dry.stdout)["prompt_tokens"]
    fake.script(Status(400, CONTEXT_400))
    result = review(fake, repo)
    assert result.exit_code == 3
    assert f"{count:,} prompt tokens" in result.stderr
    assert "--context-window" in result.stderr and "--max-output-tokens" in result.stderr
    assert len(fake.chats) == 1  # never retried


def test_window_from_models_too_small_is_exit_3_before_sending(repo: Path) -> None:
    with FakeOpenAI(models=[{"id": "deepseek-flash", "object": "model", "max_model_len": 4096}]) as server:
        result = review(server, repo, "--max-output-tokens", "4000")
        assert result.exit_code == 3
        assert "4,096-token window (endpoint /models)" in result.stderr
        assert server.chats == []


def test_a_small_window_gets_a_smaller_default_output_limit(repo: Path) -> None:
    # A 32K llama.cpp server: the 32,768-token default would leave no room for the prompt.
    with FakeOpenAI(models=[{"id": "local", "object": "model", "max_model_len": 32768}]) as server:
        server.script(Chat(reply(finding())))
        result = review(server, repo)
        assert result.exit_code == 0, result.stderr
        [chat] = server.chats
        assert chat.json["max_tokens"] == 8192
        dry = json.loads(review(server, repo, "--dry-run", "--format", "json").stdout)
        assert (dry["max_output_tokens"], dry["max_output_tokens_source"]) == (
            8192,
            "a quarter of the window",
        )
        # Set anywhere, it is the user's value, even when it does not fit.
        env = {"WHOLEREPO_MAX_OUTPUT_TOKENS": "32768"}
        assert review(server, repo, "--dry-run", env=env).exit_code == 3
        # A model the endpoint does not list is named before anything is sent.
        named = json.loads(
            review(server, repo, "--dry-run", "--format", "json", "--model", "qwen-typo").stdout
        )
        assert (
            "the endpoint does not list the model qwen-typo (it lists local): check --model" in named["notes"]
        )
    with FakeOpenAI(models=[{"id": "big", "object": "model", "max_model_len": 1_048_576}]) as server:
        big = json.loads(review(server, repo, "--dry-run", "--format", "json").stdout)
        assert (big["max_output_tokens"], big["max_output_tokens_source"]) == (32768, "default")


def test_garbage_reply_saves_the_raw_reply(fake: FakeOpenAI, repo: Path, out: Path) -> None:
    garbage = "I am sorry, I cannot produce JSON today. {not json at all"
    fake.script(Chat(garbage))
    result = review(fake, repo, "--output-dir", str(out))
    assert result.exit_code == 3
    raw = out / "review.raw.txt"
    assert raw.read_text(encoding="utf-8") == garbage
    assert str(raw) in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert str(raw) in error


def test_garbage_reply_raw_goes_to_the_current_directory(
    fake: FakeOpenAI, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    fake.script(Chat("no json here"))
    result = review(fake, repo)
    assert result.exit_code == 3
    assert (work / "review.raw.txt").read_text(encoding="utf-8") == "no json here"
    assert "review.raw.txt" in result.stderr


def test_two_blank_replies_are_exit_3(fake: FakeOpenAI, repo: Path, out: Path) -> None:
    fake.script(Chat("   "), Chat("     "))
    result = review(fake, repo, "--output-dir", str(out))
    assert result.exit_code == 3
    assert "blank" in result.stderr
    assert len(fake.chats) == 2


def test_finish_reason_length_reports_complete_findings_as_partial(
    fake: FakeOpenAI, repo: Path, out: Path
) -> None:
    full = reply(finding(), finding(start_line=6, end_line=6, quote="print(add(1, 2))", title="second"))
    cut = full[: full.index('"second"') + 4]
    fake.script(Chat(cut, finish_reason="length"))
    result = review(fake, repo, "--output-dir", str(out), "--fail-on", "info")
    assert result.exit_code == 3
    assert "--max-output-tokens" in result.stderr
    data = load(out / "review.json")
    assert data["partial"] is True and "max-output-tokens" in data["partial_reason"]
    assert [f["start_line"] for f in data["verified"]] == [2]
    assert (out / "review.raw.txt").read_text(encoding="utf-8") == cut


def test_a_reply_cut_short_of_max_output_tokens_blames_the_window(
    fake: FakeOpenAI, repo: Path, out: Path
) -> None:
    # llama.cpp with a small n_ctx stops with "length" when its window fills, far below max_tokens.
    full = reply(finding(), finding(start_line=6, end_line=6, quote="print(add(1, 2))", title="second"))
    cut = full[: full.index('"second"') + 4]
    fake.script(Chat(cut, finish_reason="length", usage=usage(prompt=3900, completion=196)))
    result = review(fake, repo, "--output-dir", str(out), "--max-output-tokens", "2000")
    assert result.exit_code == 3
    error = result.stderr.strip().splitlines()[-1]
    assert "3,900 prompt + 196 output tokens" in error, error
    assert "--context-window" in error and "raise --max-output-tokens" not in error
    data = load(out / "review.json")
    assert data["partial"] is True and "context window" in data["partial_reason"]
    assert [f["start_line"] for f in data["verified"]] == [2]


def test_a_successful_run_removes_an_earlier_failures_raw_reply(
    fake: FakeOpenAI, repo: Path, out: Path
) -> None:
    fake.script(Chat("this is not json at all"))
    assert review(fake, repo, "--output-dir", str(out)).exit_code == 3
    assert (out / "review.raw.txt").exists()
    fake.script(Chat(reply(finding())))
    result = review(fake, repo, "--output-dir", str(out))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["review.json", "review.md", "review.sarif"]


def test_an_endpoint_host_that_does_not_resolve_fails_at_once(repo: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["review", str(repo), "--base-url", "http://llm.invalid/v1", "--model", "m"],
        env={"OPENAI_API_KEY": KEY, "WHOLEREPO_MAX_RETRIES": "4", "WHOLEREPO_RETRY_BACKOFF": "5"},
        catch_exceptions=False,
    )
    assert result.exit_code == 3
    assert "retry" not in result.stderr  # four retries would wait 5+10+20+40 s
    line = result.stderr.strip().splitlines()[-1]
    assert "cannot resolve llm.invalid" in line and "--base-url" in line, line


def test_resets_exhausted_write_partial_outputs(fake: FakeOpenAI, repo: Path, out: Path) -> None:
    full = reply(finding(), finding(start_line=6, end_line=6, quote="print(add(1, 2))", title="second"))
    cut = full[: full.index('"second"')]
    fake.script(ResetAfter(cut), ResetAfter(cut), ResetAfter(cut))
    result = review(fake, repo, "--output-dir", str(out))
    assert result.exit_code == 3
    assert len(fake.chats) == 3  # one try and WHOLEREPO_MAX_RETRIES=2 retries
    data = load(out / "review.json")
    assert data["partial"] is True
    assert [f["start_line"] for f in data["verified"]] == [2]
    assert_no_key_in(out)


def test_401_is_not_retried(fake: FakeOpenAI, repo: Path, out: Path) -> None:
    fake.script(Status(401, {"error": {"message": f"Authentication Fails, your api key: {KEY} is invalid"}}))
    result = review(fake, repo, "--output-dir", str(out))
    assert result.exit_code == 3
    assert "401" in result.stderr
    assert len(fake.chats) == 1
    assert not out.exists() or not any(out.iterdir())


def test_deadline_with_only_keepalives_is_exit_3(fake: FakeOpenAI, repo: Path) -> None:
    fake.script(Stall(seconds=3.0))
    result = review(fake, repo, "--timeout", "0.5")
    assert result.exit_code == 3
    assert "deadline" in result.stderr and "--timeout" in result.stderr


def test_unwritable_output_is_a_clear_error(fake: FakeOpenAI, repo: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fake.script(Chat(reply()))
    result = review(fake, repo, "-o", str(blocker / "review.md"))
    assert result.exit_code == 2
    assert "review.md" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


# -- exit 130 -------------------------------------------------------------------------------------


def test_ctrl_c_writes_the_findings_so_far(fake: FakeOpenAI, repo: Path, out: Path) -> None:
    full = reply(finding(), finding(start_line=6, end_line=6, quote="print(add(1, 2))", title="second"))
    fake.script(Interrupt(full[: full.index('"second"')]))
    result = review(fake, repo, "--output-dir", str(out))
    assert result.exit_code == 130
    assert "Interrupted" in result.stderr
    data = load(out / "review.json")
    assert data["partial"] is True
    assert [f["start_line"] for f in data["verified"]] == [2]


def test_a_dry_run_never_imports_the_sdk(repo: Path) -> None:
    # The SDK takes about a second to import: a dry run (and a pack) must not pay for it.
    import subprocess
    import sys

    code = (
        "import sys\nfrom wholerepo.cli import main\n"
        "try:\n    main(['review', sys.argv[1], '--dry-run', '-q'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('openai', 'httpx', 'httpx2') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(repo)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
