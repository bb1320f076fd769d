"""Every command's --help carries an example, and --version answers."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from wholerepo.cli import main


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["pack"],
        ["review"],
        ["models"],
        ["audit"],
        ["audit", "plan"],
        ["audit", "run"],
        ["audit", "merge"],
        ["eval"],
        ["eval", "plant"],
    ],
)
def test_help_has_examples(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert "wholerepo " + " ".join(command) in result.stdout


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("wholerepo, version ")


def _option_help(command: list[str], option: str) -> str:
    text = CliRunner().invoke(main, [*command, "--help"], terminal_width=400).stdout
    [line] = [
        ln
        for ln in text.splitlines()
        if ln.strip().startswith(option + " ") or ln.strip().startswith(option + ",")
    ]
    return line


def test_budget_help_says_what_each_command_defaults_to() -> None:
    assert "[default: 1048576]" in _option_help(["pack"], "--budget")
    for command in (["review"], ["pr-review"], ["audit", "."]):
        text = _option_help(command, "--budget")
        assert "1048576" not in text and "context window leaves" in text, (command, text)


def test_pr_review_help_names_only_its_own_flags() -> None:
    text = CliRunner().invoke(main, ["pr-review", "--help"], terminal_width=400).stdout
    specs = [re.split(r"\s{2,}", line.strip())[0] for line in text.splitlines() if line.startswith("  -")]
    options = {flag for spec in specs for flag in re.findall(r"--[a-z][a-z-]+", spec)}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", text))
    assert named <= options | {"--help"}, named - options


@pytest.mark.parametrize("args", [["audit", "--help"], ["audit", ".", "--help"]])
def test_audit_help_is_the_default_commands_under_the_name_users_type(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, prog_name="wholerepo")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: wholerepo audit [PATH] [OPTIONS]\n")
    assert "repository" not in result.stdout.splitlines()[0]
    assert "--concurrency" in result.stdout and "--resume" in result.stdout and "--dry-run" in result.stdout
    assert "audit merge shard-*.json" in result.stdout


def test_the_group_help_lists_the_subcommands_but_not_the_hidden_default() -> None:
    for group, sub, hidden in (("audit", "merge", "repository"), ("eval", "plant", "run")):
        text = CliRunner().invoke(main, [group, "--help"]).stdout
        commands = text[text.index("Commands:") :]
        assert f"  {sub} " in commands and f"  {hidden} " not in commands


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["eval"], "wholerepo eval --help"),
        (["eval", "corpus", "--no-such-flag"], "wholerepo eval --help"),
        (["audit", ".", "--no-such-flag"], "wholerepo audit --help"),
        (["audit", "plan", "--no-such-flag"], "wholerepo audit plan --help"),
    ],
)
def test_usage_errors_name_the_help_users_can_type(args: list[str], shown: str) -> None:
    result = CliRunner().invoke(main, args, prog_name="wholerepo")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and f"(see '{shown}')" in result.stderr
    assert "eval run" not in result.stderr and "audit repository" not in result.stderr
