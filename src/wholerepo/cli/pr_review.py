"""`wholerepo pr-review`: review a pull request and publish on it. It reuses ``review``'s
options and the CLI's error handling; the work is in wholerepo.publish.run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..settings import SEVERITIES
from .errors import handled_errors
from .options import flag_overrides, reporter, review_pack_options
from .review import review_command

# review's own options that mean the same here (the settings and where reports go).
REUSED = (
    "base_url",
    "model",
    "api_key_env",
    "fail_on",
    "fail_on_scope",
    "prompt",
    "max_output_tokens",
    "context_window",
    "timeout",
    "thinking",
    "output_dir",
)


@click.command("pr-review", short_help="Review a pull request and comment on it (the GitHub Action).")
@review_pack_options
@click.option("--repo", metavar="OWNER/NAME", default=None, help="Run outside Actions: the repository.")
@click.option(
    "--pr", "pr", type=click.IntRange(min=1), default=None, metavar="N", help="...and the pull request."
)
@click.option(
    "--inline-comments/--no-inline-comments",
    "inline",
    default=True,
    show_default=True,
    help="Post findings on changed lines as inline review comments.",
)
@click.option(
    "--max-inline-comments",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    metavar="N",
    help="At most N inline comments per run; the rest stay in the summary.",
)
@click.option(
    "--min-inline-severity",
    type=click.Choice(SEVERITIES),
    default="low",
    show_default=True,
    help="Only findings at least this severe get an inline comment.",
)
@click.option(
    "--sarif-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write SARIF here (for github/codeql-action/upload-sarif).",
)
@click.option("--dry-run", is_flag=True, help="Review, then print what would be posted; post nothing.")
@click.option("--github-pace", type=click.FloatRange(min=0), default=1.0, hidden=True)
@click.pass_context
def _pr_review(ctx: click.Context, /, **params: Any) -> None:
    """Review a pull request with the whole repository in context and publish it on GitHub.

    Inside a GitHub Actions job (pull_request, pull_request_target, or an issue_comment
    "/wholerepo review") everything comes from the job's environment; locally give --repo and --pr
    (the token from GITHUB_TOKEN). One summary comment is kept up to date, new findings on changed
    lines get inline comments in one review, fixed ones have their threads resolved.

    \b
    Exit codes: 0 done (or nothing to do), 1 a finding at or above --fail-on, 2 usage error,
    3 the model endpoint or GitHub failed after retries, 130 interrupted or 143 terminated,
    70 an internal error (a bug: --debug shows the traceback).

    \b
    Examples:
      wholerepo pr-review                                   inside the Action
      wholerepo pr-review --repo octo/hello --pr 12 --dry-run
    """
    from ..publish.actions import environment
    from ..publish.github import Pacing
    from ..publish.run import Options, pr_review

    with handled_errors(params["debug"]):
        env, trigger = environment(repo=params["repo"], pr=params["pr"])
        flags = flag_overrides(ctx, params)
        path_given = ctx.get_parameter_source("path") == click.core.ParameterSource.COMMANDLINE
        pace = params["github_pace"]
        options = Options(
            flags=flags,
            path=params["path"] if path_given else None,
            inline=params["inline"],
            max_inline=params["max_inline_comments"],
            min_inline_severity=params["min_inline_severity"],
            dry_run=params["dry_run"],
            output_dir=params["output_dir"],
            sarif_file=params["sarif_file"],
            pacing=Pacing(write_interval=pace, backoff=max(pace, 0.05)),
            quiet=params["quiet"],
        )
        progress = reporter(params["quiet"])
        try:
            outcome = pr_review(
                env, trigger, options, environ=os.environ, events=progress.event, progress=progress
            )
        finally:
            progress.stop()
        if options.dry_run and outcome.posted:
            from .output import write_stdout

            write_stdout(json.dumps(outcome.posted, indent=2, ensure_ascii=False) + "\n")
        if not params["quiet"] and outcome.requests:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(outcome.requests.items()))
            click.echo(f"wholerepo: GitHub requests: {counts}", err=True)
        if outcome.error is not None:
            raise outcome.error
        sys.exit(outcome.exit_code)


pr_review_command: click.Command = _pr_review
# Review's options mean the same here (types, defaults, the settings they map to); the few whose
# help names review-only flags (--format, --base) get a copy with pr-review's words.
PR_HELP = {
    "output_dir": "Also write review.md / review.sarif / review.json here.",
    "fail_on_scope": "Which findings --fail-on counts: those on the pull request's changed lines (diff)"
    " or all [default: diff].",
}


def _reused(param: click.Parameter) -> click.Parameter:
    if param.name not in PR_HELP or not isinstance(param, click.Option):
        return param
    copy = click.Option(param.opts, type=param.type, default=param.default, metavar=param.metavar)
    copy.name, copy.help = param.name, PR_HELP[param.name]
    return copy


pr_review_command.params.extend(_reused(p) for p in review_command.params if p.name in REUSED)
