"""The command line: a thin layer over the core, one module per command.

Each command parses flags, builds Settings (only flags given on the command line are passed on,
so configuration files and WHOLEREPO_* variables keep their place in the layering), calls the
core, and leaves errors to cli/errors.py: one line each, with its exit code.
"""

from __future__ import annotations

import click

from .audit import audit_command
from .errors import OneLineErrors
from .eval import eval_group
from .models import models_command
from .pack import pack_command
from .pr_review import pr_review_command
from .review import review_command


@click.group(
    cls=OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="wholerepo", prog_name="wholerepo")
def main() -> None:
    """Review a whole codebase in one pass with a long-context model.

    \b
    Examples:
      wholerepo pack . -o repo.xml          pack the repository into one prompt
      wholerepo review . --dry-run          show what a review would send and cost
      wholerepo review . --fail-on high     review it; exit 1 on a high finding
      wholerepo audit . --dry-run           shard a repository larger than the window
      wholerepo eval corpus -o eval.md      measure review quality on a corpus
    """


main.add_command(pack_command)
main.add_command(review_command)
main.add_command(models_command)
main.add_command(pr_review_command)
main.add_command(audit_command)
main.add_command(eval_group)


def run() -> None:
    """The console script."""
    main()


__all__ = ["main", "run"]
