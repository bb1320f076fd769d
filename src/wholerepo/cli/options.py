"""What the commands share: the pack options, flags as settings, progress, warnings, numbers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from ..settings import FIT_MODES, LINE_NUMBER_MODES, STYLES, TOKENIZERS
from .errors import Interrupts, echo_err

F = TypeVar("F", bound=Callable[..., Any])


def _dash_is_stdout(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    return None if value is not None and str(value) == "-" else value


def output_option(what: str) -> Callable[[F], F]:
    """``-o FILE``: where ``what`` goes instead of standard output; ``-o -`` means standard output,
    as it does for most command-line tools (the command sees None)."""
    return click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
        default=None,
        callback=_dash_is_stdout,
        help=f"Write {what} here [default and -: standard output].",
    )


def pack_options(func: F) -> F:
    """Options shared by every command that packs a repository."""
    return _pack_options(func, fit=True)


def review_pack_options(func: F) -> F:
    """The pack options of commands that send the pack: the budget defaults to the window's room."""
    return _pack_options(
        func,
        fit=True,
        budget_help="Send at most N tokens of repository [default: what the context window leaves"
        " after the instructions and --max-output-tokens].",
    )


def audit_pack_options(func: F) -> F:
    """The pack options of ``wholerepo audit``: its own ``--fit`` (shard), no ranking to explain."""
    func = _pack_options(
        func,
        fit=False,
        budget_help="At most N tokens of repository (map and files) in each request [default: what"
        " the context window leaves after the instructions and --max-output-tokens].",
    )
    return click.option(
        "--fit",
        type=click.Choice(["shard"]),
        default="shard",
        help="Over the budget: cut the repository into shards along its structure, every file sent"
        " whole in exactly one [default: shard].",
    )(func)


def _pack_options(func: F, *, fit: bool, budget_help: str = "Never exceed N tokens [default: 1048576].") -> F:
    options = [
        click.argument("path", required=False, default=".", type=click.Path(path_type=Path)),
        click.option("--style", type=click.Choice(STYLES), default=None, help="Output style [default: xml]."),
        click.option(
            "--tokenizer",
            type=click.Choice(TOKENIZERS),
            default=None,
            help="Count tokens as this model does [default: deepseek-v4].",
        ),
        click.option(
            "--budget",
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help=budget_help,
        ),
        click.option(
            "-i",
            "--include",
            multiple=True,
            metavar="GLOB",
            help="Only pack files matching GLOB (gitignore syntax); repeatable.",
        ),
        click.option(
            "-e",
            "--exclude",
            multiple=True,
            metavar="GLOB",
            help="Do not pack files matching GLOB (gitignore syntax); repeatable.",
        ),
        click.option(
            "--max-file-size",
            type=click.IntRange(min=1),
            default=None,
            metavar="BYTES",
            help="Skip files larger than this [default: 1048576].",
        ),
        click.option("--tracked-only", is_flag=True, default=None, help="Leave out untracked files."),
        click.option(
            "--fit",
            type=click.Choice(FIT_MODES),
            default=None,
            help="Over the budget: compress files to outlines before leaving any out, or only leave"
            " out, by rank [default: compress].",
        ),
        click.option(
            "--explain-ranking",
            "explain_ranking",
            is_flag=True,
            default=False,
            help="Print every file's rank, score, what was sent and why (on stderr).",
        ),
        click.option(
            "--line-numbers",
            "line_numbers",
            type=click.Choice(LINE_NUMBER_MODES),
            default=None,
            help="Number every line, every 10th line (sparse), or none [default: sparse].",
        ),
        click.option(
            "--no-line-numbers",
            "no_line_numbers",
            is_flag=True,
            default=False,
            help="Same as --line-numbers none.",
        ),
        click.option(
            "--no-cache",
            "no_cache",
            is_flag=True,
            default=False,
            help="Neither read nor write the cache (token counts and rendered files).",
        ),
        click.option(
            "--no-redact",
            "no_redact",
            is_flag=True,
            default=False,
            help="Send secrets as they are (not recommended).",
        ),
        click.option(
            "--trust-repo-config",
            "trust_repo_config",
            is_flag=True,
            default=None,
            help="Let the repository's .wholerepo.toml / [tool.wholerepo] set every key (own repos only).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No summary or progress on stderr."),
        click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors."),
    ]
    if not fit:  # --fit and --explain-ranking: the command has its own, or none
        fitting = options[8:10]
        options = [o for o in options if o not in fitting]
    for option in reversed(options):
        func = option(func)
    return func


SETTING_FLAGS = (
    "style",
    "tokenizer",
    "budget",
    "include",
    "exclude",
    "max_file_size",
    "tracked_only",
    "line_numbers",
    "fit",
    "base_url",
    "model",
    "api_key_env",
    "prompt",
    "fail_on",
    "fail_on_scope",
    "max_output_tokens",
    "context_window",
    "timeout",
    "thinking",
    "trust_repo_config",
)


def flag_overrides(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """The settings given on the command line, nothing else."""
    flags: dict[str, Any] = {}
    for name in SETTING_FLAGS:
        if name in params and ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            value = params[name]
            flags[name] = tuple(value) if isinstance(value, (list, tuple)) else value
    if params.get("no_line_numbers"):
        if flags.get("line_numbers", "none") != "none":
            from ..errors import UsageError

            raise UsageError(
                f"--line-numbers {flags['line_numbers']} and --no-line-numbers contradict each other"
            )
        flags["line_numbers"] = "none"
    if params.get("no_cache"):
        flags["cache"] = False
    if params.get("no_redact"):
        flags["redact"] = False
    return flags


def reporter(quiet: bool) -> Any:
    """Progress and events on stderr: a bar on a terminal, one line per event in pipes and CI; and
    either way a Ctrl-C that a finalizer swallowed stops the work at the next step."""
    from .progress import Reporter

    terminal = sys.stderr.isatty() and not os.environ.get("CI")
    return Reporter(quiet=quiet, terminal=terminal, check=Interrupts.check)


def print_warnings(warnings: Any) -> None:
    """Warnings go out even with -q: they say what was ignored (a repository's key, a pattern)."""
    for warning in warnings:
        echo_err(f"wholerepo: warning: {warning}")


def fmt(n: int) -> str:
    return f"{n:,}"


def plural(n: int, word: str) -> str:
    return f"{fmt(n)} {word}" + ("" if n == 1 else "s")


def check_path(path: Path) -> None:
    from ..errors import UsageError

    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    if not path.is_dir():
        raise UsageError(f"path is not a directory: {path}")


# -- fitting (fit/): what the summaries say about it ----------------------------------------------


def print_fit_summary(pack: Any, indent: str = "  ") -> None:
    """Name the most important files compressed or left out, and where the rest is."""
    from ..fit.report import most_important, most_important_text

    compressed = sum(1 for f in pack.files if f.status == "compressed")
    dropped = sum(1 for f in pack.files if f.reason == "over-budget")
    if compressed or dropped:
        echo_err(
            f"{indent}over the budget: {plural(compressed, 'file')} compressed to outlines,"
            f" {plural(dropped, 'file')} left out (--fit {pack.settings.fit})"
        )
    line = most_important_text(most_important(pack.files), getattr(pack, "prefix", ""))
    if line:
        echo_err(f"{indent}{line}")


def print_explanation(pack: Any, params: dict[str, Any]) -> None:
    if params.get("explain_ranking"):
        from ..fit.report import explanation

        echo_err(explanation(pack.files, pack.prefix).rstrip("\n"))


def fit_focus(path: Path, base: str | None) -> Any:
    """``--base``: the files the diff touches rank first."""
    if not base:
        return None
    from ..fit.stage import Focus
    from ..git.diff import diff_against

    return Focus(frozenset(diff_against(path, base).changed), base)
