"""The verifier's rules, one at a time: paths, quotes, lines, honesty about location, merging."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from rapidfuzz import fuzz

from test_findings import APP, item
from wholerepo.reviewer.findings import LOCATIONS, Verification, response_schema, verify
from wholerepo.reviewer.prompts import render_instructions
from wholerepo.reviewer.verify import NEAR_SIMILARITY, merge_duplicates, resolve_path

FILES = {"src/app.py": APP, "README.md": "# Demo\n\nHello.\n", "docs/guide.md": "Use `run` carefully.\n"}
# APP, line by line: 1 import os | 4 def run(user_input): | 5 query = f"SELECT ..." |
# 6 os.system('ls ' + user_input) | 7 return eval(user_input) | 10 if 1 < 2 & 3: | 11 pass


def one(result: Verification) -> tuple[int, int, str]:
    """The single verified finding's lines and location method."""
    assert result.unverified == () and result.unanchored == (), (result.unverified, result.unanchored)
    (f,) = result.verified
    return f.start_line, f.end_line, f.location


def set_apart(result: Verification) -> tuple[str, str]:
    """("unanchored" or "unverified", reason) of the single finding that was not verified."""
    assert result.verified == ()
    if result.unanchored:
        (u,) = result.unanchored
        return "unanchored", u.reason
    (u,) = result.unverified
    return "unverified", u.reason


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/src/app.py", "src/app.py"),  # a leading "/" is the repository root
        ("SRC/App.py", "src/app.py"),  # another case, one file matches
        ("app.py", "src/app.py"),  # without its first folder, one file ends so
        ("APP.PY", "src/app.py"),  # both
        ("/SRC/APP.PY", "src/app.py"),
    ],
)
def test_paths_resolve_by_root_case_and_unique_suffix(given: str, expected: str) -> None:
    assert resolve_path(given, FILES) == (expected, "")
    (f,) = verify([item(path=given)], FILES).verified
    assert f.path == expected


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("/app.py", "unsafe-path"),  # root-relative: no suffix match, and no such file at the root
        ("/etc/passwd", "unsafe-path"),
        ("../src/app.py", "unsafe-path"),  # ".." stays refused even when a suffix would match
        ("src/../app.py", "unsafe-path"),
        ("~/src/app.py", "unsafe-path"),
        ("other/app.py", "unknown-path"),  # a suffix must be the whole of the tail
        ("pp.py", "unknown-path"),  # ... at a folder boundary
    ],
)
def test_paths_that_stay_refused(given: str, reason: str) -> None:
    assert resolve_path(given, FILES) == (None, reason)


def test_ambiguous_paths_are_refused() -> None:
    files = {"a/util.py": "x = 1\n", "b/util.py": "x = 1\n", "Mixed.py": "", "mixed.py": ""}
    assert resolve_path("util.py", files) == (None, "ambiguous-path")
    assert resolve_path("MIXED.PY", files) == (None, "ambiguous-path")
    assert resolve_path("a/util.py", files) == ("a/util.py", "")
    assert resolve_path("mixed.py", files) == ("mixed.py", "")  # an exact match comes first
    assert resolve_path("guide.md", FILES) == ("docs/guide.md", "")


class RecordingFiles(Mapping[str, str]):
    """The packed files, recording every key the verifier asks for."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = dict(files)
        self.asked: list[str] = []

    def __getitem__(self, key: str) -> str:
        self.asked.append(key)
        return self.files[key]

    def __contains__(self, key: object) -> bool:
        return key in self.files

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def test_only_packed_files_are_ever_read() -> None:
    files = RecordingFiles(FILES)
    items = [
        item(path=p)
        for p in (
            "app.py",
            "/src/app.py",
            "SRC/APP.PY",
            "../../etc/passwd",
            "/etc/passwd",
            "ghost.py",
            "~/.ssh/x",
        )
    ]
    result = verify(items, files)
    assert len(result.verified) == 1  # the three spellings of src/app.py merge into one
    assert set(files.asked) == {"src/app.py"}


# --------------------------------------------------------------------------- quotes


@pytest.mark.parametrize(
    ("quote", "lines"),
    [
        ("```python\nreturn eval(user_input)\n```", (7, 7)),  # a fence
        ("~~~\n    return eval(user_input)\n", (7, 7)),  # a fence never closed
        ("`return eval(user_input)`", (7, 7)),  # backticks round a one-liner
        ("os.system(‘ls ’ + user_input)", (6, 6)),  # Unicode quotes
        ("os.system('ls '+user_input)", (6, 6)),  # whitespace ignored as a last resort
        ("def run(user_input):\n...\n    return eval(user_input)", (4, 7)),  # an elided middle
        ('def run(user_input):\n    query = f"SELECT * FR…', (4, 5)),  # cut short
        ("os.system(...user_input)", (6, 6)),  # an ellipsis inside a line
        ("return eval(user_input)...", (7, 7)),
    ],
)
def test_normalised_quotes_are_found(quote: str, lines: tuple[int, int]) -> None:
    assert one(verify([item(quote=quote, start_line=lines[0], end_line=lines[1])], FILES)) == (
        *lines,
        "quote-normalised",
    )


def test_unicode_dashes_and_quotes_match_on_both_sides() -> None:
    files = {"notes.py": 'label = "a – b"  # an en dash in the code\nvalue = x - y\n'}
    found = verify([item(path="notes.py", quote='label = "a - b"', start_line=1, end_line=1)], files)
    assert one(found) == (1, 1, "quote-normalised")
    found = verify([item(path="notes.py", quote="value = x — y", start_line=2, end_line=2)], files)
    assert one(found) == (2, 2, "quote-normalised")


def test_ellipsis_pieces_must_be_in_order_and_close() -> None:
    backwards = "return eval(user_input)\n...\ndef run(user_input):"
    assert set_apart(verify([item(quote=backwards, start_line=4, end_line=7)], FILES)) == (
        "unverified",
        "quote-not-found",
    )
    far = "\n".join(f"line_{n} = {n}" for n in range(1, 21)) + "\n"
    files = {"far.py": far}
    close = verify(
        [item(path="far.py", quote="line_1 = 1\n...\nline_6 = 6", start_line=1, end_line=6)], files
    )
    assert one(close) == (1, 6, "quote-normalised")
    apart = verify(
        [item(path="far.py", quote="line_1 = 1\n...\nline_19 = 19", start_line=1, end_line=19)], files
    )
    assert set_apart(apart) == ("unverified", "quote-not-found")


def test_code_that_holds_an_ellipsis_is_matched_as_it_is() -> None:
    files = {"stub.py": "def f(x: Callable[..., int]) -> None: ...\n"}
    found = verify(
        [item(path="stub.py", quote="def f(x: Callable[..., int]) -> None: ...", start_line=1)], files
    )
    assert one(found) == (1, 1, "quote-exact")


def test_near_match_only_at_the_cited_lines() -> None:
    renamed = "os.system('ls ' + user_value)"  # one identifier changed
    assert one(verify([item(quote=renamed, start_line=6, end_line=6)], FILES)) == (6, 6, "quote-near")
    assert one(verify([item(quote=renamed, start_line=4, end_line=4)], FILES)) == (6, 6, "quote-near")
    far = verify([item(quote=renamed, start_line=11, end_line=11)], FILES)
    assert set_apart(far) == ("unverified", "quote-not-found")
    # A rename that leaves too little else to compare is no match: `eval` is all that is left.
    thin = verify([item(quote="return eval(user_value)")], FILES)
    assert set_apart(thin) == ("unverified", "quote-not-found")


CODE = (
    "def total(values, weights):\n"  # 1
    "    result = compute_total(values, weights)\n"  # 2
    "    result = clamp(result, lower=0, upper=100)\n"  # 3
    "    return normalise(result, scale=2, rounding=True)\n"  # 4
)


def test_a_made_up_line_between_two_real_ones_is_rejected() -> None:
    fabricated = (
        "result = compute_total(values, weights)\n"
        "os.remove(result, lower=0)\n"
        "return normalise(result, scale=2, rounding=True)"
    )
    real = "".join(CODE.splitlines(keepends=False)[1:4]).replace(" ", "")
    # The whole is similar enough that a 0.85 threshold would take it; the made-up line is not.
    assert fuzz.ratio("".join(fabricated.split()), real) >= 85
    found = verify([item(path="total.py", quote=fabricated, start_line=2, end_line=4)], {"total.py": CODE})
    assert set_apart(found) == ("unverified", "quote-not-found")
    slightly = fabricated.replace("os.remove(result, lower=0)", "result = clamp(result, low=0, upper=100)")
    found = verify([item(path="total.py", quote=slightly, start_line=2, end_line=4)], {"total.py": CODE})
    assert one(found) == (2, 4, "quote-near")
    assert NEAR_SIMILARITY >= 90


@pytest.mark.parametrize(
    ("real", "altered"),
    [
        ("upper=100", "upper=10"),  # a number
        ("result = clamp", "result != clamp"),  # an operator
        ("rounding=True", "rounding=False"),  # a literal
        ("return normalise", "return not normalise"),  # a keyword put in
    ],
)
def test_a_quote_with_its_logic_changed_is_not_a_near_match(real: str, altered: str) -> None:
    # As similar as a renamed name, but the code it claims is not there: a made-up finding's.
    quote = "\n".join(CODE.splitlines()[1:4]).replace(real, altered)
    assert fuzz.ratio("".join(quote.split()), "".join(CODE.split("\n", 1)[1].split())) >= 90
    found = verify([item(path="total.py", quote=quote, start_line=2, end_line=4)], {"total.py": CODE})
    assert set_apart(found) == ("unverified", "quote-not-found")
    assert NEAR_SIMILARITY >= 90


def test_a_quote_that_occurs_nowhere_is_rejected_even_at_the_cited_lines() -> None:
    found = verify([item(quote="subprocess.call(user_input, shell=True)", start_line=6, end_line=6)], FILES)
    assert set_apart(found) == ("unverified", "quote-not-found")


# --------------------------------------------------------------------------- lines

TWICE = (
    "def a():\n    x = compute(1)\n    return x\n" + "\n" * 7 + "def b():\n    x = compute(1)\n    return x\n"
)


@pytest.mark.parametrize(
    ("start", "end", "moved"),
    [
        (2, 3, 2),  # shifted
        (7, 500, None),  # end past the end of the file
        (8, 7, None),  # start and end swapped
        (6, 6, 6),  # off by one
        (0, -1, None),  # nonsense
        (None, None, None),  # none at all
    ],
)
def test_the_quote_s_lines_win_over_the_cited_ones(start: Any, end: Any, moved: int | None) -> None:
    (f,) = verify([item(start_line=start, end_line=end)], FILES).verified
    assert (f.start_line, f.end_line, f.moved_from) == (7, 7, moved)


def test_off_by_one_on_a_multi_line_finding() -> None:
    quote = "def run(user_input):\n    query = f\"SELECT * FROM t WHERE name = '{user_input}'\""
    assert one(verify([item(quote=quote, start_line=5, end_line=6)], FILES)) == (4, 5, "quote-exact")
    assert one(verify([item(quote=quote, start_line=3, end_line=5)], FILES)) == (4, 5, "quote-exact")


def test_a_copied_line_number_picks_among_repeated_copies() -> None:
    files = {"twice.py": TWICE}
    for number, line in (("2|", 2), ("12|", 12)):
        found = verify([item(path="twice.py", quote=number + "    x = compute(1)", start_line=None)], files)
        assert one(found) == (line, line, "quote-exact")
    # Sparse numbers: the first line of the quote unnumbered, the next one numbered.
    found = verify([item(path="twice.py", quote="def b():\n12|    x = compute(1)", start_line=None)], files)
    assert one(found) == (11, 12, "quote-exact")


def test_a_repeated_quote_without_a_line_hint_is_unanchored() -> None:
    files = {"twice.py": TWICE}
    found = verify([item(path="twice.py", quote="x = compute(1)", start_line=None)], files)
    assert set_apart(found) == ("unanchored", "repeated-quote")
    # Cited lines halfway between the copies do not say which one is meant either.
    found = verify([item(path="twice.py", quote="x = compute(1)", start_line=7, end_line=7)], files)
    assert set_apart(found) == ("unanchored", "repeated-quote")
    # Cited lines next to one copy pick it.
    assert one(verify([item(path="twice.py", quote="x = compute(1)", start_line=13)], files))[:2] == (12, 12)


def test_repeated_code_far_off_goes_to_the_clearly_nearest_copy() -> None:
    body = "    value = resolve_thing(ctx)\n"
    text = body + "pass\n" * 20 + body + "pass\n" * 150 + body
    files = {"many.py": text}
    (f,) = verify([item(path="many.py", quote=body, start_line=25, end_line=25)], files).verified
    assert (f.start_line, f.moved_from) == (22, 25)
    found = verify([item(path="many.py", quote=body, start_line=12, end_line=12)], files)
    assert set_apart(found) == ("unanchored", "repeated-quote")  # 11 lines from one, 10 from the other


def test_a_short_or_common_quote_never_moves_a_finding() -> None:
    text = (
        "def f(rv):\n" + "    rv = g(rv)\n    return rv\n" * 5 + "\n" * 30 + "def unique_name():\n    pass\n"
    )
    files = {"rv.py": text}
    for start in (35, 38):  # nowhere near a `return rv`
        found = verify([item(path="rv.py", quote="return rv", start_line=start)], files)
        assert set_apart(found) == ("unanchored", "weak-quote")
    found = verify([item(path="rv.py", quote="return rv", start_line=None)], files)
    assert set_apart(found) == ("unanchored", "weak-quote")
    # At the cited line, a repeated short quote needs the finding to name something there...
    generic = verify([item(path="rv.py", quote="return rv", start_line=3, title="Potential issue")], files)
    assert set_apart(generic) == ("unanchored", "weak-quote")
    # ... and a unique short one is enough on its own.
    unique = verify([item(path="rv.py", quote="pass", start_line=43, title="Potential issue")], files)
    assert one(unique) == (43, 43, "quote-exact")


def test_a_loose_match_here_loses_to_a_line_by_line_match_elsewhere() -> None:
    text = "call(a=1, b=2)\n" + "x = 0\n" * 20 + "call(a=1,\n     b=2)\n"
    found = verify(
        [item(path="c.py", quote="call(a=1,\n     b=2)", start_line=1, end_line=2)], {"c.py": text}
    )
    assert set_apart(found) == ("unanchored", "repeated-quote")


# --------------------------------------------------------------------------- no quote


def test_no_quote_cited_lines_must_name_what_the_finding_names() -> None:
    named = item(quote=None, title="`eval` of user input", start_line=7, end_line=7)
    assert one(verify([named], FILES)) == (7, 7, "cited-lines")
    swapped = item(quote=None, title="`eval` of user input", start_line=7, end_line=6)
    assert one(verify([swapped], FILES)) == (6, 7, "cited-lines")
    # Lines that do not hold it, or a finding that names nothing: set apart, never verified.
    for finding in (
        item(quote=None, title="`eval` of user input", start_line=2, end_line=2),
        item(
            quote=None, title="Potential issue", body="This code may not handle all edge cases.", start_line=7
        ),
    ):
        assert set_apart(verify([finding], FILES)) == ("unanchored", "unsupported-lines")


def test_no_quote_neighbouring_lines_that_fit_better_win() -> None:
    text = (
        "def handler(request):\n    token = read(request)\n    check(token)\n    send(token, request.user)\n"
    )
    files = {"h.py": text}
    about = "`token` is sent with `request.user` unchecked"
    found = verify([item(path="h.py", quote=None, title=about, start_line=4, end_line=4)], files)
    assert one(found) == (4, 4, "cited-lines")
    # One line off: line 3 names `token`, but line 4 names `token` and `user` too.
    found = verify([item(path="h.py", quote=None, title=about, start_line=3, end_line=3)], files)
    assert set_apart(found) == ("unanchored", "unsupported-lines")


def test_unanchored_findings_keep_what_the_model_said() -> None:
    result = verify(
        [item(quote=None, title="Potential issue", start_line=2, end_line=3, severity="critical")], FILES
    )
    (u,) = result.unanchored
    assert (u.path, u.start_line, u.end_line, u.severity, u.title) == (
        "src/app.py",
        2,
        3,
        "critical",
        "Potential issue",
    )


# --------------------------------------------------------------------------- merging


def test_the_same_lines_and_quote_merge_whatever_the_titles() -> None:
    items = [item(title="eval of user input"), item(title="Remote code execution", severity="critical")]
    result = verify(items, FILES)
    (f,) = result.verified
    assert (f.title, f.severity, f.merged_titles) == (
        "Remote code execution",
        "critical",
        ("eval of user input",),
    )
    assert result.merged == 1


def test_another_category_or_other_lines_do_not_merge() -> None:
    items = [
        item(),
        item(category="bug"),
        item(title="shell", quote="os.system('ls ' + user_input)", start_line=6, end_line=6),
    ]
    result = verify(items, FILES)
    assert len(result.verified) == 3 and result.merged == 0


def test_merging_is_transitive_and_keeps_every_title() -> None:
    items = [
        item(title="A", severity="low"),  # 7
        item(title="B", severity="medium"),  # 7, same quote as A
        item(
            title="B",
            quote="os.system('ls ' + user_input)\nreturn eval(user_input)",
            start_line=6,
            end_line=7,
        ),
    ]
    result = verify(items, FILES)
    (f,) = result.verified
    assert f.severity == "high" and sorted((f.title, *f.merged_titles)) == ["A", "B", "B"]
    assert result.merged == 2


def test_merging_many_findings_keeps_those_apart_apart() -> None:
    text = "".join(f"value_{n} = compute({n})\n" for n in range(1, 4001))
    items = [
        item(path="big.py", title="same title", quote=f"value_{n} = compute({n})", start_line=n, end_line=n)
        for n in range(1, 4001)
    ]
    items += [dict(i, severity="critical") for i in items[::2]]  # every other one twice
    result = verify(items, {"big.py": text})
    assert len(result.verified) == 4000
    assert result.merged == 2000
    assert all(f.severity == "critical" for f in result.verified if f.start_line % 2 == 1)


def test_merge_duplicates_prefers_the_more_certain_location_on_a_tie() -> None:
    shell = "os.system('ls ' + user_input)"
    (near,) = verify(
        [item(quote=shell.replace("user_input", "cmd"), start_line=6, end_line=6)], FILES
    ).verified
    (exact,) = verify([item(quote=shell, start_line=6, end_line=6)], FILES).verified
    assert near.location == "quote-near" and exact.location == "quote-exact"
    (kept,) = merge_duplicates([near, exact])
    assert kept.location == "quote-exact" and kept.merged_titles == (near.title,)


# --------------------------------------------------------------------------- what the model is asked


def test_the_model_is_asked_for_a_short_verbatim_quote() -> None:
    schema = response_schema()
    quote = schema["properties"]["findings"]["items"]["properties"]["quote"]["description"]
    for words in ("verbatim", "one to three", "no ``` fence", "no ... or …"):
        assert words in quote
    text = render_instructions("review", schema=schema, example="{}").text
    assert "one to three consecutive lines" in text and "without a ``` fence" in text
    assert 'without "..." or "…"' in text and "no leading" in text
    assert set(LOCATIONS) == {"quote-exact", "quote-normalised", "quote-near", "cited-lines"}


def test_a_loose_match_never_moves_a_finding() -> None:
    # Whitespace or an ellipsis ignored: good enough to confirm the cited lines, not to move.
    for quote in ("os.system(...user_input)", "os.system('ls '+user_input)"):
        assert one(verify([item(quote=quote, start_line=6, end_line=6)], FILES))[:2] == (6, 6)
        far = verify([item(quote=quote, start_line=11, end_line=11)], FILES)
        assert set_apart(far) == ("unverified", "quote-not-found")


def test_the_function_a_finding_names_picks_among_copies() -> None:
    copy = "    value = resolve_thing(ctx)\n"
    text = "def alpha(ctx):\n" + copy + "    return value\n\n\ndef beta(ctx):\n" + copy + "    return value\n"
    files = {"ab.py": text}
    in_beta = item(
        path="ab.py", quote=copy, start_line=None, end_line=None, body="In `beta`, the value leaks."
    )
    (f,) = verify([in_beta], files).verified
    assert (f.start_line, f.location) == (7, "quote-exact")
    in_neither = dict(in_beta, body="The value leaks.")
    assert set_apart(verify([in_neither], files)) == ("unanchored", "repeated-quote")
    # At the cited lines the quote stands: the name does not move it to the other copy.
    (g,) = verify([dict(in_beta, start_line=2, end_line=2)], files).verified
    assert g.start_line == 2
