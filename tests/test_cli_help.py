"""Every command's --help carries an example, and --version answers."""

from __future__ import annotations

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
