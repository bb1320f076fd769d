"""The review core: planning the request, prompts, diffs, prices, and run() against a real loopback server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import MakeRepo, git
from fake_openai import Chat, FakeOpenAI, usage
from support.builders import finding, reply
from support.scripted import ScriptedModel
from wholerepo.errors import ConfigError, EndpointError, UsageError
from wholerepo.git.diff import changed_lines, diff_against
from wholerepo.llm import Endpoint, pricing
from wholerepo.llm.base import EndpointFailed, ModelInfo, NotJSONError, Reply, Usage
from wholerepo.llm.openai_compat import OpenAICompatible
from wholerepo.packer import settings_for
from wholerepo.reviewer import (
    Plan,
    PromptTooLargeError,
    Window,
    dry_run_report,
    exit_code,
    plan,
    probe,
    review_blocking,
    run_blocking,
)
from wholerepo.reviewer.findings import example_reply, response_schema
from wholerepo.reviewer.prompts import BUILTIN, REPOSITORY_HEAD, SYSTEM, render_instructions
from wholerepo.settings import Settings
from wholerepo.tokens import get_tokenizer

APP = "def add(a, b):\n    return a - b\n\n\ndef main():\n    print(add(1, 2))\n"
WINDOW = Window(1_048_576, "default")


def test_plan_puts_the_repository_first_and_counts_exactly(make_repo: MakeRepo) -> None:
    repo = make_repo({"app.py": APP})
    p = plan(repo, settings_for(repo), WINDOW)
    assert p.system == SYSTEM
    assert p.user.startswith(REPOSITORY_HEAD + p.pack.text)
    assert p.user.endswith(p.instructions.text)
    assert "untrusted" in p.system and "untrusted" in p.user[: len(REPOSITORY_HEAD)]
    tok = get_tokenizer("deepseek-v4")
    assert p.prompt_tokens == tok.count(p.system) + tok.count(p.user)
    assert p.files == {"app.py": APP}
    # Budget = window - everything else (counted piece by piece) - the template margin - max_tokens.
    others = p.prompt_tokens - p.pack.prompt_tokens
    assert abs(p.budget - (WINDOW.tokens - others - 64 - p.max_tokens)) <= 4


def test_plan_is_byte_stable(make_repo: MakeRepo) -> None:
    repo = make_repo({"app.py": APP, "lib/util.py": "X = 1\n"})
    first = plan(repo, settings_for(repo), WINDOW)
    second = plan(repo, settings_for(repo), WINDOW)
    assert first.user == second.user
    assert first.prompt_tokens == second.prompt_tokens


def test_window_left_for_the_repository_shrinks_with_output_tokens(make_repo: MakeRepo) -> None:
    repo = make_repo({"app.py": APP})
    small = plan(repo, settings_for(repo, {"max_output_tokens": 1000}), Window(20_000, "--context-window"))
    large = plan(repo, settings_for(repo, {"max_output_tokens": 5000}), Window(20_000, "--context-window"))
    assert small.budget - large.budget == 4000


def test_prompt_that_cannot_fit_is_an_exit_3_error(make_repo: MakeRepo) -> None:
    repo = make_repo({"app.py": APP})
    with pytest.raises(PromptTooLargeError, match="--max-output-tokens") as info:
        plan(repo, settings_for(repo, {"max_output_tokens": 4000}), Window(4096, "--context-window"))
    assert info.value.exit_code == 3


def test_files_dropped_when_the_window_is_small(make_repo: MakeRepo) -> None:
    files = {f"m{i}.py": f"VALUE_{i} = {i}\n" * 200 for i in range(6)}
    repo = make_repo(files)
    p = plan(repo, settings_for(repo, {"max_output_tokens": 500}), Window(8000, "--context-window"))
    assert 0 < len(p.pack.included) < 6
    assert p.prompt_tokens + p.max_tokens <= 8000


def test_builtin_prompts_render_with_schema() -> None:
    schema = response_schema()
    for name in BUILTIN:
        text = render_instructions(name, schema=schema, example=example_reply()).text
        assert '"findings"' in text and "JSON" in text
        assert "critical" in text and "maintainability" in text


def test_diff_focus_in_prompt() -> None:
    text = render_instructions("review", schema={}, example="{}", base_ref="origin/main").text
    assert "origin/main" in text
    assert "origin/main" not in render_instructions("review", schema={}, example="{}").text


def test_custom_prompt_file_gets_the_reply_format(tmp_path: Path) -> None:
    custom = tmp_path / "mine.j2"
    custom.write_text("Check only the {{ 'error handling' }}.\n")
    rendered = render_instructions(str(custom), schema={"type": "object"}, example="{}")
    assert rendered.name == str(custom)
    assert rendered.text.startswith("Check only the error handling.")
    assert '"type": "object"' in rendered.text


def test_unknown_prompt_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        render_instructions("nope-not-a-file", schema={}, example="{}")
    assert "security" in info.value.one_line()


def test_broken_template_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.j2"
    bad.write_text("{{ undefined_name }}")
    with pytest.raises(UsageError, match=r"bad\.j2"):
        render_instructions(str(bad), schema={}, example="{}")


def test_changed_lines_of_a_unified_diff() -> None:
    diff = (
        "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,3 +1,4 @@\n x\n-y\n+Y\n+Z\n z\n"
        "@@ -10,1 +11,2 @@\n k\n+new\n"
        "diff --git a/gone.py b/gone.py\ndeleted file mode 100644\nindex 1234567..0000000\n"
        "--- a/gone.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
    )
    assert changed_lines(diff) == {"a.py": frozenset({2, 3, 12})}


def test_diff_against_a_real_ref(make_repo: MakeRepo) -> None:
    repo = make_repo({"app.py": APP, "other.py": "A = 1\n"})
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "app.py").write_text(APP.replace("a - b", "a + b") + "\n\ndef extra():\n    pass\n")
    git(repo, "commit", "-qam", "change")
    diff = diff_against(repo, "main")
    assert diff.changed == {"app.py": frozenset({2, 7, 8, 9, 10})}
    assert "+    return a + b" in diff.text
    with pytest.raises(UsageError, match="not a commit"):
        diff_against(repo, "no-such-ref")
    with pytest.raises(UsageError):
        diff_against(repo, "--output=/tmp/x")


def test_every_kind_of_change_parses(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "keep.py": "a\nb\nc\n",
            "gone.py": "bye\n",
            "script.sh": "echo hi\n",
            "img.bin": bytes(range(256)),
            "tail.txt": "no newline",
        }
    )
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "keep.py").write_text("a\nB\nc\nd\n")
    (repo / "gone.py").unlink()
    (repo / "script.sh").chmod(0o755)
    (repo / "img.bin").write_bytes(bytes(range(255, -1, -1)))
    (repo / "tail.txt").write_text("no newline, still")
    (repo / "empty.py").write_text("")
    (repo / "new dir").mkdir()
    (repo / "new dir" / "ünï code.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "every kind")
    diff = diff_against(repo, "main")
    by_path = {f.path or f.old_path: f for f in diff.files}
    assert by_path["keep.py"].added == frozenset({2, 4})
    assert by_path["gone.py"].path == "" and by_path["gone.py"].added == frozenset()
    assert by_path["img.bin"].binary
    assert by_path["tail.txt"].added == frozenset({1})
    assert by_path["new dir/ünï code.py"].added == frozenset({1})
    assert diff.changed["keep.py"] == frozenset({2, 4})
    assert [(h.start, h.end) for h in by_path["keep.py"].hunks] == [(1, 4)]


def test_diff_outside_git_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    with pytest.raises(UsageError, match="git repository"):
        diff_against(tmp_path, "main")


def test_prices_and_overrides() -> None:
    flash = pricing.price_for("deepseek-flash")
    assert flash is not None
    assert pricing.cost(
        flash, cache_hit_tokens=1_000_000, cache_miss_tokens=1_000_000, output_tokens=1_000_000
    ) == (pytest.approx(0.006 + 0.30 + 1.20))
    assert pricing.price_for("unknown-model") is None
    custom = pricing.price_for("mine", {"mine": {"cache_hit": 0.1, "cache_miss": 1.0, "output": 2.0}})
    assert custom == pricing.Price(0.1, 1.0, 2.0)
    half = pricing.price_for("deepseek-flash", {"deepseek-flash": {"output": 0.6}})
    assert half == pricing.Price(0.006, 0.30, 0.6)
    with pytest.raises(ConfigError):
        pricing.price_for("mine", {"mine": {"output": 1.0}})
    with pytest.raises(ConfigError):
        pricing.price_for("deepseek-flash", {"deepseek-flash": {"bogus": 1.0}})


def test_dry_run_report_numbers(make_repo: MakeRepo) -> None:
    repo = make_repo({"app.py": APP})
    p = plan(repo, settings_for(repo, {"max_output_tokens": 1000}), WINDOW)
    report = dry_run_report(p)
    assert report["prompt_tokens"] == p.prompt_tokens
    assert report["estimated_cost_usd"]["input_cache_miss"] == pytest.approx(
        p.prompt_tokens * 0.30 / 1e6, abs=1e-6
    )
    assert report["estimated_cost_usd"]["output_max"] == pytest.approx(1000 * 1.20 / 1e6)
    json.dumps(report)


def test_run_verifies_findings_and_reports_usage(make_repo: MakeRepo) -> None:
    repo = make_repo({"app.py": APP})
    p = plan(repo, settings_for(repo), WINDOW)
    reply = {
        "summary": "one bug",
        "findings": [
            {
                "path": "app.py",
                "start_line": 2,
                "end_line": 2,
                "severity": "high",
                "category": "bug",
                "title": "subtracts",
                "body": "add subtracts",
                "suggestion": "a + b",
                "quote": "return a - b",
            },
            {
                "path": "../../etc/passwd",
                "start_line": 1,
                "end_line": 1,
                "severity": "critical",
                "category": "security",
                "title": "x",
                "body": "y",
                "suggestion": None,
                "quote": None,
            },
        ],
    }
    with FakeOpenAI() as server:
        server.script(Chat(json.dumps(reply), usage=usage(p.prompt_tokens + 5, 40, hit=0)))
        model = OpenAICompatible(Endpoint(server.url, "deepseek-flash", "k", retry_backoff=0.01))
        outcome = review_blocking(p, model, tool_version="9.9")
    assert outcome.error is None and outcome.result is not None
    result = outcome.result
    assert [(f.path, f.start_line) for f in result.verified] == [("app.py", 2)]
    assert [u.path for u in result.unverified] == ["../../etc/passwd"]
    assert result.endpoint_prompt_tokens == p.prompt_tokens + 5
    assert result.warnings == ()
    assert result.cost_usd == pytest.approx(((p.prompt_tokens + 5) * 0.30 + 40 * 1.20) / 1e6, abs=1e-6)
    assert exit_code(result, "high") == 1
    assert exit_code(result, "critical") == 0
    assert exit_code(result, "none") == 0


def test_tokenizer_mismatch_warning(make_repo: MakeRepo) -> None:
    repo = make_repo({"app.py": APP})
    p = plan(repo, settings_for(repo), WINDOW)
    with FakeOpenAI() as server:
        server.script(Chat('{"summary": "ok", "findings": []}', usage=usage(p.prompt_tokens + 500, 3)))
        model = OpenAICompatible(Endpoint(server.url, "deepseek-flash", "k"))
        outcome = review_blocking(p, model, tool_version="1")
    assert outcome.result is not None
    [warning] = outcome.result.warnings
    assert str(p.prompt_tokens + 500) in warning.replace(",", "")
    assert "--budget" in warning and "--tokenizer" not in warning  # V4 is already the right one


@pytest.mark.parametrize(
    ("endpoint", "ours", "model", "expected"),
    [
        (1000, 1000, "deepseek-flash", None),
        (1050, 1000, "deepseek-flash", None),  # within the chat template's margin
        (101_000, 100_000, "deepseek-flash", None),  # 1 %: not worth a warning
        (103_000, 100_000, "deepseek-flash", "--budget"),
        (103_000, 100_000, "gpt-4o-mini", "--tokenizer o200k_base"),
        (90_000, 100_000, "llama-3.1-8b", "--budget"),
    ],
)
def test_drift_warning_threshold_and_advice(
    endpoint: int, ours: int, model: str, expected: str | None
) -> None:
    from wholerepo.reviewer import drift_warning

    warning = drift_warning(endpoint, ours, "deepseek-v4", model)
    if expected is None:
        assert warning is None
    else:
        assert warning is not None and expected in warning
        # Never a tokenizer that does not exist for the model.
        assert "--tokenizer" not in warning or model.startswith("gpt")


# -- around the endpoint, in-process (ScriptedModel) ----------------------------------------------


def scripted_plan(make_repo: MakeRepo) -> Plan:
    repo = make_repo({"app.py": APP})
    return plan(repo, settings_for(repo), WINDOW, model="scripted")


def test_run_turns_a_scripted_reply_into_a_result(make_repo: MakeRepo) -> None:
    p = scripted_plan(make_repo)
    model = ScriptedModel().then(reply(finding(), finding(path="../../etc/passwd")))
    outcome = review_blocking(p, model, tool_version="1")
    assert outcome.error is None and outcome.result is not None
    assert [f.path for f in outcome.result.verified] == ["app.py"]
    assert [u.reason for u in outcome.result.unverified] == ["unsafe-path"]
    assert model.requests[0].user == p.user and model.closed == 1


def test_a_reply_cut_at_max_tokens_keeps_its_complete_findings(make_repo: MakeRepo) -> None:
    p = scripted_plan(make_repo)
    text = reply(finding(), finding(title="second"))
    cut = text[: text.index('"title": "second"')]  # the second finding is incomplete
    model = ScriptedModel().then(Reply(cut, "", "length", Usage(100, 32768), True, 1))
    outcome = review_blocking(p, model, tool_version="1")
    assert outcome.result is not None and outcome.result.partial
    assert [f.title for f in outcome.result.verified] == ["add() subtracts"]
    assert outcome.error is not None and "--max-output-tokens" in outcome.error.one_line()
    assert outcome.raw == cut


def test_retries_exhausted_mid_reply_keep_what_arrived(make_repo: MakeRepo) -> None:
    p = scripted_plan(make_repo)
    partial = reply(finding(), finding(title="second"))[:-10]  # the second finding is cut
    model = ScriptedModel().then(EndpointFailed("gave up after 5 attempts", partial=partial))
    outcome = review_blocking(p, model, tool_version="1")
    assert outcome.result is not None and outcome.result.partial
    assert len(outcome.result.verified) == 1 and outcome.raw == partial


def test_a_non_json_endpoint_leaves_its_body_for_saving(make_repo: MakeRepo) -> None:
    p = scripted_plan(make_repo)
    model = ScriptedModel().then(NotJSONError("the endpoint did not return JSON", raw="<html>"))
    outcome = review_blocking(p, model, tool_version="1")
    assert outcome.result is None and outcome.raw == "<html>" and outcome.error is not None


def test_probe_takes_the_only_model_and_its_window() -> None:
    model = ScriptedModel(models=[ModelInfo("solo", 32_768)])
    found = run_blocking(probe(Settings(base_url="http://127.0.0.1:1/v1"), model), model)
    assert (found.model, found.window) == ("solo", Window(32_768, "endpoint /models"))
    assert any("serves one model, solo" in note for note in found.notes)


@pytest.mark.parametrize("style", ["xml", "markdown", "plain", "json"])
@pytest.mark.parametrize("with_diff", [False, True])
def test_prompt_count_is_exact_in_every_style(make_repo: MakeRepo, style: str, with_diff: bool) -> None:
    # The plan counts the message in pieces (head, pack, tail): the pieces must add up exactly.
    repo = make_repo({"app.py": APP, "notes.md": "# Notes\n\n\n\ntrailing blank lines\n\n\n", "e.txt": ""})
    base = None
    if with_diff:
        git(repo, "checkout", "-q", "-b", "feature")
        (repo / "app.py").write_text(APP.replace("a - b", "a + b"))
        git(repo, "commit", "-qam", "fix")
        base = "main"
    p = plan(repo, settings_for(repo, {"style": style}), WINDOW, base=base)
    tok = get_tokenizer("deepseek-v4")
    assert p.prompt_tokens == tok.count(p.system) + tok.count(p.user)
    assert p.files["app.py"] == (repo / "app.py").read_text()


def test_the_review_function(make_repo: MakeRepo) -> None:
    import wholerepo

    repo = make_repo({"app.py": APP})
    with FakeOpenAI() as server:
        server.script(Chat(reply(finding()), usage=usage(1000, 20)))
        result = wholerepo.review(repo, base_url=server.url, model="m", max_retries=0)
        assert isinstance(result, wholerepo.ReviewResult)
        assert [(f.path, f.start_line) for f in result.verified] == [("app.py", 2)]
        assert server.chats[0].json["model"] == "m"
        server.script(Chat("not json"))
        with pytest.raises(EndpointError, match="no findings JSON"):
            wholerepo.review(repo, base_url=server.url, model="m")
    with pytest.raises(TypeError, match="bogus"):
        wholerepo.review(repo, bogus=1)
