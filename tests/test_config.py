"""Configuration layering (defaults < repository file < WHOLEREPO_* < flags) and its errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import wholerepo
from conftest import MakeRepo
from wholerepo.cli import main
from wholerepo.errors import ConfigError
from wholerepo.settings import DEFAULT_BUDGET, Settings, load_settings


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    return result


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def style_of(text: str) -> str:
    if text.startswith("<repository>"):
        return "xml"
    if text.startswith("# Repository"):
        return "markdown"
    if text.startswith('{"repository"'):
        return "json"
    assert text.startswith("=")
    return "plain"


def test_defaults() -> None:
    s = load_settings([], env={})
    assert s == Settings()
    assert (s.style, s.tokenizer, s.budget, s.pack_budget) == ("xml", "deepseek-v4", None, DEFAULT_BUDGET)
    assert s.model is None and s.trust_repo_config is False
    assert s.max_file_size == 1 << 20
    assert (s.line_numbers, s.tracked_only, s.cache) == ("sparse", False, True)
    assert s.sources == {}


def test_each_layer_overrides_the_previous(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.wholerepo]\nstyle = "markdown"\nbudget = 1000\nmax-file-size = 10\n'
    )
    file_only = load_settings([tmp_path], env={})
    assert (file_only.style, file_only.budget, file_only.max_file_size) == ("markdown", 1000, 10)
    assert file_only.sources["style"].startswith("repo:")
    env = {"WHOLEREPO_STYLE": "plain", "WHOLEREPO_BUDGET": "2_000", "WHOLEREPO_CACHE_DIR": "/ignored"}
    with_env = load_settings([tmp_path], env=env)
    assert (with_env.style, with_env.budget, with_env.max_file_size) == ("plain", 2000, 10)
    assert with_env.sources["style"] == "env:WHOLEREPO_STYLE"
    with_flags = load_settings([tmp_path], env=env, flags={"style": "json", "budget": None})
    assert (with_flags.style, with_flags.budget) == ("json", 2000)
    assert with_flags.sources["style"] == "flag"


def test_layering_through_the_cli(make_repo: MakeRepo) -> None:
    root = make_repo(
        {
            "pyproject.toml": '[tool.wholerepo]\nstyle = "markdown"\nexclude = ["*.md"]\n',
            "a.py": "a = 1\n",
            "b.md": "b\n",
        }
    )
    by_file = run("pack", str(root), "-q")
    assert style_of(by_file.stdout) == "markdown" and "## File: b.md" not in by_file.stdout
    by_env = run("pack", str(root), "-q", env={"WHOLEREPO_STYLE": "plain"})
    assert style_of(by_env.stdout) == "plain"
    by_flag = run("pack", str(root), "-q", "--style", "json", env={"WHOLEREPO_STYLE": "plain"})
    assert style_of(by_flag.stdout) == "json"
    paths = [f["path"] for f in json.loads(by_flag.stdout)["files"]]
    assert paths == ["a.py", "pyproject.toml"]


def test_wholerepo_toml_and_subdirectory_layers(make_repo: MakeRepo) -> None:
    root = make_repo(
        {
            ".wholerepo.toml": 'style = "plain"\nline_numbers = "none"\n',
            "pkg/.wholerepo.toml": '[tool.wholerepo]\nstyle = "json"\n',
            "pkg/m.py": "m = 1\n",
        }
    )
    whole = wholerepo.pack(root, cache=False)
    assert whole.style == "plain" and whole.settings.line_numbers == "none"
    sub = wholerepo.pack(root / "pkg", cache=False)
    assert sub.style == "json" and sub.settings.line_numbers == "none"
    assert json.loads(sub.text)["files"][-1]["content"] == "m = 1\n"
    flagged = wholerepo.pack(root / "pkg", cache=False, style="xml")
    assert flagged.style == "xml"


def test_env_parsing() -> None:
    s = load_settings(
        [],
        env={
            "WHOLEREPO_TRACKED_ONLY": "yes",
            "WHOLEREPO_INCLUDE": "*.py, src/ ,",
            "WHOLEREPO_CACHE": "0",
            "WHOLEREPO_LINE_NUMBERS": "all",
        },
    )
    assert s.tracked_only is True and s.include == ("*.py", "src/") and s.cache is False
    assert s.line_numbers == "all"


BAD_FILES = [
    ("pyproject.toml", "[tool.wholerepo]\nbudjet = 5\n", "budjet"),
    (".wholerepo.toml", "colour = true\n", "colour"),
    ("pyproject.toml", '[tool.wholerepo]\nbudget = "big"\n', "budget"),
    ("pyproject.toml", "[tool.wholerepo]\nbudget = 1.5\n", "budget"),
    (".wholerepo.toml", 'include = "*.py"\n', "include"),
    (".wholerepo.toml", 'tracked_only = "yes"\n', "tracked_only"),
    (".wholerepo.toml", 'style = "html"\n', "style"),
    (".wholerepo.toml", "budget = 0\n", "budget"),
]


@pytest.mark.parametrize(("filename", "content", "key"), BAD_FILES)
def test_bad_repository_file_is_a_warning_naming_file_and_key(
    make_repo: MakeRepo, filename: str, content: str, key: str
) -> None:
    # A pull request writes this file: it must never be able to stop a review.
    root = make_repo({filename: content, "a.py": "a = 1\n"})
    result = run("pack", str(root), "-q")
    assert result.exit_code == 0, result.stderr
    [warning] = [line for line in result.stderr.splitlines() if "warning" in line]
    assert filename in warning and key in warning and "ignored" in warning
    assert result.stdout.startswith("<repository>")


@pytest.mark.parametrize(("filename", "content", "key"), BAD_FILES)
def test_bad_user_file_is_one_line_naming_file_and_key(
    make_repo: MakeRepo, tmp_path: Path, filename: str, content: str, key: str
) -> None:
    # Your own file: a typo there is an error, as it would be in a flag.
    root = make_repo({"a.py": "a = 1\n"})
    user = tmp_path / "user-config.toml"
    user.write_text(content.replace("[tool.wholerepo]\n", ""))
    line = one_line_error(run("pack", str(root), env={"WHOLEREPO_CONFIG": str(user)}))
    assert "user-config.toml" in line and key in line


def test_invalid_toml_in_the_repository_is_a_warning(make_repo: MakeRepo) -> None:
    root = make_repo({".wholerepo.toml": "style = \n", "a.py": "a\n"})
    result = run("pack", str(root), "-q")
    assert result.exit_code == 0
    assert ".wholerepo.toml" in result.stderr and "TOML" in result.stderr


def test_invalid_toml_in_the_user_file_names_the_file(make_repo: MakeRepo, tmp_path: Path) -> None:
    root = make_repo({"a.py": "a\n"})
    user = tmp_path / "config.toml"
    user.write_text("style = \n")
    line = one_line_error(run("pack", str(root), env={"WHOLEREPO_CONFIG": str(user)}))
    assert "config.toml" in line and "TOML" in line


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("WHOLEREPO_BUDGET", "lots"),
        ("WHOLEREPO_BUDGET", "-5"),
        ("WHOLEREPO_STYLE", "html"),
        ("WHOLEREPO_TRACKED_ONLY", "maybe"),
        ("WHOLEREPO_TIMEOUT", "nan"),
        ("WHOLEREPO_TIMEOUT", "inf"),
    ],
)
def test_bad_environment_is_one_line_naming_the_variable(make_repo: MakeRepo, var: str, value: str) -> None:
    root = make_repo({"a.py": "a = 1\n"})
    line = one_line_error(run("pack", str(root), env={var: value}))
    assert var in line


def test_unknown_environment_variable_is_a_warning(make_repo: MakeRepo) -> None:
    root = make_repo({"a.py": "a = 1\n"})
    result = run("pack", str(root), "-q", env={"WHOLEREPO_E2E_GGUF": "/x.gguf"})
    assert result.exit_code == 0 and result.stdout.startswith("<repository>")
    assert "unknown environment variable WHOLEREPO_E2E_GGUF" in result.stderr


def test_flag_beats_bad_free_environment(make_repo: MakeRepo) -> None:
    root = make_repo({"a.py": "a = 1\n"})
    result = run("pack", str(root), "-q", "--budget", "100000", env={"WHOLEREPO_BUDGET": "50"})
    assert result.exit_code == 0 and result.stdout.startswith("<repository>")


def test_direct_api_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="budget"):
        Settings(budget=0)
    with pytest.raises(ConfigError, match="style"):
        Settings(style="yaml")


def test_a_user_file_named_by_the_variable_must_exist(make_repo: MakeRepo, tmp_path: Path) -> None:
    # A typo in WHOLEREPO_CONFIG would drop one's own key and endpoint without a word.
    root = make_repo({"a.py": "a\n"})
    missing = tmp_path / "confg.toml"
    line = one_line_error(run("pack", str(root), env={"WHOLEREPO_CONFIG": str(missing)}))
    assert "WHOLEREPO_CONFIG" in line and "confg.toml" in line
    # /dev/null names no file on purpose: no user configuration, no error.
    ok = run("pack", str(root), "-q", env={"WHOLEREPO_CONFIG": os.devnull})
    assert ok.exit_code == 0, ok.stderr


def test_both_repository_files_warn_which_one_is_read(make_repo: MakeRepo) -> None:
    root = make_repo(
        {
            ".wholerepo.toml": 'style = "markdown"\n',
            "pyproject.toml": '[tool.wholerepo]\nstyle = "plain"\n',
            "a.py": "a\n",
        }
    )
    result = run("pack", str(root))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("# Repository")  # .wholerepo.toml won
    assert ".wholerepo.toml is read; [tool.wholerepo] in pyproject.toml beside it is ignored" in result.stderr


def test_messages_name_where_a_value_came_from(make_repo: MakeRepo, tmp_path: Path) -> None:
    # A value from a file is named by its key and file, not by a flag that was never given.
    root = make_repo({"a.py": "a\n"})
    user = tmp_path / "mine.toml"
    user.write_text('prompt = "~/no/such/team.j2"\n')
    line = one_line_error(run("review", str(root), "--dry-run", env={"WHOLEREPO_CONFIG": str(user)}))
    assert f"prompt in {user}" in line and "--prompt" not in line.split(":")[0]
    line = one_line_error(run("review", str(root), "--dry-run", env={"WHOLEREPO_PROMPT": "nope.j2"}))
    assert line.startswith("Error: WHOLEREPO_PROMPT 'nope.j2' is neither")
    line = one_line_error(run("review", str(root), "--dry-run", "--prompt", "nope.j2"))
    assert line.startswith("Error: --prompt 'nope.j2' is neither")
