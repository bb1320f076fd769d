"""The command line: parse flags, build Settings, call the core, map errors to exit codes.

Only flags given on the command line are passed on, so a repository's file and WHOLEREPO_*
variables keep their place in the layering (defaults < file < env < flags).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from .config import (
    FAIL_ON,
    FAIL_ON_SCOPES,
    FIT_MODES,
    FORMATS,
    LINE_NUMBER_MODES,
    STYLES,
    THINKING,
    TOKENIZERS,
)
from .errors import WholerepoError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERNAL = 70  # an unexpected error (a bug): distinct from every documented exit code
MODELS_TIMEOUT = 20.0  # `wholerepo models` answers quickly or not at all


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM (CI cancelling a job, ``timeout``): stopped like Ctrl-C, findings so far kept."""


class _Interrupts:
    """Ctrl-C and SIGTERM as KeyboardInterrupt, remembered: a finalizer (``__del__``) that happens
    to run when one arrives swallows the exception ("Exception ignored in ..."), and the command
    must still stop. Long work calls ``check`` between steps (the progress callback does)."""

    seen: type[KeyboardInterrupt] | None = None

    @classmethod
    def handler(cls, signum: int, frame: object) -> None:
        cls.seen = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        raise cls.seen

    @classmethod
    def check(cls) -> None:
        if cls.seen is not None and threading.current_thread() is threading.main_thread():
            raise cls.seen


@contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """One handler for every command: known errors become one line and their exit code."""
    previous = None
    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        # A Ctrl-C swallowed by a finalizer is remembered by _Interrupts, reported as "Interrupted.".
        if not isinstance(info.exc_value, KeyboardInterrupt):
            previous_hook(info)

    _Interrupts.seen = None
    previous_term = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, _Interrupts.handler)
        previous_term = signal.signal(signal.SIGTERM, _Interrupts.handler)
        sys.unraisablehook = unraisable
    try:
        yield
        _Interrupts.check()
    except WholerepoError as exc:
        _echo_err(f"Error: {exc.one_line()}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        _echo_err("Interrupted.")
        sys.exit(143 if isinstance(exc, Terminated) else 130)
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = previous_hook
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        if "wholerepo.countworker" in sys.modules:  # a helper started for a pack that never ran
            sys.modules["wholerepo.countworker"].stop_prestarted()


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
            from .errors import UsageError

            raise UsageError(
                f"--line-numbers {flags['line_numbers']} and --no-line-numbers contradict each other"
            )
        flags["line_numbers"] = "none"
    if params.get("no_cache"):
        flags["cache"] = False
    if params.get("no_redact"):
        flags["redact"] = False
    return flags


def prestart_counting(params: dict[str, Any]) -> None:
    """Start the token-counting helper now if the pack ahead will start cold.

    The helper builds the tokenizer (~0.25 s) on another core while this process imports the
    packer. "Cold" is judged cheaply here (no cache file yet, or --no-cache); the packer checks
    again with the real settings and stops a helper it does not need.
    """
    if not params.get("no_cache"):
        from .cache import SCHEMA_VERSION, default_cache_dir

        if (default_cache_dir() / f"cache-v{SCHEMA_VERSION}.sqlite").exists():
            return
    name = params.get("tokenizer") or os.environ.get("WHOLEREPO_TOKENIZER") or "deepseek-v4"
    loaded = sys.modules.get("wholerepo.tokens")
    if loaded is not None and loaded.is_loaded(name):  # this process has it (an embedding caller)
        return
    from .countworker import prestart

    prestart(name)


def reporter(quiet: bool) -> Any:
    """Progress and events on stderr: a bar on a terminal, one line per event in pipes and CI; and
    either way a Ctrl-C that a finalizer swallowed stops the work at the next step."""
    from .progress import Reporter

    terminal = sys.stderr.isatty() and not os.environ.get("CI")
    return Reporter(quiet=quiet, terminal=terminal, check=_Interrupts.check)


def print_warnings(warnings: Any) -> None:
    """Warnings go out even with -q: they say what was ignored (a repository's key, a pattern)."""
    for warning in warnings:
        _echo_err(f"wholerepo: warning: {warning}")


def _fmt(n: int) -> str:
    return f"{n:,}"


def print_summary(pack: Any) -> None:
    from .packer import summarize

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
    for reason, label in (("vendored", "vendored trees"), ("wholerepo-output", "wholerepo's own outputs")):
        dirs = s["skipped_dirs"].get(reason)
        if dirs:
            count = s["reasons"][reason]
            _echo_err(f"  skipped {_plural(count, 'file')} of {label}: " + ", ".join(dirs))
    if s["redactions"]:
        files = s["redacted_files"]
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        _echo_err(f"  redacted {s['redactions']} secrets in {len(files)} files: {shown}")
    if not pack.settings.redact:
        _echo_err("  warning: redaction is off (--no-redact): secrets in the files are in the output")
    print_fit_summary(pack)


# -- fitting (fit/): what the summaries say about it ----------------------------------------------


def print_fit_summary(pack: Any, indent: str = "  ") -> None:
    """Name the most important files compressed or left out, and where the rest is."""
    from .fit.report import most_important, most_important_text

    compressed = sum(1 for f in pack.files if f.status == "compressed")
    dropped = sum(1 for f in pack.files if f.reason == "over-budget")
    if compressed or dropped:
        _echo_err(
            f"{indent}over the budget: {_plural(compressed, 'file')} compressed to outlines,"
            f" {_plural(dropped, 'file')} left out (--fit {pack.settings.fit})"
        )
    line = most_important_text(most_important(pack.files), getattr(pack, "prefix", ""))
    if line:
        _echo_err(f"{indent}{line}")


def print_explanation(pack: Any, params: dict[str, Any]) -> None:
    if params.get("explain_ranking"):
        from .fit.report import explanation

        _echo_err(explanation(pack.files, pack.prefix).rstrip("\n"))


def fit_focus(path: Path, base: str | None) -> Any:
    """``--base``: the files the diff touches rank first."""
    if not base:
        return None
    from .fit.stage import Focus
    from .gitdiff import diff_against

    return Focus(frozenset(diff_against(path, base).changed), base)


class OneLineErrors(click.Group):
    """A group whose usage errors are one line (``Error: ...``) and exit 2, as every error is."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `wholerepo`: show the help
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(0)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _echo_err(f"Error: {' '.join(exc.format_message().split())}{where}")
            sys.exit(2)
        except click.ClickException as exc:
            _echo_err(f"Error: {' '.join(exc.format_message().split())}")
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            _echo_err("Interrupted.")
            sys.exit(130)
        # Without standalone mode click returns a command's exit code instead of exiting.
        if isinstance(rv, int) and not isinstance(rv, bool):
            sys.exit(rv)
        return rv


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
    help="Write a JSON list of every file, its status, reason, tokens, and rank when over the budget.",
)
@click.option(
    "--base",
    metavar="REF",
    default=None,
    help="Over the budget, rank the files changed since REF first, then what they import and"
    " what imports them.",
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
        path: Path = params["path"]
        _check_path(path)
        flags = flag_overrides(ctx, params)
        prestart_counting(params)
        from .output import ensure_parent, write_atomic, write_stdout
        from .packer import pack, settings_for

        settings = settings_for(path, flags)
        print_warnings(settings.warnings)
        own = [p for p in (params["output"], params["manifest"]) if p is not None]
        for target in own:
            ensure_parent(target)
        progress = reporter(params["quiet"])
        try:
            result = pack(
                path,
                settings,
                on_progress=progress.update,
                keep_file_text=False,
                omit=own,
                focus=fit_focus(path, params["base"]),
                explain=params["explain_ranking"],
            )
        finally:
            progress.stop()
        print_warnings(result.warnings)
        print_explanation(result, params)
        private = not settings.redact  # unredacted text: readable by the user only
        if params["manifest"] is not None:
            write_atomic(
                params["manifest"],
                json.dumps(result.manifest(), indent=2, ensure_ascii=False) + "\n",
                private=private,
            )
        if params["output"] is not None:
            write_atomic(params["output"], result.parts, private=private)
        if not params["quiet"]:
            print_summary(result)
            for target in own:
                _echo_err(f"  wrote {target}")
        if params["output"] is None:
            write_stdout(result.parts)


def _check_path(path: Path) -> None:
    from .errors import UsageError

    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    if not path.is_dir():
        raise UsageError(f"path is not a directory: {path}")


@main.command("review")
@pack_options
@click.option(
    "--base-url",
    metavar="URL",
    default=None,
    help="OpenAI-compatible endpoint [default: https://api.deepseek.com].",
)
@click.option(
    "--model",
    metavar="NAME",
    default=None,
    help="Model id [default: the endpoint's only model, else deepseek-flash]; `wholerepo models` lists them.",
)
@click.option(
    "--api-key-env",
    metavar="VAR",
    default=None,
    help="Read the API key from VAR [default: DEEPSEEK_API_KEY for DeepSeek, else OPENAI_API_KEY; "
    "a local server may need none].",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(FORMATS),
    multiple=True,
    help="Report format; repeat with --output-dir for several [default: markdown].",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report here.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write review.md / review.sarif / review.json here (all three unless --format is given).",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default=None,
    help="Exit 1 when a verified finding is at least this severe [default: none].",
)
@click.option(
    "--fail-on-scope",
    type=click.Choice(FAIL_ON_SCOPES),
    default=None,
    help="Which findings --fail-on counts: those on changed lines (diff) or all [default: diff with --base].",
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON list of every file, its status, reason and tokens (what is sent and what not).",
)
@click.option(
    "--prompt", metavar="NAME|FILE", default=None, help="review, security, architecture, or a Jinja2 file."
)
@click.option(
    "--base", metavar="REF", default=None, help="Focus on the diff against REF; mark findings in_diff."
)
@click.option(
    "--max-output-tokens",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="The reply's token limit, sent as max_tokens [default: 32768].",
)
@click.option(
    "--context-window",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="The model's window [default: the endpoint's /models figure, else 1048576].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="S",
    help="Overall deadline for the reply, retries included [default: 1800].",
)
@click.option(
    "--thinking",
    type=click.Choice(THINKING),
    default=None,
    help="DeepSeek thinking mode; auto sends it only to DeepSeek [default: auto].",
)
@click.option("--dry-run", is_flag=True, help="Send nothing: print the exact prompt tokens and the cost.")
@click.pass_context
def review_command(ctx: click.Context, /, **params: Any) -> None:
    """Review a whole repository with a long-context model; verified findings out.

    \b
    Exit codes: 0 done, 1 a verified finding at or above --fail-on, 2 usage or input error,
    3 the endpoint failed, the prompt does not fit, or the reply could not be used
    (the raw reply is saved as review.raw.txt), 130 interrupted (findings so far written).

    \b
    Examples:
      wholerepo review . --dry-run
      wholerepo review . --fail-on high --format sarif -o review.sarif
      wholerepo review . --base origin/main --output-dir out --format markdown --format sarif
      wholerepo review . --base-url http://localhost:8000/v1 --model my-model
    """
    with _errors(params["debug"]):
        path: Path = params["path"]
        _check_path(path)
        targets = _review_targets(
            params["formats"], params["output"], params["output_dir"], params["dry_run"]
        )
        flags = flag_overrides(ctx, params)
        prestart_counting(params)
        from .output import ensure_parent
        from .packer import settings_for

        settings = settings_for(path, flags)
        print_warnings(settings.warnings)
        # Nothing paid for is lost: every place a result goes exists before anything is sent.
        for _fmt_name, target in targets:
            if target is not None:
                ensure_parent(target)
        raw_file = _raw_path(params["output"], params["output_dir"])
        if params["manifest"] is not None:
            ensure_parent(params["manifest"])
        if params["dry_run"]:
            _dry_run(path, settings, params)
            return
        _review(path, settings, params, targets, raw_file)


def _dry_run(path: Path, settings: Any, params: dict[str, Any]) -> None:
    """Everything a review would do short of sending the request, and what it would cost."""
    from .llm.policy import Endpoint, find_api_key, is_deepseek
    from .output import write_stdout
    from .review import dry_run_report, dry_run_text

    key, names = find_api_key(settings.base_url, settings.api_key_env)
    chat = None
    not_asked = None
    if key is None and (is_deepseek(settings.base_url) or settings.api_key_env):
        not_asked = f"no API key ({names[0]} is not set)"
    else:
        from .llm.openai_compat import OpenAICompatible
        from .output import register_secret

        register_secret(key)
        chat = OpenAICompatible(Endpoint.from_settings(settings))
    found = _probe(settings, chat, not_asked, _raw_path(params["output"], params["output_dir"]))
    progress = reporter(params["quiet"])
    try:
        p = _plan(path, settings, found, params, progress)
    finally:
        progress.stop()
    _write_manifest(p, params)
    print_warnings(p.pack.warnings)
    print_explanation(p.pack, params)
    report = dry_run_report(p, found.notes)
    as_json = params["formats"] and params["formats"][-1] == "json"
    if as_json:
        write_stdout(json.dumps({"generator": "wholerepo", **report}, indent=2) + "\n")
    else:
        write_stdout(dry_run_text(report))


def _plan(path: Path, settings: Any, found: Any, params: dict[str, Any], progress: Any) -> Any:
    """The review's plan for the window and model the endpoint reported."""
    from .review import plan

    return plan(
        path,
        settings,
        found.window,
        model=found.model,
        base=params["base"],
        on_progress=progress.update,
        explain=params["explain_ranking"],
    )


def _write_manifest(p: Any, params: dict[str, Any]) -> None:
    from .output import write_atomic

    if params["manifest"] is not None:
        manifest = p.pack.manifest()
        if p.prefix:
            manifest["prefix"] = p.prefix
        write_atomic(
            params["manifest"],
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
            private=not p.settings.redact,
        )


def _review(
    path: Path, settings: Any, params: dict[str, Any], targets: list[tuple[str, Path | None]], raw_file: Path
) -> None:
    from dataclasses import replace

    from . import __version__
    from .llm.openai_compat import OpenAICompatible
    from .llm.policy import Endpoint
    from .output import register_secret, write_atomic, write_stdout
    from .report import render
    from .review import failing, left_out, left_out_text, review_blocking

    quiet = params["quiet"]
    endpoint = Endpoint.from_settings(settings)
    register_secret(endpoint.api_key)
    progress = reporter(quiet)
    try:
        found = _probe(settings, OpenAICompatible(endpoint, on_event=progress.event), None, raw_file)
        for note in found.notes:
            progress.event(note)
        if found.model != endpoint.model:
            endpoint = replace(endpoint, model=found.model)
        p = _plan(path, settings, found, params, progress)
        _write_manifest(p, params)
        print_warnings([*p.pack.warnings, *p.warnings])
        print_explanation(p.pack, params)
        if not quiet:
            _echo_err(
                f"wholerepo: sending {_plural(len(p.pack.included), 'file')},"
                f" {_fmt(p.prompt_tokens)} prompt tokens (exact, {settings.tokenizer}) to {p.model}"
            )
            dropped = left_out_text(left_out(p))
            if dropped:
                _echo_err(f"  {dropped}")
        chat = OpenAICompatible(endpoint, on_event=progress.event, on_progress=progress.update)
        outcome = review_blocking(p, chat, tool_version=str(__version__), on_event=progress.event)
    finally:
        progress.stop()
    result = outcome.result
    written: list[str] = []
    private = not settings.redact
    if result is not None:
        for fmt, target in targets:
            text = render(fmt, result)
            if target is None:
                write_stdout(text)
            else:
                write_atomic(target, text, private=private)
                written.append(str(target))
    saved: Path | None = None
    if outcome.raw is not None and (outcome.error is not None or outcome.interrupted):
        write_atomic(raw_file, outcome.raw, private=True)
        saved = raw_file
    if not quiet and result is not None:
        _review_summary(result, written)
    if outcome.interrupted:
        note = f"; raw reply saved to {saved}" if saved else ""
        _echo_err(f"Interrupted: the findings received so far were written (partial){note}.")
        sys.exit(143 if _Interrupts.seen is Terminated else 130)
    if outcome.error is not None:
        error = outcome.error
        if saved is not None:
            error.hint = (
                f"{error.hint}; raw reply saved to {saved}" if error.hint else f"raw reply saved to {saved}"
            )
        raise error
    assert result is not None
    culprit = failing(result, settings.fail_on, settings.fail_on_scope)
    if culprit is not None:
        scope = settings.fail_on_scope or ("diff" if result.base_ref else "all")
        where = f"{culprit.path}:{culprit.start_line}"
        _echo_err(
            f"wholerepo: failing the run (--fail-on {settings.fail_on}, scope {scope}): {culprit.severity}"
            f" {culprit.category} at {where}: {culprit.title}"
        )
        sys.exit(1)
    sys.exit(0)


def _probe(settings: Any, chat: Any, not_asked: str | None, raw_file: Path) -> Any:
    """Ask the endpoint about itself; a non-JSON answer is saved before the error is raised."""
    from .llm.base import NotJSONError
    from .output import write_atomic
    from .review import probe_blocking

    try:
        return probe_blocking(settings, chat, not_asked=not_asked)
    except NotJSONError as exc:
        if exc.raw:
            write_atomic(raw_file, exc.raw, private=True)
            exc.hint = (
                f"{exc.hint}; what it sent is saved in {raw_file}" if exc.hint else f"saved in {raw_file}"
            )
        raise


def _plural(n: int, word: str) -> str:
    return f"{_fmt(n)} {word}" + ("" if n == 1 else "s")


def _review_targets(
    formats: tuple[str, ...], output: Path | None, output_dir: Path | None, dry_run: bool
) -> list[tuple[str, Path | None]]:
    """Which report goes where: (format, file or None for stdout)."""
    from .errors import UsageError
    from .report import FORMAT_FILENAMES

    chosen = list(dict.fromkeys(formats))
    if output is not None and output_dir is not None:
        raise UsageError("give -o FILE or --output-dir DIR, not both")
    if dry_run:
        return []
    if output_dir is not None:
        return [(f, output_dir / FORMAT_FILENAMES[f]) for f in (chosen or list(FORMAT_FILENAMES))]
    if len(chosen) > 1:
        raise UsageError("several --format values need --output-dir DIR", "or give one --format with -o FILE")
    if chosen:
        fmt = chosen[0]
    elif output is not None:
        fmt = {".sarif": "sarif", ".json": "json"}.get(output.suffix.lower(), "markdown")
    else:
        fmt = "markdown"
    return [(fmt, output)]


def _raw_path(output: Path | None, output_dir: Path | None) -> Path:
    """Where an unparseable reply is saved: beside the report."""
    if output_dir is not None:
        return output_dir / "review.raw.txt"
    if output is not None:
        return output.parent / "review.raw.txt"
    return Path("review.raw.txt")


def _review_summary(result: Any, written: list[str]) -> None:
    from .report import severity_counts

    counts = ", ".join(f"{n} {s}" for s, n in severity_counts(result.verified).items() if n)
    line = f"wholerepo: {_plural(len(result.verified), 'verified finding')}"
    if counts:
        line += f" ({counts})"
    line += f", {len(result.unverified)} unverified"
    if result.partial:
        line += " [partial]"
    _echo_err(line)
    usage = result.usage
    if usage is not None and usage.prompt_tokens is not None:
        text = f"  usage: {_fmt(usage.prompt_tokens)} prompt tokens"
        if usage.cache_hit_tokens is not None:
            text += f" ({_fmt(usage.cache_hit_tokens)} from cache)"
        if usage.completion_tokens is not None:
            text += f", {_fmt(usage.completion_tokens)} output tokens"
        if usage.reasoning_tokens:
            text += f" ({_fmt(usage.reasoning_tokens)} reasoning)"
        if result.cost_usd is not None:
            text += f"; cost ${result.cost_usd:.4f}"
        _echo_err(text)
    for warning in result.warnings:
        _echo_err(f"  warning: {warning}")
    for name in written:
        _echo_err(f"  wrote {name}")


@main.command("models")
@click.option(
    "--base-url",
    metavar="URL",
    default=None,
    help="OpenAI-compatible endpoint [default: https://api.deepseek.com].",
)
@click.option("--api-key-env", metavar="VAR", default=None, help="Read the API key from VAR.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="S",
    help=f"Give up after S seconds [default: {MODELS_TIMEOUT:g}].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.pass_context
def models_command(ctx: click.Context, /, **params: Any) -> None:
    """List the model ids the endpoint serves (and its window where it reports one).

    \b
    Examples:
      wholerepo models
      wholerepo models --base-url http://127.0.0.1:8000/v1    a vLLM server: shows max_model_len
    """
    with _errors(params["debug"]):
        from .llm.openai_compat import OpenAICompatible
        from .llm.policy import Endpoint
        from .output import register_secret, write_stdout
        from .packer import settings_for
        from .review import run_blocking
        from .sanitize import one_line

        flags = flag_overrides(ctx, params)
        flags.setdefault("timeout", MODELS_TIMEOUT)
        settings = settings_for(Path("."), flags, repository="none")
        print_warnings(settings.warnings)
        endpoint = Endpoint.from_settings(settings)
        register_secret(endpoint.api_key)
        chat = OpenAICompatible(endpoint)
        models = run_blocking(chat.list_models(timeout=settings.timeout), chat)
        lines = [
            # Ids are the endpoint's text: no escape sequences reach the terminal.
            one_line(m.id, 500) + (f"\tmax_model_len={m.max_model_len}" if m.max_model_len else "")
            for m in sorted(models, key=lambda m: m.id)
        ]
        write_stdout("".join(f"{line}\n" for line in lines))


__all__ = ["FAIL_ON", "FORMATS", "THINKING", "flag_overrides", "functools", "main", "pack_options"]


def run() -> None:
    """The console script: ``main``, then an exit that skips the interpreter's teardown.

    Finalising the interpreter frees every object one by one, after a cold pack the tokenizer's
    tables too: about 0.1 s, a tenth of such a run. When a command returns, its files are written
    and closed, so flushing the standard streams is all that is left to do.
    """
    try:
        main()
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # sys.exit("message"): Python prints it and exits 1
            print(exc.code, file=sys.stderr)
            code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that left (| head) or a closed stream
            pass
    os._exit(code)
