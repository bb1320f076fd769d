"""The command line: parse flags, build Settings, call the core, map errors to exit codes.

Only flags given on the command line are passed on, so a repository's file and WHOLEREPO_*
variables keep their place in the layering (defaults < file < env < flags).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from .config import FAIL_ON, FORMATS, LINE_NUMBER_MODES, STYLES, THINKING, TOKENIZERS
from .errors import WholerepoError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERNAL = 70  # an unexpected error (a bug): distinct from every documented exit code


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


@contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """One handler for every command: known errors become one line and their exit code."""
    try:
        yield
    except WholerepoError as exc:
        _echo_err(f"Error: {exc.one_line()}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _echo_err("Interrupted.")
        sys.exit(130)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except Exception as exc:  # a bug: one line, the traceback only on request
        if debug:
            raise
        _echo_err(
            f"Error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            " (rerun with --debug for the traceback)"
        )
        sys.exit(EXIT_INTERNAL)


def pack_options(func: F) -> F:
    """Options shared by every command that packs a repository."""
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
            help="Never exceed N tokens [default: 1048576].",
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
            help="Neither read nor write the token-count cache.",
        ),
        click.option(
            "--no-redact",
            "no_redact",
            is_flag=True,
            default=False,
            help="Send secrets as they are (not recommended).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No summary or progress on stderr."),
        click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors."),
    ]
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
    "base_url",
    "model",
    "api_key_env",
    "prompt",
    "fail_on",
    "max_output_tokens",
    "context_window",
    "timeout",
    "thinking",
)


def flag_overrides(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """The settings given on the command line, nothing else."""
    flags: dict[str, Any] = {}
    for name in SETTING_FLAGS:
        if name in params and ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            value = params[name]
            flags[name] = tuple(value) if isinstance(value, (list, tuple)) else value
    if params.get("no_line_numbers"):
        flags["line_numbers"] = "none"
    if params.get("no_cache"):
        flags["cache"] = False
    if params.get("no_redact"):
        flags["redact"] = False
    return flags


def progress_callback(quiet: bool) -> tuple[Callable[[str, int, int], None] | None, Callable[[], None]]:
    """A rich progress bar on a terminal; nothing in pipes and CI logs."""
    if quiet or not sys.stderr.isatty() or os.environ.get("CI"):
        return None, lambda: None
    from .progress import TerminalProgress

    bar = TerminalProgress()
    return bar.update, bar.stop


def _fmt(n: int) -> str:
    return f"{n:,}"


def print_summary(pack: Any) -> None:
    from .pack import summarize

    s = summarize(pack)
    total = len(pack.files)
    reasons = ", ".join(f"{k} {v}" for k, v in s["reasons"].items())
    line = f"wholerepo: packed {s['included']} of {total} files"
    if s["skipped"]:
        line += f" ({s['skipped']} skipped: {reasons})"
    _echo_err(line)
    if not pack.in_git:
        _echo_err("  not a git repository: files were chosen by walking the tree with its .gitignore files")
    share = 100.0 * pack.prompt_tokens / pack.budget
    _echo_err(
        f"  tokens: {_fmt(pack.prompt_tokens)} exact ({pack.tokenizer}), "
        f"{share:.1f}% of the {_fmt(pack.budget)} budget"
    )
    if s["largest_files"]:
        _echo_err("  largest files: " + ", ".join(f"{p} {_fmt(n)}" for p, n in s["largest_files"]))
        _echo_err("  largest dirs:  " + ", ".join(f"{p} {_fmt(n)}" for p, n in s["largest_dirs"]))
    if s["redactions"]:
        files = s["redacted_files"]
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        _echo_err(f"  redacted {s['redactions']} secrets in {len(files)} files: {shown}")
    if not pack.settings.redact:
        _echo_err("  warning: redaction is off (--no-redact): secrets in the files are in the output")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="wholerepo", prog_name="wholerepo")
def main() -> None:
    """Review a whole codebase in one pass with a long-context model.

    \b
    Examples:
      wholerepo pack . -o repo.xml          pack the repository into one prompt
      wholerepo review . --dry-run          show what a review would send and cost
      wholerepo review . --fail-on high     review it; exit 1 on a high finding
    """


@main.command("pack")
@pack_options
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the pack here instead of standard output.",
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a JSON list of every file, its status, reason and tokens.",
)
@click.pass_context
def pack_command(ctx: click.Context, /, **params: Any) -> None:
    """Pack a repository into one deterministic, line-numbered prompt.

    Lists exactly the files git would, skips binaries and generated noise (with a reason for
    each), counts tokens exactly and never exceeds the budget.

    \b
    Examples:
      wholerepo pack                         the current repository to stdout
      wholerepo pack src -o src.xml          a subdirectory, to a file
      wholerepo pack --style markdown --budget 200000 --manifest manifest.json
      wholerepo pack -i '*.py' -e 'tests/' --tokenizer cl100k_base
    """
    with _errors(params["debug"]):
        from .output import write_atomic, write_stdout
        from .pack import pack, settings_for

        path: Path = params["path"]
        _check_path(path)
        settings = settings_for(path, flag_overrides(ctx, params))
        update, stop = progress_callback(params["quiet"])
        try:
            result = pack(path, settings, on_progress=update, keep_file_text=False)
        finally:
            stop()
        if params["manifest"] is not None:
            write_atomic(
                params["manifest"], json.dumps(result.manifest(), indent=2, ensure_ascii=False) + "\n"
            )
        if params["output"] is not None:
            write_atomic(params["output"], result.text)
        if not params["quiet"]:
            print_summary(result)
        if params["output"] is None:
            write_stdout(result.text)


def _check_path(path: Path) -> None:
    from .errors import UsageError

    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    if not path.is_dir():
        raise UsageError(f"path is not a directory: {path}")


__all__ = ["FAIL_ON", "FORMATS", "THINKING", "flag_overrides", "functools", "main", "pack_options"]
