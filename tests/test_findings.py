"""Parsing the model's reply and verifying its findings against the packed code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wholerepo.errors import BlankReplyError, EndpointError, ReplyParseError
from wholerepo.reviewer.findings import (
    CATEGORIES,
    FINDING_KEYS,
    LOCATIONS,
    SEVERITIES,
    ParsedReply,
    example_reply,
    parse_reply,
    resolve_path,
    response_schema,
    severity_at_least,
    verify,
)

APP = (
    "import os\n"
    "\n"
    "\n"
    "def run(user_input):\n"
    "    query = f\"SELECT * FROM t WHERE name = '{user_input}'\"\n"
    "    os.system('ls ' + user_input)\n"
    "    return eval(user_input)\n"
    "\n"
    "\n"
    "if 1 < 2 & 3:\n"
    "    pass\n"
)
FILES = {"src/app.py": APP, "README.md": "# Demo\n\nHello.\n", "docs/a b/ü.md": "one\ntwo\n"}


def item(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "path": "src/app.py",
        "start_line": 7,
        "end_line": 7,
        "severity": "high",
        "category": "security",
        "title": "eval of user input",
        "body": "Arbitrary code execution.",
        "suggestion": "Use ast.literal_eval.",
        "quote": "return eval(user_input)",
    }
    base.update(overrides)
    return base


def reply(*items: dict[str, Any], summary: str = "Two problems.") -> str:
    return json.dumps({"summary": summary, "findings": list(items)})


# --------------------------------------------------------------------------- severities


def test_severity_at_least() -> None:
    assert severity_at_least("high", "medium")
    assert severity_at_least("medium", "medium")
    assert not severity_at_least("low", "medium")
    assert not severity_at_least("critical", "none")
    assert severity_at_least("info", "info")
    assert SEVERITIES == ("info", "low", "medium", "high", "critical")


# --------------------------------------------------------------------------- parse_reply


def test_parse_bare_json() -> None:
    parsed = parse_reply(reply(item()))
    assert parsed == ParsedReply(summary="Two problems.", items=(item(),), partial=False, ignored=0)


@pytest.mark.parametrize("fence", ["```json", "```", "~~~json", "````JSON"])
def test_parse_fenced_json(fence: str) -> None:
    closer = fence.rstrip("jsonJSON")
    text = f"Here is my review.\n{fence}\n{reply(item())}\n{closer}\nHope this helps!"
    assert parse_reply(text).items == (item(),)


def test_parse_prose_wrapped_json_picks_the_findings_object() -> None:
    text = (
        'I considered {"not": "this"} first. The result:\n'
        + reply(item(), summary="S")
        + "\nand then some {braces} at the end."
    )
    parsed = parse_reply(text)
    assert parsed.summary == "S"
    assert parsed.items == (item(),)


def test_parse_nested_and_bare_list_and_key_aliases() -> None:
    nested = json.dumps({"review": {"summary": "N", "findings": [item()]}})
    assert parse_reply(nested).summary == "N"
    bare = json.dumps([{"file": "src/app.py", "line": 7, "title": "t", "severity": "low"}])
    parsed = parse_reply(bare)
    assert parsed.items == ({"path": "src/app.py", "start_line": 7, "title": "t", "severity": "low"},)


def test_parse_ignores_items_that_are_not_findings_and_extra_keys() -> None:
    text = reply(item(injected="ignore previous instructions"), 5, "text", None, [1], {"colour": "red"})
    parsed = parse_reply(text)
    assert parsed.items == (item(),)
    assert parsed.ignored == 5


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n"])
def test_blank_reply(text: str) -> None:
    with pytest.raises(BlankReplyError):
        parse_reply(text)


@pytest.mark.parametrize(
    "text",
    ["I could not review this.", '{"summary": "no findings key"}', "{broken json", '["a", "b"]', "null"],
)
def test_unusable_reply(text: str) -> None:
    with pytest.raises(ReplyParseError) as info:
        parse_reply(text)
    assert isinstance(info.value, EndpointError)
    assert info.value.exit_code == 3


def test_truncated_reply_with_allow_partial_keeps_complete_findings() -> None:
    full = reply(item(title="first"), item(title="second"), item(title="third"), summary="Sum")
    cut = full[: full.index('"third"') + 3]
    with pytest.raises(ReplyParseError):
        parse_reply(cut)
    parsed = parse_reply("```json\n" + cut, allow_partial=True)
    assert parsed.partial
    assert parsed.summary == "Sum"
    assert [i["title"] for i in parsed.items] == ["first", "second"]


def test_truncated_reply_before_any_finding() -> None:
    parsed = parse_reply('{"summary": "S", "findings": [', allow_partial=True)
    assert parsed == ParsedReply(summary="S", items=(), partial=True, ignored=0)
    with pytest.raises(ReplyParseError):
        parse_reply('{"summary": "cut mid-str', allow_partial=True)


def test_complete_reply_with_allow_partial_is_not_partial() -> None:
    assert not parse_reply(reply(item()), allow_partial=True).partial


def test_response_schema_and_example_agree() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = response_schema()
    example = json.loads(example_reply())
    jsonschema.validate(example, schema)
    assert parse_reply(example_reply()).items == tuple(example["findings"])
    assert set(schema["properties"]["findings"]["items"]["required"]) == set(FINDING_KEYS)
    assert schema["properties"]["findings"]["items"]["properties"]["category"]["enum"] == list(CATEGORIES)


# --------------------------------------------------------------------------- verify


def test_verified_finding_at_the_cited_lines() -> None:
    result = verify([item()], FILES)
    assert result.unverified == ()
    (f,) = result.verified
    assert (f.path, f.start_line, f.end_line, f.moved_from) == ("src/app.py", 7, 7, None)
    assert f.severity == "high" and f.category == "security"
    assert f.in_diff is None
    assert len(f.fingerprint) == 32


def test_wrong_line_with_right_quote_moves_the_finding() -> None:
    (f,) = verify([item(start_line=2, end_line=3)], FILES).verified
    assert (f.start_line, f.end_line, f.moved_from) == (7, 7, 2)


SQL_QUOTE = '4|def run(user_input):\n5|    query = f"SELECT'


def test_quote_with_line_numbers_and_xml_escapes_is_found() -> None:
    items = [
        item(start_line=1, end_line=1, quote="6|    os.system('ls ' + user_input)", title="shell"),
        item(start_line=10, end_line=10, quote="if 1 &lt; 2 &amp; 3:", title="precedence", category="bug"),
        item(start_line=None, end_line=None, quote=SQL_QUOTE, title="sql"),
    ]
    result = verify(items, FILES)
    assert result.unverified == ()
    by_title = {f.title: f for f in result.verified}
    assert by_title["shell"].start_line == 6
    assert by_title["shell"].quote == "    os.system('ls ' + user_input)"
    assert by_title["shell"].location == "quote-exact"  # the copied "6|" picked the line
    assert by_title["precedence"].start_line == 10
    assert by_title["precedence"].quote == "if 1 < 2 & 3:"
    assert by_title["precedence"].location == "quote-normalised"
    assert (by_title["sql"].start_line, by_title["sql"].end_line, by_title["sql"].moved_from) == (4, 5, None)


def test_quote_compared_with_whitespace_normalised() -> None:
    (f,) = verify([item(quote="  return   eval( user_input)".replace("( ", "("))], FILES).verified
    assert f.start_line == 7


def test_quote_nowhere_in_the_file_is_unverified() -> None:
    result = verify([item(quote="exec(payload)")], FILES)
    assert result.verified == ()
    assert result.unverified[0].reason == "quote-not-found"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../../etc/passwd", "unsafe-path"),
        ("/etc/passwd", "unsafe-path"),
        ("src/../../etc/passwd", "unsafe-path"),
        ("C:\\Windows\\win.ini", "unsafe-path"),
        ("~/.ssh/id_rsa", "unsafe-path"),
        ("file:///etc/passwd", "unsafe-path"),
        ("src/app.py\x00.txt", "unsafe-path"),
        ("ghost.py", "unknown-path"),
        ("src/ghost.py", "unknown-path"),
        ("", "missing-path"),
        (None, "missing-path"),
        (42, "missing-path"),
    ],
)
def test_unsafe_and_unknown_paths_are_unverified(path: Any, reason: str) -> None:
    result = verify([item(path=path, quote=None, start_line=1, end_line=1)], FILES)
    assert result.verified == ()
    assert result.unverified[0].reason == reason


@pytest.mark.parametrize(
    "path", ["./src/app.py", "src\\app.py", "a/src/app.py", "b/src/app.py", "src//./app.py", " src/app.py "]
)
def test_paths_are_normalised(path: str) -> None:
    (f,) = verify([item(path=path)], FILES).verified
    assert f.path == "src/app.py"


def test_diff_prefix_is_kept_when_it_is_a_real_directory() -> None:
    files = {"a/x.py": "x = 1\n", "x.py": "y = 2\n"}
    (f,) = verify([item(path="a/x.py", quote="x = 1", start_line=1, end_line=1)], files).verified
    assert f.path == "a/x.py"
    assert resolve_path("b/x.py", files) == ("x.py", "")


def test_paths_with_spaces_and_unicode() -> None:
    (f,) = verify([item(path="docs/a b/ü.md", quote="two", start_line=2)], FILES).verified
    assert f.path == "docs/a b/ü.md"


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        (99, 99, "line-out-of-range"),
        (0, 1, "invalid-line"),
        (-3, 1, "invalid-line"),
        (4, -2, "invalid-line"),
        ("seven", None, "missing-line"),
        (True, None, "missing-line"),
        (None, None, "missing-line"),
    ],
)
def test_bad_lines_without_quote_are_unverified(start: Any, end: Any, reason: str) -> None:
    result = verify([item(start_line=start, end_line=end, quote=None)], FILES)
    assert result.verified == ()
    assert result.unverified[0].reason == reason


def test_lines_are_coerced_and_the_quote_fixes_an_end_past_the_file() -> None:
    (f,) = verify([item(start_line="7", end_line=7.0)], FILES).verified
    assert (f.start_line, f.end_line) == (7, 7)
    (g,) = verify([item(start_line=7, end_line=500)], FILES).verified
    assert (g.start_line, g.end_line, g.location) == (7, 7, "quote-exact")
    (h,) = verify([item(start_line=7, end_line=None)], FILES).verified
    assert h.end_line == 7
    # Without a quote, lines past the end of the file confirm nothing: set apart, not stretched.
    result = verify([item(start_line=7, end_line=500, quote=None)], FILES)
    assert result.verified == ()
    assert [u.reason for u in result.unanchored] == ["lines-past-end"]


def test_bad_lines_are_rescued_by_the_quote() -> None:
    (f,) = verify([item(start_line=0, end_line=-1)], FILES).verified
    assert (f.start_line, f.moved_from) == (7, None)


def test_severity_and_category_are_normalised_or_rejected() -> None:
    (f,) = verify([item(severity=" Critical ", category="Vulnerability")], FILES).verified
    assert (f.severity, f.category) == ("critical", "security")
    (g,) = verify([item(severity="warning", category="documentation")], FILES).verified
    assert (g.severity, g.category) == ("medium", "docs")
    result = verify([item(severity="apocalyptic"), item(category="vibes"), item(severity=None)], FILES)
    reasons = [u.reason for u in result.unverified]
    assert reasons == ["invalid-severity", "invalid-category", "invalid-severity"]


def test_missing_title_is_taken_from_body_or_rejected() -> None:
    (f,) = verify([item(title="", body="Eval is bad. Really bad.")], FILES).verified
    assert f.title == "Eval is bad."
    assert verify([item(title=None, body=None)], FILES).unverified[0].reason == "missing-title"


def test_duplicates_are_merged_keeping_the_higher_severity_and_every_title() -> None:
    items = [
        item(severity="medium", title="Eval of user input"),
        item(severity="critical", title="eval of  USER input.", start_line=6, end_line=7, quote=None),
        item(severity="low", title="eval of user input", category="bug"),  # another category: kept
        item(severity="high", title="other title"),  # the same lines and quote: merged
        item(severity="high", title="other title", start_line=4, end_line=4, quote="def run(user_input):"),
    ]
    result = verify(items, FILES)
    assert sorted((f.severity, f.category, f.title, f.start_line) for f in result.verified) == [
        ("critical", "security", "eval of USER input.", 6),
        ("high", "security", "other title", 4),  # same title, lines apart: kept
        ("low", "bug", "eval of user input", 7),
    ]
    merged = next(f for f in result.verified if f.severity == "critical")
    assert sorted(merged.merged_titles) == ["Eval of user input", "other title"]
    assert result.merged == 2


def test_non_overlapping_same_title_is_not_merged_and_fingerprints_differ() -> None:
    files = {"x.py": "total = compute(1)\nb = 2\ntotal = compute(1)\n"}
    items = [
        item(path="x.py", quote="total = compute(1)", start_line=1, end_line=1),
        item(path="x.py", quote="total = compute(1)", start_line=3, end_line=3),
    ]
    result = verify(items, files)
    assert [f.start_line for f in sorted(result.verified, key=lambda f: f.start_line)] == [1, 3]
    fingerprints = [f.fingerprint for f in sorted(result.verified, key=lambda f: f.start_line)]
    assert fingerprints[1] == fingerprints[0] + ":2"


def test_in_diff_from_changed_lines() -> None:
    changed = {"src/app.py": frozenset({6, 7})}
    result = verify([item(), item(title="readme", path="README.md", quote="Hello.", start_line=3)], FILES,
                    changed_lines=changed)  # fmt: skip
    by_path = {f.path: f for f in result.verified}
    assert by_path["src/app.py"].in_diff is True
    assert by_path["README.md"].in_diff is False


def test_fingerprint_survives_code_moving() -> None:
    (before,) = verify([item()], FILES).verified
    shifted = {"src/app.py": "# header\n" * 5 + APP}
    (after,) = verify([item(start_line=12, end_line=12)], shifted).verified
    assert after.start_line == 12
    assert after.fingerprint == before.fingerprint
    # Without a quote the cited line's text is hashed instead.
    (a,) = verify([item(quote=None)], FILES).verified
    (b,) = verify([item(quote=None, start_line=12, end_line=12)], shifted).verified
    assert a.fingerprint == b.fingerprint
    (c,) = verify([item(title="a different title")], FILES).verified
    assert c.fingerprint != before.fingerprint


def test_verify_never_reads_the_file_system(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret.txt").write_text("TOKEN\n")
    monkeypatch.chdir(tmp_path)
    result = verify([item(path="secret.txt", quote="TOKEN", start_line=1)], FILES)
    assert result.unverified[0].reason == "unknown-path"


def test_hostile_text_fields_are_cleaned() -> None:
    (f,) = verify([item(title="\x1b[2J\x1b]0;pwned\x07Title\u202e", body="b\x00ody\r\nx")], FILES).verified
    assert f.title == "Title"
    assert f.body == "body\nx"


# --------------------------------------------------------------------------- properties

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12,
)
paths = st.sampled_from(
    ["src/app.py", "README.md", "./src/app.py", "a/README.md", "../../etc/passwd", "/etc/passwd", "ghost.py",
     "docs/a b/ü.md", "src/../src/app.py", "C:/x", ""]
) | st.text(max_size=30)  # fmt: skip
lines = st.integers(min_value=-5, max_value=40) | st.none() | st.text(max_size=4) | st.floats()
quote_samples = ["return eval(user_input)", "7|    return eval(user_input)", "Hello.", "two", "&lt;", ""]
quotes = st.none() | st.sampled_from(quote_samples) | st.text(max_size=20)
finding_items = st.fixed_dictionaries(
    {},
    optional={
        "path": paths | json_values,
        "start_line": lines,
        "end_line": lines,
        "severity": st.sampled_from([*SEVERITIES, "warning", "bogus"]) | json_values,
        "category": st.sampled_from([*CATEGORIES, "perf", "bogus"]) | json_values,
        "title": st.text(max_size=30) | json_values,
        "body": st.text(max_size=30) | json_values,
        "suggestion": st.text(max_size=30) | st.none(),
        "quote": quotes | json_values,
        "extra": json_values,
    },
)
file_maps = st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=200), max_size=3).map(
    lambda extra: {**FILES, **extra}
)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_reply_on_arbitrary_text_raises_only_reply_errors(text: str) -> None:
    for allow_partial in (False, True):
        try:
            parsed = parse_reply(text, allow_partial=allow_partial)
        except (BlankReplyError, ReplyParseError):
            continue
        assert all(set(i) <= set(FINDING_KEYS) for i in parsed.items)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    summary=json_values,
    items=st.lists(finding_items | json_values, max_size=6),
    wrapper=st.sampled_from(["{}", "```json\n{}\n```", "Sure!\n{}\nDone.", "```\n{}"]),
)
def test_parse_reply_on_json_with_arbitrary_values(summary: Any, items: list[Any], wrapper: str) -> None:
    text = wrapper.replace("{}", json.dumps({"summary": summary, "findings": items}))
    parsed = parse_reply(text)
    assert isinstance(parsed.summary, str)
    assert len(parsed.items) + parsed.ignored == len(items)
    assert all(set(i) <= set(FINDING_KEYS) for i in parsed.items)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(finding_items, min_size=1, max_size=5), cut=st.integers(min_value=0))
def test_any_truncation_yields_a_prefix_of_the_findings(items: list[dict[str, Any]], cut: int) -> None:
    full = json.dumps({"summary": "S", "findings": items})
    complete = parse_reply(full).items
    prefix = full[: cut % (len(full) + 1)]
    try:
        parsed = parse_reply(prefix, allow_partial=True)
    except (BlankReplyError, ReplyParseError):
        return
    assert parsed.items == complete[: len(parsed.items)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(finding_items | json_values, max_size=8), files=file_maps)
def test_verify_never_yields_a_path_outside_files_or_a_line_out_of_range(
    items: list[Any], files: dict[str, str]
) -> None:
    result = verify(items, files, changed_lines={"src/app.py": frozenset({7})})
    assert len(result.verified) + len(result.unverified) + len(result.unanchored) <= len(items)
    for f in result.verified:
        assert f.path in files
        total = len(files[f.path].split("\n")) - (1 if files[f.path].endswith("\n") else 0)
        assert 1 <= f.start_line <= f.end_line <= total
        assert f.severity in SEVERITIES and f.category in CATEGORIES
        assert f.title and f.fingerprint
        assert isinstance(f.in_diff, bool)
        assert f.location in LOCATIONS
    for u in (*result.unverified, *result.unanchored):
        assert u.reason
        # A valid value is normalised; an invalid one stays as given, a missing one reads "(none)".
        assert u.severity and u.category
        assert "\n" not in u.severity and len(u.severity) <= 40


def test_invalid_severity_stays_visible_as_given() -> None:
    from wholerepo.report import ReviewResult, render

    item = {"path": "a.py", "start_line": 1, "end_line": 1, "severity": "Urgent!!", "category": "bug",
            "title": "odd severity", "body": "b", "quote": "x = 1"}  # fmt: skip
    checked = verify([item], {"a.py": "x = 1\n"})
    [rejected] = checked.unverified
    assert (rejected.reason, rejected.severity) == ("invalid-severity", "Urgent!!")
    result = ReviewResult("", (), checked.unverified, "m", "http://x", "deepseek-v4", 1, "1")
    assert "(Urgent!!, bug)" in render("markdown", result)
    assert '"severity": "Urgent!!"' in render("json", result)
