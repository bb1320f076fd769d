"""`wholerepo eval plant`: a corpus made from any repository by planting bugs as commits.

The repository is cloned into a temporary directory and never changed. Its HEAD tree becomes one
snapshot commit (no history: the bundle stays small), and each case is one commit on top of it:
a planted bug with its ground truth, or a clean refactor that must draw no finding. Commits have a
fixed author and date, so the same repository and seed give the same commits, SHAs included.

Where the repository has tests (pytest), each candidate runs them: a bug is kept only when a test
fails on it (warnings about unclosed files and never-awaited coroutines count as failures, which
is how a leak or a missing ``await`` shows), and a refactor only when every test still passes.
About half the bug cases are cross-file (a changed callee whose unchanged caller elsewhere breaks,
or an argument-order swap whose callee lives in another file).
"""

from __future__ import annotations

import ast
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..git.repo import run, work_tree
from .corpus import dump
from .mutate import (
    BUG_KINDS,
    CLEAN_KINDS,
    GRADES,
    Index,
    Module,
    Mutation,
    apply,
    candidates,
    expected_locations,
)

AUTHOR = {
    "GIT_AUTHOR_NAME": "wholerepo eval",
    "GIT_AUTHOR_EMAIL": "eval@wholerepo.invalid",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+0000",
    "GIT_COMMITTER_NAME": "wholerepo eval",
    "GIT_COMMITTER_EMAIL": "eval@wholerepo.invalid",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+0000",
}
_NO_HOOKS = ("-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false")
MAX_TRIES = 8  # candidates tested per case before moving to another kind
MAX_FILE_BYTES = 400_000
CROSS_KINDS = ("callee-change", "argument-order")
LOCAL_KINDS = tuple(k for k in BUG_KINDS if k != "callee-change")
STRICT_WARNINGS = (
    "-W",
    "error::ResourceWarning",
    "-W",
    "error::pytest.PytestUnraisableExceptionWarning",
    "-W",
    "error::RuntimeWarning",
)

Event = Callable[[str], None]


@dataclass(frozen=True)
class Planted:
    mutation: Mutation
    head: str
    check: str  # what the tests said, for the case's note


class Tests:
    """The repository's test suite, run in the work tree: passes on the snapshot, fails on a bug."""

    def __init__(self, tree: Path, command: list[str] | None, event: Event, warn: Event) -> None:
        self.tree = tree
        self.command = command
        self.timeout = 600.0
        self.note = ""
        self.event = event
        self.warn = warn

    @classmethod
    def find(
        cls,
        tree: Path,
        paths: Sequence[str],
        test_command: str | None,
        enabled: bool,
        event: Event,
        warn: Event,
    ) -> Tests:
        if not enabled:
            tests = cls(tree, None, event, warn)
            tests.note = "tests not run (--tests off)"
            return tests
        if test_command:
            tests = cls(tree, shlex.split(test_command), event, warn)
            return tests.baseline([tests.command or []], own=True)
        if not any(Path(p).name.startswith("test_") or p.endswith("_test.py") for p in paths):
            tests = cls(tree, None, event, warn)
            tests.note = "unchecked: the repository has no pytest tests"
            return tests
        base = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
        return cls(tree, base, event, warn).baseline([base + list(STRICT_WARNINGS), base], own=False)

    def baseline(self, commands: Sequence[list[str]], *, own: bool) -> Tests:
        for command in commands:
            started = time.monotonic()
            passed, output = self._run(command, timeout=900)
            if passed:
                self.command = command
                self.timeout = max(60.0, 5 * (time.monotonic() - started))
                self.event(
                    f"tests pass on the snapshot ({' '.join(command[1:4])} ...): each plant is checked"
                )
                return self
            last = output
        self.command = None
        self.note = "unchecked: the tests fail before any change"
        # A warning, not progress: the corpus is still written, but no plant is known to change
        # behaviour, which a quiet run must not hide.
        self.warn(f"{self.note}: {_why(last)}; the corpus is planted unchecked ({unchecked_fix(last, own)})")
        return self

    @property
    def enabled(self) -> bool:
        return self.command is not None

    def _run(self, command: list[str], timeout: float) -> tuple[bool, str]:
        env = dict(os.environ)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        roots = [str(self.tree / "src"), str(self.tree)] if (self.tree / "src").is_dir() else [str(self.tree)]
        env["PYTHONPATH"] = os.pathsep.join([*roots, *filter(None, [env.get("PYTHONPATH")])])
        try:
            proc = subprocess.run(
                command, cwd=self.tree, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return False, "timed out"
        except OSError as exc:
            return False, str(exc)
        return proc.returncode == 0, proc.stdout + proc.stderr

    def check(self) -> tuple[bool, str]:
        """(passed, the first failing test or why) on the work tree as it is."""
        assert self.command is not None
        passed, output = self._run(self.command, self.timeout)
        failing = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
        return passed, failing[0] if failing else _tail(output)


def unchecked_fix(output: str, own: bool) -> str:
    """What makes the tests run, from what the failed snapshot run printed."""
    command = '--test-command "CMD" (a command that passes on your repository)'
    if own:
        return f"fix the command, or give another {command}"
    if re.search(r"No module named '?pytest\b", output):
        return (
            f"pytest is not installed in the Python that runs wholerepo ({sys.executable}): give"
            f' {command}, e.g. --test-command ".venv/bin/python -m pytest -x -q", or install pytest'
            " and the project into this environment"
        )
    return f"give {command}, or install what the tests need into this environment"


def _why(output: str) -> str:
    """The line of a failed run that says why (an import error names what is missing)."""
    for pattern in (r"^E\s+(\S*Error\b.*)$", r"^(.*No module named .*)$"):
        found = re.search(pattern, output, re.MULTILINE)
        if found:
            return found.group(1).strip()[:200]
    return _tail(output)


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def plant_corpus(
    repo: Path,
    output: Path,
    *,
    count: int = 12,
    seed: int = 0,
    clean: int | None = None,
    tests: bool = True,
    test_command: str | None = None,
    on_event: Event | None = None,
    on_warning: Event | None = None,
) -> Path:
    """Plant ``count`` cases in a copy of ``repo``; write the corpus file and its bundle."""
    event = on_event or (lambda message: None)
    warn = on_warning or event
    if not repo.is_dir():
        raise UsageError(f"not a directory: {repo}")
    top = work_tree(repo)
    if top is None:
        raise UsageError(
            f"{repo} is not in a git repository", "plant needs one: git init, commit, then plant"
        )
    corpus_file, bundle = _targets(output)
    n_clean = min(count - 1, count // 4) if clean is None else min(clean, count)
    with tempfile.TemporaryDirectory(prefix="wholerepo-plant-") as scratch:
        tree = Path(scratch) / "tree"
        run(Path(scratch), "clone", "-q", "--no-checkout", "--", str(top), str(tree), what="clone")
        try:
            source_head = run(tree, "rev-parse", "--verify", "HEAD^{commit}").decode().strip()
            head_tree = run(tree, "rev-parse", "--verify", "HEAD^{tree}").decode().strip()
        except UsageError as exc:
            raise UsageError(f"{repo} has no commit to plant in") from exc
        base = _commit(tree, head_tree, (), "snapshot")
        run(tree, "checkout", "-q", "--detach", base)
        paths = run(tree, "ls-files", "-z").decode("utf-8", "replace").split("\0")
        index = Index(_modules(tree, [p for p in paths if p.endswith(".py")]))
        checker = Tests.find(tree, paths, test_command, tests, event, warn)
        planted = _plant(tree, base, index, checker, count - n_clean, n_clean, random.Random(seed), event)
        if not planted:
            raise UsageError(f"nothing could be planted in {repo}: no Python code offers a candidate")
        refs = ["base"]
        run(tree, "branch", "-f", "base", base)
        for number, p in enumerate(planted, 1):
            name = f"case-{number:02d}"
            run(tree, "branch", "-f", name, p.head)
            refs.append(name)
        bundle.parent.mkdir(parents=True, exist_ok=True)
        run(tree, "bundle", "create", "-q", str(bundle.resolve()), *refs, what="bundle create")
        data = _corpus(repo, corpus_file, bundle, base, planted, index, checker, seed, source_head)
    from ..cli.output import write_atomic

    write_atomic(corpus_file, dump(data, corpus_file))
    return corpus_file


def _targets(output: Path) -> tuple[Path, Path]:
    if output.suffix.lower() in (".toml", ".json"):
        corpus_file, bundle = output, output.with_suffix(".bundle")
    else:
        corpus_file, bundle = output / "corpus.toml", output / "repo.bundle"
    for target in (corpus_file, bundle):
        if target.exists():
            raise UsageError(f"{target} exists", "choose another -o, or remove it first")
    return corpus_file, bundle


def _modules(tree: Path, paths: Sequence[str]) -> list[Module]:
    modules = []
    for path in sorted(paths):
        file = tree / path
        try:
            if file.is_symlink() or file.stat().st_size > MAX_FILE_BYTES:
                continue
            text = file.read_bytes().decode("utf-8")
            modules.append(Module(path, text, ast.parse(text, path)))
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
    return modules


def _commit(tree: Path, tree_id: str, parents: Sequence[str], message: str) -> str:
    args = ["commit-tree", tree_id, "-m", message]
    for parent in parents:
        args += ["-p", parent]
    return run(tree, *_NO_HOOKS, *args, env=AUTHOR).decode().strip()


def _slots(n_bug: int, n_clean: int, rng: random.Random) -> list[tuple[str, bool | None]]:
    """The kind (and whether it must be cross-file) of each case, in order."""
    local = list(LOCAL_KINDS)
    rng.shuffle(local)
    cross = list(CROSS_KINDS)
    slots: list[tuple[str, bool | None]] = []
    n_cross = (n_bug + 1) // 2
    for i in range(n_bug):
        if i % 2 == 0 and i // 2 < n_cross:
            slots.append((cross[(i // 2) % len(cross)], True))
        else:
            slots.append((local[(i // 2) % len(local)], False))
    cleans = list(CLEAN_KINDS)
    rng.shuffle(cleans)
    slots += [(cleans[i % len(cleans)], None) for i in range(n_clean)]
    return slots


def _plant(
    tree: Path,
    base: str,
    index: Index,
    checker: Tests,
    n_bug: int,
    n_clean: int,
    rng: random.Random,
    event: Event,
) -> list[Planted]:
    texts = {path: m.text for path, m in index.modules.items()}
    pools: dict[str, list[Mutation]] = {}
    for kind in (*BUG_KINDS, *CLEAN_KINDS):
        found = candidates(index, kind)
        rng.shuffle(found)
        pools[kind] = found
    used: set[str] = set()
    planted: list[Planted] = []
    slots = _slots(n_bug, n_clean, rng)
    preference = list(dict.fromkeys(kind for kind, _ in slots))  # the seeded order of the kinds
    planted_kinds: dict[str, int] = {}
    for kind, cross in slots:
        family = CLEAN_KINDS if cross is None else BUG_KINDS
        # The slot's kind first, then the kinds planted least so far (in the seeded order), of the
        # same reach (cross-file or local); a cross-file slot then takes any bug.
        others = sorted(
            (k for k in family if k != kind),
            key=lambda k: (planted_kinds.get(k, 0), preference.index(k) if k in preference else len(family)),
        )
        attempts = (
            [(kind, cross)] + [(k, cross) for k in others] + ([(k, None) for k in family] if cross else [])
        )
        chosen = None
        for option, reach in attempts:
            chosen = _first_good(tree, base, texts, pools[option], reach, used, checker)
            if chosen is not None:
                break
        if chosen is None:
            event(f"no candidate left for a {kind} case: planting fewer cases")
            continue
        used.update(f"{e.path}:{e.start}" for e in chosen.mutation.edits)
        planted_kinds[chosen.mutation.kind] = planted_kinds.get(chosen.mutation.kind, 0) + 1
        planted.append(chosen)
        event(
            f"case {len(planted):02d}: {chosen.mutation.kind}"
            + (" (cross-file)" if chosen.mutation.cross_file else "")
            + f" in {chosen.mutation.edits[0].path}; {chosen.check}"
        )
    return planted


def _first_good(
    tree: Path,
    base: str,
    texts: dict[str, str],
    pool: list[Mutation],
    cross: bool | None,
    used: set[str],
    checker: Tests,
) -> Planted | None:
    """The first mutation of ``pool`` that the tests confirm (``cross``: the reach it must have)."""
    tried = 0
    for mutation in list(pool):
        if cross is not None and not mutation.clean and mutation.cross_file != cross:
            continue
        if any(f"{e.path}:{e.start}" in used for e in mutation.edits):
            continue
        pool.remove(mutation)
        edited = apply(texts, mutation.edits)
        for path, text in edited.items():
            (tree / path).write_bytes(text.encode("utf-8"))
        keep, check = True, checker.note
        if checker.enabled:
            tried += 1
            passed, detail = checker.check()
            keep = passed if mutation.clean else not passed
            check = "tests pass" if passed else f"tests fail: {detail}"
        head = _commit_files(tree, base, edited) if keep else ""
        _reset(tree, base)
        if keep:
            return Planted(mutation, head, check)
        if tried >= MAX_TRIES:
            return None
    return None


def _commit_files(tree: Path, base: str, edited: dict[str, str]) -> str:
    run(tree, "add", "--", *sorted(edited))
    tree_id = run(tree, "write-tree").decode().strip()
    return _commit(tree, tree_id, (base,), "change")


def _reset(tree: Path, base: str) -> None:
    run(tree, "reset", "-q", "--hard", base)
    run(tree, "clean", "-q", "-fdx")


def _corpus(
    repo: Path,
    corpus_file: Path,
    bundle: Path,
    base: str,
    planted: Sequence[Planted],
    index: Index,
    checker: Tests,
    seed: int,
    source_head: str,
) -> dict[str, object]:
    texts = {path: m.text for path, m in index.modules.items()}
    cases = []
    bundle_name = os.path.relpath(bundle.resolve(), corpus_file.resolve().parent).replace(os.sep, "/")
    for number, p in enumerate(planted, 1):
        m = p.mutation
        case: dict[str, object] = {
            "id": f"case-{number:02d}",
            "repo": bundle_name,
            "base": base,
            "head": p.head,
            "kind": m.kind,
        }
        expected = []
        if not m.clean:
            case["cross_file"] = m.cross_file
            category, severity = GRADES[m.kind]
            for path, start, end in expected_locations(m, apply(texts, m.edits)):
                expected.append(
                    {
                        "path": path,
                        "start_line": start,
                        "end_line": end,
                        "category": category,
                        "severity": severity,
                        "description": m.description,
                    }
                )
            case["note"] = p.check
        else:
            case["note"] = f"{m.description} Checked: {p.check}."
        case["expected"] = expected
        cases.append(case)
    cross = sum(1 for p in planted if p.mutation.cross_file)
    bugs = sum(1 for p in planted if not p.mutation.clean)
    return {
        "name": f"{repo.resolve().name}-planted",
        "description": (
            f"{bugs} planted bug{'' if bugs == 1 else 's'} ({cross} cross-file) and"
            f" {len(planted) - bugs} clean refactor{'' if len(planted) - bugs == 1 else 's'},"
            f" seed {seed}; {checker.note or 'each checked against the tests'}"
        ),
        "source": (
            f"wholerepo eval plant: {repo.resolve().name} at {source_head}, its tree as one snapshot commit"
        ),
        "cases": cases,
    }
