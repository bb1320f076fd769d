"""fit/: compressing before dropping, exact counts within the budget, outlines that keep line
numbers, the verifier on elided lines, fallbacks, the summary, the cache."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tokenizers import Tokenizer as HFTokenizer

import wholerepo
from conftest import MakeRepo, git
from wholerepo.cli import main
from wholerepo.fit import plan
from wholerepo.fit.kinds import rank_class
from wholerepo.fit.parse import analyze
from wholerepo.reviewer.findings import verify

STYLES = ("xml", "markdown", "plain", "json")


def hf_count(hf: HFTokenizer, text: str) -> int:
    return len(hf.encode(text, add_special_tokens=False).ids)


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    return result


def module(name: str, imports: list[str], functions: int = 6, lines: int = 12) -> str:
    """A Python module with a docstring, imports, a constant and ``functions`` functions."""
    out = [
        f'"""The {name} module."""\n',
        *(f"import {i}\n" for i in imports),
        f"\nLIMIT_{name.upper()} = 10\n",
    ]
    for f in range(functions):
        out.append(f'\n\ndef {name}_fn{f}(value):\n    """Do step {f} of {name}."""\n    total = value\n')
        out.extend(f"    total = total * {k} + {f}  # work line {k} in {name}\n" for k in range(lines))
        out.append("    return total\n")
    return "".join(out)


def src_layout() -> dict[str, str | bytes]:
    """A src-layout package whose core everything imports, with bench/, scripts/ and docs/."""
    files: dict[str, str | bytes] = {
        "README.md": "# pkg\n\nA package.\n",
        "pyproject.toml": '[project]\nname = "pkg"\n',
        "src/pkg/__init__.py": "from pkg.core import core_fn0\n",
        "src/pkg/core.py": module("core", []),
        "docs/Makefile": "html:\n\tsphinx-build . _build\n",
        "docs/guide.md": "# Guide\n\n" + "Use the package like this, with care.\n" * 120,
        "requirements.txt": "requests\n",
        "docs/requirements.txt": "sphinx\n",
    }
    for i in range(6):
        files[f"src/pkg/mod{i}.py"] = module(f"mod{i}", ["pkg.core"] + ([f"pkg.mod{i - 1}"] if i else []))
        files[f"tests/test_mod{i}.py"] = module(f"test_mod{i}", [f"pkg.mod{i}", "pkg.core"])
    for name in ("bench_core", "bench_mods"):
        files[f"bench/{name}.py"] = module(name, ["pkg.core"])
    files["scripts/release.py"] = module("release", ["pkg"])
    return files


# -- the src-layout package: its core first ------------------------------------------------------


def test_the_core_of_a_src_layout_package_ranks_first(make_repo: MakeRepo) -> None:
    root = make_repo(src_layout())
    full = wholerepo.pack(root, cache=False)
    result = wholerepo.pack(root, cache=False, budget=full.prompt_tokens // 3)
    order = [r.path for r in result.ranking]
    assert order[:2] == ["pyproject.toml", "README.md"] or order[:2] == ["README.md", "pyproject.toml"]
    source = [p for p in order if p.startswith("src/")]
    assert source[0] == "src/pkg/core.py", order
    last_source = max(order.index(p) for p in source)
    for other in ("tests/", "bench/", "scripts/", "docs/"):
        assert all(order.index(p) > last_source for p in order if p.startswith(other)), (other, order)
    assert (
        order.index("tests/test_mod0.py") < order.index("bench/bench_core.py") < order.index("docs/guide.md")
    )
    # A Makefile or requirements.txt below the root is not a project manifest.
    assert order.index("docs/Makefile") > last_source and order.index("docs/requirements.txt") > last_source
    assert rank_class("docs/Makefile") != 0 and rank_class("docs/requirements.txt") != 0
    assert rank_class("requirements.txt") == 0 and rank_class("Makefile") == 0
    why = {r.path: r.why for r in result.ranking}
    assert "imported by 15 files" in why["src/pkg/core.py"], why["src/pkg/core.py"]


# -- far over the budget -----------------------------------------------------------------------


def over_budget(make_repo: MakeRepo, times: int) -> tuple[Path, int]:
    """big_repo(), and a budget ``times`` smaller than its whole pack."""
    root = make_repo(big_repo())
    return root, wholerepo.pack(root, cache=False).prompt_tokens // times


def big_repo() -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {
        "README.md": "# big\n\nA big project.\n",
        "pyproject.toml": '[project]\nname = "big"\n',
    }
    for i in range(24):
        files[f"src/big/m{i:02d}.py"] = module(
            f"m{i:02d}", [f"big.m{(i * 7) % 24:02d}", "big.m00"], functions=5
        )
        files[f"tests/test_m{i:02d}.py"] = module(f"t{i:02d}", [f"big.m{i:02d}"], functions=3)
    for i in range(8):
        files[f"docs/page{i}.md"] = "Some documentation words here, and more of them.\n" * 60
    files["data/table.csv"] = "".join(f"{i},{i * i},{i % 7}\n" for i in range(400))
    return files


@pytest.mark.parametrize("style", STYLES)
def test_five_times_over_the_budget_compresses_holds_and_fills_it(
    hf: HFTokenizer, make_repo: MakeRepo, style: str
) -> None:
    root = make_repo(big_repo())
    full = wholerepo.pack(root, style=style, cache=False)
    budget = full.prompt_tokens // 5
    result = wholerepo.pack(root, style=style, cache=False, budget=budget)
    exact = hf_count(hf, result.text)
    assert exact == result.prompt_tokens <= budget
    assert exact >= 0.95 * budget
    status = {f.path: f.status for f in result.files}
    assert sorted(status) == sorted(big_repo())  # every file accounted for, once
    assert len(result.files) == len(status)
    compressed = [f for f in result.files if f.status == "compressed"]
    assert compressed and all(f.elided and f.full_tokens and f.tokens < f.full_tokens for f in compressed)
    # Skeletons come before leaving anything out: the least important files went first.
    dropped = [f for f in result.files if f.reason == "over-budget"]
    assert all(f.rank is not None for f in result.files)
    # Only when even outlines do not all fit does a file go, the least important groups first.
    if any(f.path.startswith("src/") for f in dropped):
        assert all(status[p] == "skipped" for p in status if p.startswith("docs/"))
    # What the text holds is what the manifest says.
    for f in result.files:
        shown = f.path in result.text.split("\n", 1)[1] and _has_section(result.text, f.path, style)
        assert shown == (f.status in ("included", "compressed")), (f.path, f.status)
    for f in compressed:
        assert _section_status(result.text, f.path, style) == "compressed"
    manifest = result.manifest()
    entries = {e["path"]: e for e in manifest["files"]}
    for f in compressed:
        assert entries[f.path]["elided"] and entries[f.path]["full_tokens"] == f.full_tokens
        assert entries[f.path]["rank"] == f.rank and entries[f.path]["why"]
    # Deterministic: the same text again (and again from a warm cache).
    assert wholerepo.pack(root, style=style, cache=False, budget=budget).text == result.text


def _has_section(text: str, path: str, style: str) -> bool:
    marker = {
        "xml": f'<file path="{path}"',
        "markdown": f"## File: {path}",
        "plain": f"File: {path}",
        "json": f'{{"path": "{path}"',
    }[style]
    return marker in text


def _section_status(text: str, path: str, style: str) -> str:
    if style in ("markdown", "plain"):
        head = f"## File: {path}" if style == "markdown" else f"File: {path}"
        return "compressed" if f"\n{head} (compressed)\n" in text else "included"
    if style == "xml":
        found = re.search(rf'<file path="{re.escape(path)}"( status="(\w+)")?>', text)
        assert found
        return found.group(2) or "included"
    for line in text.splitlines():
        if line.startswith(f'{{"path": "{path}"'):
            return str(json.loads(line.rstrip(","))
                       .get("status", "included"))  # fmt: skip
    raise AssertionError(path)


def test_warm_cache_gives_the_same_text_and_parses_only_changed_files(
    make_repo: MakeRepo, isolated_env: Path
) -> None:
    root, budget = over_budget(make_repo, 4)
    cold = wholerepo.pack(root, budget=budget, keep_file_text=False)
    warm = wholerepo.pack(root, budget=budget, keep_file_text=False)
    assert warm.text == cold.text and warm.prompt_tokens == cold.prompt_tokens
    db = sqlite3.connect(next((isolated_env / "cache").glob("cache-v*.sqlite")))
    parsed = db.execute("SELECT count(*) FROM parses").fetchone()[0]
    assert parsed == len(big_repo())
    (root / "src/big/m03.py").write_text(module("m03", ["big.m05"], functions=7), encoding="utf-8")
    changed = wholerepo.pack(root, budget=budget, keep_file_text=False)
    assert db.execute("SELECT count(*) FROM parses").fetchone()[0] == parsed + 1
    assert changed.text != cold.text and changed.prompt_tokens <= budget


def test_nothing_derived_from_unredacted_text_is_stored(make_repo: MakeRepo, isolated_env: Path) -> None:
    root, budget = over_budget(make_repo, 4)
    result = wholerepo.pack(root, budget=budget, redact=False, keep_file_text=False)
    assert [f for f in result.files if f.status == "compressed"]
    db = sqlite3.connect(next((isolated_env / "cache").glob("cache-v*.sqlite")))
    assert db.execute("SELECT count(*) FROM parses").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0


def test_ten_times_over_the_budget_leaves_out_the_least_important(
    hf: HFTokenizer, make_repo: MakeRepo
) -> None:
    root, budget = over_budget(make_repo, 10)
    result = wholerepo.pack(root, cache=False, budget=budget)
    assert hf_count(hf, result.text) == result.prompt_tokens <= budget
    assert result.prompt_tokens >= 0.95 * budget
    status = {f.path: f.status for f in result.files}
    dropped = [f for f in result.files if f.reason == "over-budget"]
    assert dropped and all(f.status == "skipped" and f.tokens > 0 for f in dropped)
    assert all(status[p] == "skipped" for p in status if p.startswith("docs/"))
    assert all(status[p] != "skipped" for p in ("README.md", "pyproject.toml", "src/big/m00.py"))
    kept_ranks = sorted(f.rank or 0 for f in result.files if f.status != "skipped")
    dropped_ranks = sorted(f.rank or 0 for f in dropped)
    assert kept_ranks[len(kept_ranks) // 2] < dropped_ranks[len(dropped_ranks) // 2]


def test_fit_rank_only_leaves_out_and_never_compresses(hf: HFTokenizer, make_repo: MakeRepo) -> None:
    root, budget = over_budget(make_repo, 5)
    result = wholerepo.pack(root, cache=False, budget=budget, fit="rank")
    assert not [f for f in result.files if f.status == "compressed"]
    assert [f for f in result.files if f.reason == "over-budget"]
    assert hf_count(hf, result.text) == result.prompt_tokens <= budget
    assert result.manifest()["fit"] == "rank"
    kept = [f.rank or 0 for f in result.files if f.status == "included"]
    assert min(kept) == 1
    # The same through the command line, and a mode that does not exist is a usage error.
    out = root.parent / "rank.xml"
    flagged = run("pack", str(root), "--budget", str(budget), "--fit", "rank", "-o", str(out), "-q")
    assert flagged.exit_code == 0 and out.read_text(encoding="utf-8") == result.text
    assert run("pack", str(root), "--fit", "shard").exit_code == 2


# -- outlines keep line numbers; the verifier knows what was elided --------------------------------


def service() -> str:
    """An account class: many small methods, then ``deposit`` (with a bug) last."""
    methods = "".join(
        f'    def rule_{i}(self, amount):\n        """Check rule {i}."""\n        if amount > {i}:\n'
        + "".join(f"            self.history.append(('rule', {i}, {k}))\n" for k in range(8))
        + "        return amount\n\n"
        for i in range(30)
    )
    return (
        '"""Accounts."""\n\nimport os\n\nRATE = 0.25\n\n\nclass Account:\n    """A bank account."""\n\n'
        "    def __init__(self, owner):\n        self.owner = owner\n        self.balance = 0\n"
        "        self.history = []\n        self.created = os.getpid()\n\n"
        + methods
        + '    def deposit(self, amount):\n        """Add money."""\n        if amount <= 0:\n'
        '            raise ValueError("amount must be positive")\n        self.balance -= amount\n'
        '        self.history.append(("deposit", amount))\n        return self.balance\n'
    )


@pytest.mark.parametrize("line_numbers", ["all", "sparse", "none"])
def test_outline_lines_keep_their_numbers_and_findings_on_elided_lines_are_unverified(
    make_repo: MakeRepo, line_numbers: str
) -> None:
    text = service()
    root = make_repo({"bank/service.py": text, "README.md": "# bank\n"})
    full = wholerepo.pack(root, cache=False, line_numbers=line_numbers)
    result = wholerepo.pack(root, cache=False, line_numbers=line_numbers, budget=full.prompt_tokens * 3 // 5)
    assert result.prompt_tokens <= full.prompt_tokens * 3 // 5
    f = result.file("bank/service.py")
    assert f is not None and f.status == "compressed", f
    assert f.text == text  # the verifier gets the whole file
    body = result.text.split('<file path="bank/service.py" status="compressed">\n', 1)[1].split("</file>", 1)[
        0
    ]
    lines = text.split("\n")
    numbered = markers = 0
    for shown in body.splitlines():
        if "⋮" in shown:
            found = re.search(r"lines? (\d+)(?:-(\d+))? elided", shown)
            assert found
            first, last = int(found.group(1)), int(found.group(2) or found.group(1))
            assert (first, last) in f.elided
            markers += 1
            continue
        number, bar, content = shown.partition("|")
        if bar and number.isdigit():
            assert lines[int(number) - 1] == content  # a numbered line is that line of the file
            numbered += 1
    assert markers == len(f.elided) and markers > 0
    assert numbered > 0 or line_numbers == "none"
    signature = lines.index("    def deposit(self, amount):") + 1
    bug = lines.index("        self.balance -= amount") + 1
    assert "    def deposit(self, amount):" in body and "self.balance -= amount" not in body
    assert any(a <= bug <= b for a, b in f.elided) and not any(a <= signature <= b for a, b in f.elided)
    files = {p.path: p.text or "" for p in result.included}
    kept = {
        "path": "bank/service.py", "start_line": signature, "end_line": signature, "severity": "low",
        "category": "style", "title": "deposit has no type hints", "body": "Add them.",
        "quote": "def deposit(self, amount):",
    }  # fmt: skip
    hidden = {
        **kept,
        "start_line": bug,
        "end_line": bug,
        "title": "deposit subtracts",
        "quote": "self.balance -= amount",
    }
    by_line = {
        **kept,
        "start_line": bug + 1,
        "end_line": bug + 2,
        "title": "history grows",
        "body": "deposit() appends to self.history on every call and never trims it.",
        "quote": None,
    }
    checked = verify([kept, hidden, by_line], files, elided=result.elided)
    assert [(v.title, v.start_line) for v in checked.verified] == [("deposit has no type hints", signature)]
    assert sorted((u.title, u.reason) for u in checked.unverified) == [
        ("deposit subtracts", "elided"),
        ("history grows", "elided"),
    ]
    # The same findings on the file sent whole verify.
    assert len(verify([hidden, by_line], files).verified) == 2


# -- fallbacks ---------------------------------------------------------------------------------------


def test_syntax_errors_and_unknown_languages_fall_back_with_a_reason(make_repo: MakeRepo) -> None:
    broken = (
        "def ok(a):\n    return a\n\nclass Broken(:\n    pass\n"
        + "x = [1,\n" * 3
        + "".join(f"value_{i} = {i}  # a line that keeps this file long\n" for i in range(120))
    )
    files: dict[str, str | bytes] = {
        "src/broken.py": broken,
        "notes/long.txt": "".join(f"note line {i}: nothing to parse here, just words\n" for i in range(300)),
        "src/weird.xyz": "".join(f"{{{i}}} ~~ unknown format line\n" for i in range(300)),
        "src/app.py": module("app", ["os"]),
    }
    root = make_repo(files)
    facts = analyze("src/broken.py", broken)
    assert facts.method == "head" and facts.note is not None and "syntax error at line 4" in facts.note
    assert analyze("notes/long.txt", str(files["notes/long.txt"])).method == "head"
    full = wholerepo.pack(root, cache=False)
    result = wholerepo.pack(root, cache=False, budget=full.prompt_tokens // 3)
    reasons = {f.path: (f.status, f.reason) for f in result.files}
    assert reasons["src/app.py"][0] in ("included", "compressed")
    for path in ("src/broken.py", "notes/long.txt", "src/weird.xyz"):
        status, reason = reasons[path]
        assert status in ("included", "compressed", "skipped"), (path, status)
        if status == "compressed":
            assert reason is not None and ("first lines" in reason or "syntax error" in reason), reason
    assert reasons["src/broken.py"][0] == "compressed"
    assert "syntax error at line 4" in str(reasons["src/broken.py"][1])


def test_a_grammar_oddity_never_crashes_the_pack(make_repo: MakeRepo) -> None:
    root = make_repo(
        {
            "a.js": "export default function (\n" * 50,
            "b.rs": "fn main() { let x = ; }\n" * 40,
            "c.go": "package main\nfunc (\n" * 40,
            "d.java": "class { void m( }\n" * 40,
            "e.h": "template <typename T> class X { T t; };\n" * 40,
            "f.ts": "import type { A } from '@nowhere/x';\nexport const a: A = {} as A;\n" * 30,
            "g.py": "\x00\x01 not really python\n" * 5,
        }
    )
    full = wholerepo.pack(root, cache=False)
    result = wholerepo.pack(root, cache=False, budget=max(full.prompt_tokens // 3, 300))
    assert result.prompt_tokens <= max(full.prompt_tokens // 3, 300)


# -- the summary and --explain-ranking ----------------------------------------------------------------


def test_summary_names_the_most_important_files_not_sent_whole(make_repo: MakeRepo, tmp_path: Path) -> None:
    root, budget = over_budget(make_repo, 5)
    manifest = tmp_path / "m.json"
    result = run(
        "pack", str(root), "--budget", str(budget), "-o", str(tmp_path / "o.xml"), "--manifest", str(manifest)
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(manifest.read_text())
    hit = sorted(
        (f for f in doc["files"] if f["status"] == "compressed" or f["reason"] == "over-budget"),
        key=lambda f: f["rank"],
    )
    line = next(x for x in result.stderr.splitlines() if "most important files not sent whole" in x)
    named = re.findall(r"(\S+) \((compressed|left out), rank (\d+)\)", line)
    assert [n[0] for n in named] == [f["path"] for f in hit[:10]]
    assert "--manifest" in line and "--explain-ranking" in line
    assert "compressed to outlines" in result.stderr


def test_explain_ranking_prints_every_file_in_order(make_repo: MakeRepo, tmp_path: Path) -> None:
    root = make_repo(src_layout())
    result = run("pack", str(root), "-o", str(tmp_path / "o.xml"), "--explain-ranking", "-q")
    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stderr.splitlines()[1:]]
    assert [int(r[0]) for r in rows] == list(range(1, len(src_layout()) + 1))
    assert all(r[2] == "whole" for r in rows)  # it fits: ranked on request, all sent whole
    core = next(line for line in result.stderr.splitlines() if "src/pkg/core.py" in line)
    assert "imported by 15 files" in core and "centrality" in core


def test_review_dry_run_names_what_is_not_sent_whole(make_repo: MakeRepo) -> None:
    from fake_openai import FakeOpenAI

    root = make_repo(big_repo())
    models = [{"id": "local-model", "object": "model", "max_model_len": 9000}]
    with FakeOpenAI(models=models) as server:
        dry = CliRunner().invoke(
            main,
            ["review", str(root), "--base-url", server.url, "--dry-run", "--max-output-tokens", "500"],
        )
        assert dry.exit_code == 0, dry.stderr
        assert "most important files not sent whole" in dry.stdout
        assert "will be sent compressed to outlines" in dry.stdout
        as_json = CliRunner().invoke(
            main,
            ["review", str(root), "--base-url", server.url, "--dry-run", "--format", "json",
             "--max-output-tokens", "500"],
        )  # fmt: skip
    report = json.loads(as_json.stdout)
    top = report["not_sent"]["most_important"]
    assert 0 < len(top) <= 10 and [t["rank"] for t in top] == sorted(t["rank"] for t in top)


# -- the pytest example from the issue ------------------------------------------------------------------

PYTEST_CORPUS = Path("/tmp/pytest-corpus")


@pytest.mark.skipif(not (PYTEST_CORPUS / "src/_pytest/nodes.py").is_file(), reason="no pytest checkout")
def test_pytest_at_100k_keeps_its_core_ahead_of_bench_and_scripts(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    result = run("pack", str(PYTEST_CORPUS), "--budget", "100000", "-o", str(tmp_path / "o.xml"),
                 "--manifest", str(manifest), "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    files = {f["path"]: f for f in json.loads(manifest.read_text())["files"]}
    core = ["src/pytest/__init__.py", "src/_pytest/config/__init__.py", "src/_pytest/python.py",
            "src/_pytest/nodes.py", "src/_pytest/runner.py"]  # fmt: skip
    for path in core:
        assert files[path]["status"] in ("included", "compressed"), files[path]
    worst = max(files[p]["rank"] for p in core)
    for path, f in files.items():
        if path.startswith(("bench/", "scripts/")) and f.get("rank"):
            assert f["rank"] > worst, path


def test_git_history_is_read_once_and_counts_churn(make_repo: MakeRepo) -> None:
    root = make_repo(big_repo())
    for n in range(3):
        (root / "src/big/m05.py").write_text(module("m05", ["big.m01"], functions=5 + n), encoding="utf-8")
        git(root, "commit", "-qam", f"change {n}")
    budget = wholerepo.pack(root, cache=False).prompt_tokens // 4
    result = wholerepo.pack(root, cache=False, budget=budget)
    why = {r.path: r.why for r in result.ranking}
    assert any("changed in 4 of the last 4 commits" in w for w in why["src/big/m05.py"]), why[
        "src/big/m05.py"
    ]
    assert any("changed in 1 of the last 4 commits" in w for w in why["src/big/m06.py"])


def _exact(options: list[plan.Option], frame: int, note: int) -> plan.Assemble:
    """The output's tokens of a choice, as the packer counts them: frame, files, tree lines and
    the note that comes with the first compressed file."""
    by_path = {o.path: o for o in options}

    def assemble(choice: Mapping[str, str]) -> int:
        n = frame + (note if plan.COMPRESSED in choice.values() else 0)
        for p, form in choice.items():
            o = by_path[p]
            n += o.tree + (o.full if form == plan.FULL else o.compressed or 0)
        return n

    return assemble


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (400, {"core.py": "full", "test.py": "full", ".gitignore": "full", "guide.md": "full"}),
        # The note on compressed files would outweigh the outline: the top file goes in whole.
        (250, {"core.py": "full", "test.py": "full"}),
        (220, {"core.py": "full"}),
        # Neither form fits: it is left out and smaller, less important files take the room.
        (180, {"test.py": "full", ".gitignore": "full", "guide.md": "full"}),
    ],
)
def test_a_tiny_budget_never_trades_the_top_file_for_the_compression_note(
    limit: int, expected: dict[str, str]
) -> None:
    options = [
        plan.Option("core.py", 105, 75, 7),
        plan.Option("test.py", 21, None, 8),
        plan.Option(".gitignore", 24, None, 8),
        plan.Option("guide.md", 24, None, 7),
    ]
    assemble = _exact(options, frame=83, note=55)
    choice = plan.plan(options, limit, 83, True, assemble, note=55)
    assert choice == expected
    assert assemble(choice) <= limit


def test_the_planner_compresses_before_it_leaves_out_when_the_note_is_paid_once() -> None:
    options = [plan.Option(f"m{i}.py", 100, 30, 5) for i in range(6)]
    assemble = _exact(options, frame=50, note=40)
    choice = plan.plan(options, 400, 50, True, assemble, note=40)
    # Six outlines (6 x 35) and the note fit with room to send the most important whole.
    assert set(choice) == {o.path for o in options}
    assert choice["m0.py"] == plan.FULL and choice["m5.py"] == plan.COMPRESSED
    assert assemble(choice) <= 400


def test_a_pass_that_overshoots_tries_again_with_less_instead_of_giving_up() -> None:
    # b.py's tree line costs more than estimated (new directories, say): the first choice is
    # trimmed of it, and every later pass, estimating the same, would add it back and overshoot.
    options = [
        plan.Option("a.py", 100, None, 5),
        plan.Option("deep/er/b.py", 40, None, 5),
        plan.Option("c.py", 8, None, 5),
        plan.Option("d.py", 8, None, 5),
    ]
    estimated = _exact(options, frame=50, note=0)

    def assemble(choice: Mapping[str, str]) -> int:
        return estimated(choice) + (5 if "deep/er/b.py" in choice else 0)

    choice = plan.plan(options, 200, 50, False, assemble)
    assert choice == {"a.py": plan.FULL, "c.py": plan.FULL, "d.py": plan.FULL}
    assert assemble(choice) <= 200


def test_a_line_too_long_to_fit_stays_elided_and_the_lines_after_it_fill_the_budget(
    hf: HFTokenizer, make_repo: MakeRepo
) -> None:
    # Each file's first elided line is a data blob larger than the room left: shown again from
    # the top, nothing after it could come back and most of the budget stayed unused.
    body = "".join(f"def f{i}(a, b):\n    x = a + b\n    y = x * 2\n    return y\n\n" for i in range(300))
    blob = "xy " * 50000
    files: dict[str, str | bytes] = {
        "longdef.py": f"def g(a):\n    return '{blob}'\n" + body,
        "longfirst.dat": f"# {blob}\n" + "".join(f"line {i} of data\n" for i in range(400)),
        "other.py": body,
    }
    root = make_repo(files)
    result = wholerepo.pack(root, cache=False, budget=20000, line_numbers="all")
    exact = hf_count(hf, result.text)
    assert exact == result.prompt_tokens <= 20000
    assert exact >= 0.95 * 20000
    longdef = result.file("longdef.py")
    assert longdef is not None and longdef.status == "compressed"
    assert (2, 2) in longdef.elided  # the blob
    assert "\n3|def f0(a, b):\n" in result.text  # and what follows it, at its own number
    assert blob not in result.text
