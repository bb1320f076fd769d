"""`wholerepo eval plant`: bugs planted as commits with their ground truth, checked by running the
planted repository's own tests in a subprocess (on real git repositories built with the binary).

The test suites run with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``: the planted project needs no plugin,
and loading this environment's (hypothesis) costs seconds per run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import MakeRepo, git
from ledger_project import FILES_MAP
from wholerepo.cli import main
from wholerepo.eval.corpus import Corpus, load_corpus
from wholerepo.eval.mutate import BUG_KINDS, CLEAN_KINDS, Index, Module, apply, candidates, expected_locations


@pytest.fixture
def fast_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def plant(repo: Path, out: Path, *args: str) -> Corpus:
    result = CliRunner().invoke(
        main, ["eval", "plant", str(repo), "-o", str(out), *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    return load_corpus(out)


def clone(corpus: Corpus, into: Path) -> Path:
    subprocess.run(
        ["git", "clone", "-q", "--mirror", str(corpus.root / "repo.bundle"), str(into)], check=True
    )
    return into


def suite_passes(tree: Path) -> bool:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
         "-W", "error::ResourceWarning", "-W", "error::pytest.PytestUnraisableExceptionWarning",
         "-W", "error::RuntimeWarning"],
        cwd=tree, capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1",
             "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )  # fmt: skip
    return proc.returncode == 0


@pytest.mark.usefixtures("fast_pytest")
def test_every_kind_is_planted_and_every_planted_commit_changes_behaviour(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = make_repo(FILES_MAP, name="ledger")
    before = git(repo, "rev-parse", "HEAD")
    # 16 bugs: 8 cross-file slots and one slot for each of the 8 local kinds; 5 clean refactors.
    corpus = plant(repo, tmp_path / "corpus", "--count", "21", "--seed", "3")
    assert git(repo, "rev-parse", "HEAD") == before and not git(repo, "status", "--porcelain")
    kinds = [c.kind for c in corpus.cases]
    assert set(kinds) == set(BUG_KINDS) | set(CLEAN_KINDS)
    bugs = [c for c in corpus.cases if not c.clean]
    assert len(bugs) == 16 and sum(1 for c in bugs if c.cross_file) == 8
    bare = clone(corpus, tmp_path / "bare.git")
    base = corpus.cases[0].base
    assert {c.base for c in corpus.cases} == {base}
    assert git(bare, "rev-list", "--count", base).strip() == "1"  # a snapshot: no history
    for case in corpus.cases:
        assert git(bare, "rev-parse", f"{case.head}^").strip() == base  # one commit per case
        tree = tmp_path / "trees" / case.id
        git(bare, "worktree", "add", "-q", "--detach", str(tree), case.head)
        # Every planted commit changes behaviour: the project's own tests fail on it, and pass on
        # every clean refactor.
        assert suite_passes(tree) is case.clean, f"{case.id} ({case.kind})"
        for issue in case.expected:
            lines = (tree / issue.path).read_text(encoding="utf-8").splitlines()
            assert (
                issue.end_line <= len(lines) and "".join(lines[issue.start_line - 1 : issue.end_line]).strip()
            )
            assert issue.description and issue.category in ("bug", "security")
        git(bare, "worktree", "remove", "--force", str(tree))
    base_tree = tmp_path / "trees" / "base"
    git(bare, "worktree", "add", "-q", "--detach", str(base_tree), base)
    assert suite_passes(base_tree)


def test_a_planted_cross_file_bugs_caller_is_outside_the_diff(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo(FILES_MAP, name="ledger")
    corpus = plant(repo, tmp_path / "corpus", "--count", "8", "--seed", "5", "--tests", "off")
    bare = clone(corpus, tmp_path / "bare.git")
    callee_changes = [c for c in corpus.cases if c.kind == "callee-change"]
    assert callee_changes
    for case in callee_changes:
        changed = git(bare, "diff", "--name-only", case.base, case.head).split()
        assert case.cross_file is True
        for issue in case.expected:
            assert issue.path not in changed  # the broken caller was not touched
            caller = git(bare, "show", f"{case.head}:{issue.path}").splitlines()[issue.start_line - 1]
            assert "(" in caller  # the call itself


def test_planting_is_deterministic_by_seed(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo(FILES_MAP, name="ledger")
    first = plant(repo, tmp_path / "one", "--count", "8", "--seed", "11", "--tests", "off")
    second = plant(repo, tmp_path / "two", "--count", "8", "--seed", "11", "--tests", "off")
    other = plant(repo, tmp_path / "three", "--count", "8", "--seed", "12", "--tests", "off")
    assert (tmp_path / "one" / "corpus.toml").read_bytes() == (tmp_path / "two" / "corpus.toml").read_bytes()
    assert [c.head for c in first.cases] == [c.head for c in second.cases]  # the same commits, SHAs and all
    assert [c.head for c in first.cases] != [c.head for c in other.cases]
    assert first.cases[0].base == other.cases[0].base  # the same snapshot
    # Half the bug cases need another file to be seen; a quarter of the cases are clean.
    bugs = [c for c in first.cases if not c.clean]
    assert len(first.cases) - len(bugs) == 2 and sum(1 for c in bugs if c.cross_file) == 3


def test_plant_refuses_what_it_cannot_do(make_repo: MakeRepo, tmp_path: Path) -> None:
    runner = CliRunner()
    plain = tmp_path / "plain"
    plain.mkdir()
    result = runner.invoke(main, ["eval", "plant", str(plain), "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "not in a git repository" in result.stderr
    repo = make_repo({"notes.md": "# no code\n"}, name="docs")
    result = runner.invoke(main, ["eval", "plant", str(repo), "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "nothing could be planted" in result.stderr
    code = make_repo(FILES_MAP, name="ledger")
    plant(code, tmp_path / "c2", "--count", "2", "--tests", "off")
    result = runner.invoke(main, ["eval", "plant", str(code), "-o", str(tmp_path / "c2")])
    assert result.exit_code == 2 and "exists" in result.stderr


def _index(files: dict[str, str]) -> Index:
    return Index(
        [Module(path, text, ast.parse(text)) for path, text in files.items() if path.endswith(".py")]
    )


def test_every_candidate_parses_and_leaves_the_rest_byte_identical() -> None:
    index = _index(FILES_MAP)
    texts = {path: m.text for path, m in index.modules.items()}
    for kind in (*BUG_KINDS, *CLEAN_KINDS):
        found = candidates(index, kind)
        assert found, kind
        for mutation in found:
            edited = apply(texts, mutation.edits)
            for path, text in edited.items():
                compile(text, path, "exec")
                old = texts[path].splitlines()
                new = text.splitlines()
                # Lines before the first edit are untouched.
                first = min(e.start for e in mutation.edits if e.path == path)
                keep = texts[path].count("\n", 0, first)
                assert old[:keep] == new[:keep]
            if not mutation.clean:
                for path, start, end in expected_locations(mutation, {**texts, **edited}):
                    assert 1 <= start <= end <= len({**texts, **edited}[path].splitlines())


def test_argument_order_knows_a_callee_in_another_file() -> None:
    index = _index(FILES_MAP)
    swaps = [
        m for m in candidates(index, "argument-order") if "`clamp` takes `value` then `low`" in m.description
    ]
    assert swaps and all(m.cross_file for m in swaps)  # clamp() lives in money.py, the call in report.py
    assert swaps[0].edits[0].path == "ledger/report.py"
    missing = candidates(index, "missing-await")
    assert any("rates.rate(currency)" in m.description for m in missing)


def test_ground_truth_points_at_code_after_a_deletion_and_over_a_swallowing_handler() -> None:
    index = _index(FILES_MAP)
    texts = {path: m.text for path, m in index.modules.items()}
    guards = [m for m in candidates(index, "removed-none-check") if "`if row[0] is None:`" in m.description]
    assert guards
    ((path, start, end),) = expected_locations(guards[0], {**texts, **apply(texts, guards[0].edits)})
    after = apply(texts, guards[0].edits)[path].splitlines()
    assert (start, end) == (start, start) and after[
        start - 1
    ].strip() == "return row[0]"  # the next statement
    source = (
        "def load(data, options=None):\n"
        "    if options is None:\n"
        "        options = {}\n"
        "\n"
        "    try:\n"
        "        return parse(data, **options)\n"
        "    except ValueError:\n"
        "        return None\n"
    )
    (guard,) = candidates(_index({"m.py": source}), "removed-none-check")
    ((_, start, end),) = expected_locations(guard, apply({"m.py": source}, guard.edits))
    after = apply({"m.py": source}, guard.edits)["m.py"].splitlines()
    assert [line.strip() for line in after[start - 1 : end]] == ["try:", "return parse(data, **options)"]
    (swallow,) = [m for m in candidates(index, "swallowed-exception") if m.edits[0].path == "ledger/files.py"]
    ((path, start, end),) = expected_locations(swallow, apply(texts, swallow.edits))
    lines = apply(texts, swallow.edits)[path].splitlines()
    assert lines[start - 1].strip() == "except ValueError as exc:" and lines[end - 1].strip() == "pass"


def test_a_json_corpus_file_with_its_bundle_beside_it(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo(FILES_MAP, name="ledger")
    corpus = plant(repo, tmp_path / "eval" / "ledger.json", "--count", "3", "--clean", "1", "--tests", "off")
    assert (tmp_path / "eval" / "ledger.bundle").is_file()
    assert [c.repo for c in corpus.cases] == ["ledger.bundle"] * 3
    assert sum(1 for c in corpus.cases if c.clean) == 1
    assert all(c.note and "tests not run" in c.note for c in corpus.cases if not c.clean)


def test_a_rename_leaves_names_bound_by_except_and_import_alone() -> None:
    source = (
        "def load(text):\n"
        "    error = None\n"
        "    try:\n"
        "        import json as decoder\n"
        "        value = decoder.loads(text)\n"
        "    except ValueError as error:\n"
        "        return str(error)\n"
        "    return value\n"
    )
    renamed = {m.description.split("`")[1] for m in candidates(_index({"m.py": source}), "clean-rename")}
    assert renamed == {"value"}  # not `error` (bound by except) nor `decoder` (by import)


@pytest.mark.usefixtures("fast_pytest")
def test_tests_failing_before_any_change_are_a_warning_with_the_fix_even_quiet(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    broken = {
        **FILES_MAP,
        "tests/test_needs.py": "import a_dependency_not_installed\n\n\ndef test_it():\n    pass\n",
    }
    repo = make_repo(broken, name="ledger")
    result = CliRunner().invoke(
        main, ["eval", "plant", str(repo), "-o", str(tmp_path / "c"), "--count", "2", "-q"]
    )
    assert result.exit_code == 0, result.stderr  # the corpus is still written and usable
    [line] = result.stderr.splitlines()
    assert line.startswith("wholerepo eval plant: warning: unchecked: the tests fail before any change")
    assert "a_dependency_not_installed" in line and '--test-command "CMD"' in line
    corpus = load_corpus(tmp_path / "c")
    assert len(corpus.cases) == 2 and "unchecked" in corpus.description
    # A command that passes checks every plant: no warning.
    ok = CliRunner().invoke(
        main,
        ["eval", "plant", str(repo), "-o", str(tmp_path / "d"), "--count", "2", "-q",
         "--test-command", f"{sys.executable} -m pytest -x -q -p no:cacheprovider tests/test_ledger.py"],
    )  # fmt: skip
    assert ok.exit_code == 0 and ok.stderr == ""


def test_pytest_missing_from_wholerepos_python_names_test_command() -> None:
    from wholerepo.eval.plant import unchecked_fix

    fix = unchecked_fix("/usr/local/bin/python3: No module named pytest\n", own=False)
    assert "--test-command" in fix and "install pytest and the project" in fix
    assert "pytest is not installed" not in unchecked_fix(
        "E   ModuleNotFoundError: No module named 'x'", own=False
    )
    assert "fix the command" in unchecked_fix("exit 1", own=True)
