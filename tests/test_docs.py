"""The documents stay true: every test SECURITY.md cites exists, and the examples load as shown."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from conftest import MakeRepo
from wholerepo.cli import main
from wholerepo.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def _tests_in(file: Path) -> set[str]:
    tree = ast.parse(file.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_test_security_md_cites_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    cited: list[tuple[str, str]] = []
    current = ""
    for match in re.finditer(r"`(test_\w+\.py)?::(test_\w+)`|`(test_\w+\.py)`", text):
        if match.group(3):
            assert (ROOT / "tests" / match.group(3)).is_file(), match.group(3)
            continue
        current = match.group(1) or current
        cited.append((current, match.group(2)))
    assert len(cited) >= 20
    for file, name in cited:
        assert name in _tests_in(ROOT / "tests" / file), (
            f"SECURITY.md cites {file}::{name}, which does not exist"
        )


def test_example_repository_config_loads_without_warnings(make_repo: MakeRepo) -> None:
    root = make_repo({"a.py": "a = 1\n"})
    shutil.copy(ROOT / "examples" / "wholerepo.toml", root / ".wholerepo.toml")
    settings = load_settings([root], env={}, user_file=None)
    assert settings.warnings == ()
    assert settings.fail_on == "high" and settings.instructions and "asyncio" in settings.instructions


def test_example_user_config_loads() -> None:
    settings = load_settings([], env={}, user_file=ROOT / "examples" / "config.toml")
    assert settings.base_url == "http://127.0.0.1:8000/v1"
    # Used as-is it works against a keyless local server: the key variable and template are comments.
    assert settings.api_key_env is None and settings.prompt == "review"


def test_example_user_config_runs_a_dry_review_as_is(make_repo: MakeRepo) -> None:
    root = make_repo({"app.py": "print(1)\n"})
    env = {"WHOLEREPO_CONFIG": str(ROOT / "examples" / "config.toml")}
    result = CliRunner().invoke(main, ["review", str(root), "--dry-run"], env=env)
    assert result.exit_code == 0, result.stderr
    assert "Qwen/Qwen2.5-Coder-32B-Instruct" in result.output
