"""Markdown, SARIF 2.1.0 and JSON reports: shape, safety, determinism, schema validity."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wholerepo.report import FORMAT_FILENAMES, ReviewResult, Usage, render
from wholerepo.reviewer.findings import CATEGORIES, LOCATIONS, SEVERITIES, Finding, Unverified, verify
from wholerepo.sanitize import MARKER_PREFIX

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
# RFC 3986 relative reference characters; checked here too because jsonschema skips the
# uri-reference format when the optional rfc3987 package is missing.
URI_REFERENCE = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-F]{2})*$")
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

APP = "import os\n\n\ndef run(cmd):\n    os.system(cmd)\n    return eval(cmd)\n"
FILES = {"src/app.py": APP, "docs/read me ü.md": "# Title\n\nText with <b>html</b>.\n"}


def finding(**overrides: Any) -> Finding:
    base: dict[str, Any] = {
        "path": "src/app.py",
        "start_line": 6,
        "end_line": 6,
        "severity": "high",
        "category": "security",
        "title": "eval of a command",
        "body": "Runs arbitrary code.",
        "suggestion": "Do not eval.",
        "quote": "return eval(cmd)",
        "fingerprint": "f" * 32,
    }
    base.update(overrides)
    return Finding(**base)


def result(
    verified: tuple[Finding, ...] = (), unverified: tuple[Unverified, ...] = (), **kw: Any
) -> ReviewResult:
    base: dict[str, Any] = {
        "summary": "Looks mostly fine.",
        "verified": verified,
        "unverified": unverified,
        "model": "deepseek-v4-pro",
        "endpoint": "https://api.deepseek.com",
        "tokenizer": "deepseek-v4",
        "prompt_tokens": 123_456,
        "tool_version": "0.1.0",
    }
    base.update(kw)
    return ReviewResult(**base)


def sample() -> ReviewResult:
    items = [
        {"path": "src/app.py", "start_line": 6, "end_line": 6, "severity": "critical", "category": "security",
         "title": "eval of a command", "body": "RCE.", "suggestion": None, "quote": "return eval(cmd)"},
        {"path": "src/app.py", "start_line": 1, "end_line": 1, "severity": "medium", "category": "security",
         "title": "shell", "body": "Shell injection.", "suggestion": "Use subprocess.run([...]).",
         "quote": "os.system(cmd)"},
        {"path": "docs/read me ü.md", "start_line": 3, "end_line": 3, "severity": "low", "category": "docs",
         "title": "HTML in docs", "body": "", "suggestion": None, "quote": None},
        {"path": "src/app.py", "start_line": 4, "end_line": 4, "severity": "info", "category": "style",
         "title": "`run` is a vague name", "body": "", "suggestion": None, "quote": None},
        {"path": "../../etc/passwd", "start_line": 1, "end_line": 1, "severity": "high", "category": "bug",
         "title": "escape", "body": "", "suggestion": None, "quote": None},
        # No quote, and the cited (blank) line holds nothing the finding names: unanchored.
        {"path": "src/app.py", "start_line": 2, "end_line": 2, "severity": "high", "category": "bug",
         "title": "Something is off here", "body": "", "suggestion": None, "quote": None},
        # The same lines and quote as the critical one: merged into it.
        {"path": "src/app.py", "start_line": 6, "end_line": 6, "severity": "low", "category": "security",
         "title": "Code execution via eval", "body": "", "suggestion": None, "quote": "return eval(cmd)"},
    ]  # fmt: skip
    v = verify(items, FILES)
    return result(
        v.verified,
        v.unverified,
        unanchored=v.unanchored,
        usage=Usage(
            prompt_tokens=123_460,
            completion_tokens=900,
            cache_hit_tokens=120_000,
            cache_miss_tokens=3_460,
            reasoning_tokens=300,
        ),
        cost_usd=0.0421,
        endpoint_prompt_tokens=123_460,
        files_reviewed=2,
    )


def assert_valid_sarif(doc: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    # GitHub code scanning's rules (sarif.md section 2).
    assert doc["$schema"].endswith("sarif-2.1.0.json") and doc["version"] == "2.1.0"
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "wholerepo" and driver["version"] and driver["informationUri"]
    rules = driver["rules"]
    ids = [r["id"] for r in rules]
    assert ids == sorted(set(ids))
    for rule in rules:
        for key in ("shortDescription", "fullDescription", "help"):
            assert 0 < len(rule[key]["text"]) <= 1024
        tags = rule["properties"]["tags"]
        assert len(tags) == len(set(tags)) <= 20
        if "security-severity" in rule["properties"]:
            assert "security" in tags
            assert 0.0 < float(rule["properties"]["security-severity"]) <= 10.0
    assert len(run["results"]) <= 25_000
    for res in run["results"]:
        assert res["ruleId"] in ids and ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("note", "warning", "error")
        assert res["message"]["text"]
        assert not CONTROL.search(res["message"]["text"])
        (loc,) = res["locations"]
        artifact = loc["physicalLocation"]["artifactLocation"]
        assert artifact["uriBaseId"] == "%SRCROOT%"
        uri = artifact["uri"]
        assert URI_REFERENCE.match(uri), uri
        assert not uri.startswith("/") and "://" not in uri
        region = loc["physicalLocation"]["region"]
        assert 1 <= region["startLine"] <= region["endLine"]
        assert res["partialFingerprints"]["wholerepo/v1"]
    assert "%SRCROOT%" in run["originalUriBaseIds"]


# --------------------------------------------------------------------------- dispatch


def test_format_filenames_and_unknown_format() -> None:
    assert FORMAT_FILENAMES == {"markdown": "review.md", "sarif": "review.sarif", "json": "review.json"}
    with pytest.raises(ValueError, match="unknown report format"):
        render("html", result())


@pytest.mark.parametrize("fmt", ["markdown", "sarif", "json"])
def test_renders_are_deterministic(fmt: str) -> None:
    r = sample()
    shuffled = replace(r, verified=tuple(reversed(r.verified)), unverified=tuple(reversed(r.unverified)))
    assert render(fmt, r) == render(fmt, r) == render(fmt, shuffled)
    assert render(fmt, r).endswith("\n")


# --------------------------------------------------------------------------- SARIF


def test_sarif_golden_shape() -> None:
    doc = json.loads(render("sarif", sample()))
    assert_valid_sarif(doc)
    run = doc["runs"][0]
    assert run["automationDetails"] == {"id": "wholerepo/review/"}
    assert run["invocations"] == [{"executionSuccessful": True}]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert list(rules) == ["wholerepo/docs", "wholerepo/security", "wholerepo/style"]
    security = rules["wholerepo/security"]
    assert "security" in security["properties"]["tags"]
    assert security["properties"]["security-severity"] == "9.0"
    assert security["defaultConfiguration"]["level"] == "error"
    assert "security-severity" not in rules["wholerepo/docs"]["properties"]
    levels = [(r["ruleId"], r["level"], r["properties"]["severity"]) for r in run["results"]]
    assert levels == [
        ("wholerepo/security", "error", "critical"),
        ("wholerepo/security", "warning", "medium"),
        ("wholerepo/docs", "note", "low"),
        ("wholerepo/style", "note", "info"),
    ]
    assert [r["properties"].get("security-severity") for r in run["results"]] == ["9.0", "5.0", None, None]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]]
    assert uris[2] == "docs/read%20me%20%C3%BC.md"
    moved = run["results"][1]
    assert moved["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 5, "endLine": 5, "snippet": {"text": "os.system(cmd)"}
    }  # fmt: skip
    assert moved["properties"]["moved_from"] == 1
    locations = [r["properties"]["location"] for r in run["results"]]
    assert locations == ["quote-exact", "quote-exact", "cited-lines", "cited-lines"]
    assert run["results"][0]["properties"]["merged_titles"] == ["Code execution via eval"]
    assert "merged_titles" not in run["results"][1]["properties"]
    assert (run["properties"]["unanchored_findings"], run["properties"]["merged_findings"]) == (1, 1)
    # Only verified findings: neither the ../../etc/passwd one nor the unanchored one.
    assert "passwd" not in json.dumps(doc)
    assert "Something is off" not in json.dumps(doc)


@pytest.mark.parametrize(
    ("severity", "level", "score"),
    [("critical", "error", "9.0"), ("high", "error", "7.0"), ("medium", "warning", "5.0"),
     ("low", "note", "3.0"), ("info", "note", "1.0")],
)  # fmt: skip
def test_sarif_levels_and_security_severity(severity: str, level: str, score: str) -> None:
    doc = json.loads(render("sarif", result((finding(severity=severity),))))
    assert_valid_sarif(doc)
    (rule,) = doc["runs"][0]["tool"]["driver"]["rules"]
    (res,) = doc["runs"][0]["results"]
    assert res["level"] == level
    assert rule["properties"]["security-severity"] == score
    plain = json.loads(render("sarif", result((finding(severity=severity, category="bug"),))))
    (bug_rule,) = plain["runs"][0]["tool"]["driver"]["rules"]
    assert "security-severity" not in bug_rule["properties"]
    assert bug_rule["properties"]["tags"] == ["bug"]
    assert plain["runs"][0]["results"][0]["level"] == level


def test_sarif_partial_run_is_not_successful() -> None:
    partial = result((finding(),), partial=True, partial_reason="finish_reason=length")
    doc = json.loads(render("sarif", partial))
    assert_valid_sarif(doc)
    (invocation,) = doc["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    assert "finish_reason=length" in invocation["toolExecutionNotifications"][0]["message"]["text"]


def test_sarif_empty_run_is_valid() -> None:
    doc = json.loads(render("sarif", result()))
    assert_valid_sarif(doc)
    assert doc["runs"][0]["results"] == [] and doc["runs"][0]["tool"]["driver"]["rules"] == []


def test_sarif_fingerprints_stable_across_renders_and_line_shifts() -> None:
    items = [
        {"path": "src/app.py", "start_line": 6, "end_line": 6, "severity": "high", "category": "security",
         "title": "eval", "body": "", "suggestion": None, "quote": "return eval(cmd)"}
    ]  # fmt: skip
    before = verify(items, FILES)
    shifted = {"src/app.py": "# new\n# lines\n" + APP}
    after = verify([{**items[0], "start_line": 8, "end_line": 8}], shifted)

    def prints(v: Any) -> list[str]:
        doc = json.loads(render("sarif", result(v.verified)))
        return [r["partialFingerprints"]["wholerepo/v1"] for r in doc["runs"][0]["results"]]

    assert prints(before) == prints(before) == prints(after)
    assert before.verified[0].start_line == 6 and after.verified[0].start_line == 8


def test_sarif_strips_credentials_from_the_endpoint() -> None:
    text = render("sarif", result(endpoint="https://user:hunter2@llm.example.com/v1?key=abc"))
    assert "hunter2" not in text and "abc" not in text
    assert json.loads(text)["runs"][0]["properties"]["endpoint"] == "https://llm.example.com/v1"


# --------------------------------------------------------------------------- JSON


def test_json_report_fields() -> None:
    r = sample()
    data = json.loads(render("json", r))
    for key in ("summary", "verified", "unverified", "usage", "cost_usd", "prompt_tokens",
                "endpoint_prompt_tokens", "model", "endpoint", "partial", "tokenizer"):  # fmt: skip
        assert key in data
    assert data["prompt_tokens"] == 123_456 and data["endpoint_prompt_tokens"] == 123_460
    assert data["usage"]["cache_hit_tokens"] == 120_000
    assert data["cost_usd"] == 0.0421
    assert [f["severity"] for f in data["verified"]] == ["critical", "medium", "low", "info"]
    assert data["verified"][0]["fingerprint"] == r.verified[0].fingerprint
    (u,) = data["unverified"]
    assert u["reason"] == "unsafe-path" and u["path"] == "../../etc/passwd"
    (a,) = data["unanchored"]
    assert (a["reason"], a["path"], a["start_line"]) == ("unsupported-lines", "src/app.py", 2)
    locations = [f["location"] for f in data["verified"]]
    assert locations == ["quote-exact", "quote-exact", "cited-lines", "cited-lines"]
    assert data["verified"][0]["merged_titles"] == ["Code execution via eval"]
    assert data["merged"] == 1
    assert data["counts"] == {"critical": 1, "high": 0, "medium": 1, "low": 1, "info": 1}
    text = render("json", r)
    assert "read me ü.md" in text  # ensure_ascii=False
    assert text.index('"cost_usd"') < text.index('"verified"')  # sorted keys


def test_json_non_finite_cost_is_null() -> None:
    assert json.loads(render("json", result(cost_usd=float("nan"))))["cost_usd"] is None


# --------------------------------------------------------------------------- Markdown


def test_markdown_golden_sections() -> None:
    md = render("markdown", sample())
    assert md.startswith("# wholerepo review\n")
    assert "## Summary\n\n> Looks mostly fine.\n" in md
    assert "| Critical | 1 |" in md and "| High | 0 |" in md
    headings = [md.index(f"### {s} (1)") for s in ("Critical", "Medium", "Low", "Info")]
    assert headings == sorted(headings)
    assert "`src/app.py:6` · security · placed by its quote, found verbatim · merged with 1 duplicate" in md
    assert "Also reported as: Code execution via eval." in md
    assert "`src/app.py:5` · security · placed by its quote, found verbatim · moved from line 1" in md
    assert "`src/app.py:4` · style · placed by the cited lines only (no quote)" in md
    assert "4 verified, 1 unanchored, 1 unverified.\n1 duplicate merged into the findings below." in md
    assert "## Unanchored (1)" in md and "`unsupported-lines`" in md and "`src/app.py:2`" in md
    assert md.index("## Findings") < md.index("## Unanchored") < md.index("## Unverified")
    assert md.count("Something is off here") == 1  # listed apart, never among the findings
    assert "```python\nreturn eval(cmd)\n```" in md
    assert "**Suggestion**\n\n> Use subprocess.run([...])." in md
    assert "## Unverified (1)" in md and "`unsafe-path`" in md and "`../../etc/passwd:1`" in md
    assert "cost $0.0421" in md and "prompt 123,456 tokens" in md and "cache hit 120,000 / miss 3,460" in md
    assert "Partial result" not in md


def test_markdown_partial_banner() -> None:
    md = render("markdown", result(partial=True, partial_reason="the reply hit max_tokens"))
    assert "> [!WARNING]\n> **Partial result:** the reply hit max_tokens." in md
    assert "No verified findings." in md


def test_markdown_fence_is_longer_than_backticks_in_the_quote() -> None:
    files = {"doc.md": "Use ```` fences\n"}
    v = verify([{"path": "doc.md", "start_line": 1, "severity": "low", "category": "docs", "title": "t",
                 "quote": "Use ```` fences"}], files)  # fmt: skip
    md = render("markdown", result(v.verified))
    assert "`````markdown\nUse ```` fences\n`````" in md


def test_markdown_contains_hostile_model_text() -> None:
    hostile = finding(
        title="\x1b[31mRed\x1b[0m @octocat <!-- wholerepo:summary --> <img src=x>",
        body="Body\n# Fake heading\n```\nunclosed fence ![pixel](https://evil/p.png) cc @org/team \u202eevil",
        suggestion="<script>alert(1)</script>",
        quote="x = '<!-- wholerepo:finding id=1 -->'",
    )
    md = render("markdown", result((hostile,), summary="@everyone\n```\n<!-- wholerepo"))
    assert "\x1b" not in md and "\u202e" not in md
    assert MARKER_PREFIX not in md and "<!--" not in md
    assert "<img" not in md and "<script" not in md and "![" not in md
    assert not re.search(r"@[A-Za-z0-9]", md)
    # Model prose lives in block quotes, so a fence it opens cannot swallow the rest of the report.
    assert "> ```\n> unclosed fence" in md
    assert "> # Fake heading" in md


def test_template_ships_inside_the_package() -> None:
    from importlib.resources import files

    assert files("wholerepo.report").joinpath("templates/review.md.j2").is_file()


# --------------------------------------------------------------------------- properties

texts = st.text(max_size=60)
findings_st = st.builds(
    Finding,
    path=st.text(min_size=1, max_size=30),
    start_line=st.integers(min_value=1, max_value=10**6),
    end_line=st.integers(min_value=1, max_value=10**6),
    severity=st.sampled_from(SEVERITIES),
    category=st.sampled_from(CATEGORIES),
    title=texts,
    body=texts,
    suggestion=st.none() | texts,
    quote=st.none() | texts,
    in_diff=st.none() | st.booleans(),
    moved_from=st.none() | st.integers(min_value=1, max_value=1000),
    fingerprint=st.text(max_size=40),
    location=st.sampled_from(LOCATIONS),
    merged_titles=st.lists(texts, max_size=3).map(tuple),
)
unverified_st = st.builds(
    Unverified,
    reason=st.sampled_from(["unknown-path", "unsafe-path", "quote-not-found"]) | texts,
    path=st.none() | texts,
    start_line=st.none() | st.integers(),
    end_line=st.none() | st.integers(),
    severity=st.sampled_from(SEVERITIES),
    category=st.sampled_from(CATEGORIES),
    title=texts,
    body=texts,
    suggestion=st.none() | texts,
    quote=st.none() | texts,
)
results_st = st.builds(
    ReviewResult,
    summary=texts,
    verified=st.lists(findings_st, max_size=5).map(tuple),
    unverified=st.lists(unverified_st, max_size=3).map(tuple),
    model=texts,
    endpoint=texts,
    tokenizer=texts,
    prompt_tokens=st.integers(min_value=0, max_value=10**7),
    tool_version=texts,
    endpoint_prompt_tokens=st.none() | st.integers(min_value=0, max_value=10**7),
    usage=st.none() | st.builds(Usage, *(st.none() | st.integers(min_value=0, max_value=10**7),) * 5),
    cost_usd=st.none() | st.floats(),
    partial=st.booleans(),
    partial_reason=st.none() | texts,
    base_ref=st.none() | texts,
    files_reviewed=st.integers(min_value=0, max_value=10**5),
    prompt_name=texts,
    warnings=st.lists(texts, max_size=2).map(tuple),
    unanchored=st.lists(unverified_st, max_size=3).map(tuple),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(results_st)
def test_every_renderer_on_arbitrary_results(r: ReviewResult) -> None:
    sarif = json.loads(render("sarif", r))
    assert_valid_sarif(sarif)
    results = sarif["runs"][0]["results"]
    assert len(results) == len(r.verified)
    assert sorted(res["properties"]["location"] for res in results) == sorted(f.location for f in r.verified)
    assert sarif["runs"][0]["properties"]["unanchored_findings"] == len(r.unanchored)

    data = json.loads(render("json", r))
    assert len(data["verified"]) == len(r.verified) and len(data["unverified"]) == len(r.unverified)
    assert len(data["unanchored"]) == len(r.unanchored)
    assert data["merged"] == sum(len(f.merged_titles) for f in r.verified)
    assert all(isinstance(t, str) for f in data["verified"] for t in f["merged_titles"])
    render("json", r).encode("utf-8")

    md = render("markdown", r)
    md.encode("utf-8")
    assert (
        f"{len(r.verified)} verified, {len(r.unanchored)} unanchored, {len(r.unverified)} unverified." in md
    )
    assert ("\n## Unanchored (" in md) == bool(r.unanchored)
    assert not CONTROL.search(md)
    assert "\x1b" not in md and MARKER_PREFIX not in md and "<!--" not in md
