"""Hostile model text made safe for terminals, files and GitHub Markdown."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from wholerepo.sanitize import (
    MARKER_PREFIX,
    ZWSP,
    backtick_fence,
    blockquote,
    cap,
    clean_text,
    code_span,
    code_text,
    markdown_inline,
    markdown_text,
    neutralise_mentions,
    one_line,
    safe_url,
    strip_control,
)

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def test_strip_control_removes_ansi_osc_and_controls_but_keeps_newlines_and_tabs() -> None:
    text = "a\x1b[31mred\x1b[0m\tb\nc\x1b]8;;http://evil\x07link\x1b]8;;\x07\x00\x07\x9b2Jd\re"
    assert strip_control(text) == "ared\tb\nclinkd\ne"


def test_strip_control_removes_bidi_overrides_and_tag_characters() -> None:
    trojan = "access\u202e\u2066 // admin\u2069\u2066"
    assert strip_control(trojan) == "access // admin"
    assert strip_control("ok\U000e0041\U000e0042") == "ok"


def test_lone_surrogates_are_dropped_so_text_encodes() -> None:
    assert clean_text("a\ud800b").encode("utf-8") == b"ab"


def test_cap_marks_a_cut() -> None:
    assert cap("abcdef", 4) == "abc…"
    assert cap("abc", 4) == "abc"
    assert cap("abc", 0) == ""
    assert len(clean_text("x" * 100_000, 50)) == 50


def test_clean_text_takes_any_value() -> None:
    assert clean_text(None) == ""
    assert clean_text(12) == "12"
    assert one_line("a\n\n b\t c ") == "a b c"


def test_mentions_are_neutralised() -> None:
    assert neutralise_mentions("ping @octocat and @org/team") == f"ping @{ZWSP}octocat and @{ZWSP}org/team"
    assert "@octocat" not in markdown_text("cc @octocat")


def test_markdown_text_breaks_html_comments_markers_images_and_autolinks() -> None:
    hostile = f'{MARKER_PREFIX} id="x" --> <img src=x onerror=alert(1)> ![t](http://e/p.png) <http://e>'
    out = markdown_text(hostile)
    assert MARKER_PREFIX not in out
    assert "<!--" not in out
    assert "<img" not in out
    assert "![" not in out
    assert "<http" not in out
    # Still readable: only invisible characters were added.
    assert out.replace(ZWSP, "") == hostile


def test_markdown_inline_is_one_line() -> None:
    assert markdown_inline("title\n# not a heading\n---") == "title # not a heading ---"


def test_code_text_breaks_only_markers() -> None:
    code = "if a < b and x@y:\n    s = '<!-- wholerepo:finding -->'\n"
    out = code_text(code)
    assert MARKER_PREFIX not in out
    assert "a < b" in out and "x@y" in out


def test_backtick_fence_is_longer_than_any_run() -> None:
    assert backtick_fence("no ticks") == "```"
    assert backtick_fence("a ```` b") == "`````"


def test_code_span_survives_backticks_and_markers() -> None:
    assert code_span("src/a.py:3") == "`src/a.py:3`"
    assert code_span("a`b") == "`` a`b ``"
    assert MARKER_PREFIX not in code_span(MARKER_PREFIX)


def test_blockquote_prefixes_every_line() -> None:
    assert blockquote("a\n\n```\nb") == "> a\n>\n> ```\n> b"


def test_safe_url_drops_credentials_query_and_fragment() -> None:
    assert (
        safe_url("https://user:secret@api.example.com:8443/v1?api_key=x#f")
        == "https://api.example.com:8443/v1"
    )
    assert safe_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    assert safe_url("not a url") == "not a url"


@settings(max_examples=300, deadline=None)
@given(st.text())
@example("<!-- wholerepo")  # plain text once kept a marker intact (found by this test)
def test_outputs_never_carry_control_characters(text: str) -> None:
    for fn in (clean_text, one_line, markdown_text, markdown_inline, code_text, code_span):
        out = fn(text)
        assert not CONTROL.search(out), (fn.__name__, out)
        assert "\x1b" not in out
        assert MARKER_PREFIX not in out
        out.encode("utf-8")
    assert "\n" not in one_line(text)
    assert "\n" not in markdown_inline(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("@<!-[]`abc \n")))
def test_markdown_text_never_forms_mentions_comments_or_images(text: str) -> None:
    out = markdown_text(text)
    assert not re.search(r"@[A-Za-z0-9_]", out)
    assert "<!" not in out and "![" not in out
