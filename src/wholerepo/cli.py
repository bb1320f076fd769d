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

from .config import FAIL_ON, FORMATS, LINE_NUMBER_MODES, STYLES, THINKING, TOKENIZERS
from .errors import WholerepoError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERNAL = 70  # an unexpected error (a bug): distinct from every documented exit code


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


class _Interrupts:
    """Ctrl-C as KeyboardInterrupt, remembered: a finalizer (``__del__``) that happens to run when
    it arrives swallows the exception ("Exception ignored in ..."), and the command must still
    stop. Long work calls ``check`` between steps (the progress callback does)."""

    seen = False

    @classmethod
    def handler(cls, signum: int, frame: object) -> None:
        cls.seen = True
        raise KeyboardInterrupt

    @classmethod
    def check(cls) -> None:
        if cls.seen and threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt


@contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """One handler for every command: known errors become one line and their exit code."""
    previous = None
    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        # A Ctrl-C swallowed by a finalizer is remembered by _Interrupts, reported as "Interrupted.".
        if not isinstance(info.exc_value, KeyboardInterrupt):
            previous_hook(info)

    _Interrupts.seen = False
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, _Interrupts.handler)
        sys.unraisablehook = unraisable
    try:
        yield
        _Interrupts.check()
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = previous_hook
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


def progress_callback(quiet: bool) -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    """A rich progress bar on a terminal, nothing in pipes and CI logs; either way a Ctrl-C
    that a finalizer swallowed stops the work at the next step."""
    if quiet or not sys.stderr.isatty() or os.environ.get("CI"):

        def check(stage: str, done: int, total: int) -> None:
            _Interrupts.check()

        return check, lambda: None
    from .progress import TerminalProgress

    bar = TerminalProgress()

    def update(stage: str, done: int, total: int) -> None:
        _Interrupts.check()
        bar.update(stage, done, total)

    return update, bar.stop


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
    if s["redactions"]:
        files = s["redacted_files"]
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        _echo_err(f"  redacted {s['redactions']} secrets in {len(files)} files: {shown}")
    if not pack.settings.redact:
        _echo_err("  warning: redaction is off (--no-redact): secrets in the files are in the output")


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
        path: Path = params["path"]
        _check_path(path)
        prestart_counting(params)
        from .output import write_atomic, write_stdout
        from .packer import pack, settings_for

        settings = settings_for(path, flag_overrides(ctx, params))
        update, stop = progress_callback(params["quiet"])
        try:
            own = [p for p in (params["output"], params["manifest"]) if p is not None]
            result = pack(path, settings, on_progress=update, keep_file_text=False, omit=own)
        finally:
            stop()
        if params["manifest"] is not None:
            write_atomic(
                params["manifest"], json.dumps(result.manifest(), indent=2, ensure_ascii=False) + "\n"
            )
        if params["output"] is not None:
            write_atomic(params["output"], result.parts)
        if not params["quiet"]:
            print_summary(result)
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
    help="Model id [default: deepseek-flash]; `wholerepo models` lists them.",
)
@click.option(
    "--api-key-env",
    metavar="VAR",
    default=None,
    help="Read the API key from VAR [default: DEEPSEEK_API_KEY, then OPENAI_API_KEY].",
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
        prestart_counting(params)
        from . import __version__
        from .client import ChatClient, Endpoint, require_api_key
        from .output import write_atomic, write_stdout
        from .packer import settings_for
        from .report import render
        from .review import dry_run_report, dry_run_text, exit_code, plan, resolve_window, run

        settings = settings_for(path, flag_overrides(ctx, params))
        quiet = params["quiet"]
        update, stop = progress_callback(quiet)
        try:
            if params["dry_run"]:
                p = plan(
                    path, settings, resolve_window(settings, None), base=params["base"], on_progress=update
                )
                stop()
                report = dry_run_report(p)
                as_json = params["formats"] and params["formats"][-1] == "json"
                write_stdout(json.dumps(report, indent=2) + "\n" if as_json else dry_run_text(report))
                return
            client = ChatClient(
                Endpoint.from_settings(settings, require_api_key(settings.api_key_env)), on_progress=update
            )
            try:
                p = plan(
                    path, settings, resolve_window(settings, client), base=params["base"], on_progress=update
                )
                if not quiet:
                    _echo_err(
                        f"wholerepo: sending {len(p.pack.included)} files,"
                        f" {_fmt(p.prompt_tokens)} prompt tokens (exact, {settings.tokenizer})"
                        f" to {client.endpoint.model}"
                    )
                outcome = run(p, client, tool_version=str(__version__))
            finally:
                client.close()
        finally:
            stop()
        result = outcome.result
        written: list[str] = []
        if result is not None:
            for fmt, target in targets:
                text = render(fmt, result)
                if target is None:
                    write_stdout(text)
                else:
                    _ensure_dir(target.parent, target)
                    write_atomic(target, text)
                    written.append(str(target))
        raw_file: Path | None = None
        if outcome.raw is not None and (outcome.error is not None or outcome.interrupted):
            raw_file = _raw_path(params["output"], params["output_dir"])
            write_atomic(raw_file, outcome.raw)
        if not quiet and result is not None:
            _review_summary(result, written)
        if outcome.interrupted:
            saved = f"; raw reply saved to {raw_file}" if raw_file else ""
            _echo_err(f"Interrupted: the findings received so far were written (partial){saved}.")
            sys.exit(130)
        if outcome.error is not None:
            error = outcome.error
            if raw_file is not None:
                error.hint = (
                    f"{error.hint}; raw reply saved to {raw_file}"
                    if error.hint
                    else (f"raw reply saved to {raw_file}")
                )
            raise error
        assert result is not None
        sys.exit(exit_code(result, settings.fail_on))


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


def _ensure_dir(directory: Path, target: Path | None = None) -> None:
    from .errors import OutputError

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        what = f"cannot write {target}: " if target is not None else ""
        raise OutputError(f"{what}cannot create the directory {directory}: {exc.strerror or exc}") from exc


def _raw_path(output: Path | None, output_dir: Path | None) -> Path:
    if output_dir is not None:
        _ensure_dir(output_dir)
        return output_dir / "review.raw.txt"
    if output is not None:
        return output.parent / "review.raw.txt"
    return Path("review.raw.txt")


def _review_summary(result: Any, written: list[str]) -> None:
    from .report import severity_counts

    counts = ", ".join(f"{n} {s}" for s, n in severity_counts(result.verified).items() if n)
    line = f"wholerepo: {len(result.verified)} verified findings"
    if counts:
        line += f" ({counts})"
    line += f", {len(result.unanchored)} unanchored, {len(result.unverified)} unverified"
    if result.merged:
        line += f", {result.merged} duplicates merged"
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
    help="Give up after S seconds [default: 1800].",
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
        from .client import ChatClient, Endpoint, find_api_key
        from .output import write_stdout
        from .packer import settings_for

        settings = settings_for(Path("."), flag_overrides(ctx, params))
        key, _names = find_api_key(settings.api_key_env)
        # Local servers need no key; the SDK still wants a string to send.
        client = ChatClient(Endpoint.from_settings(settings, key or "no-key"))
        try:
            models = client.list_models(timeout=settings.timeout)
        finally:
            client.close()
        lines = [
            m.id + (f"\tmax_model_len={m.max_model_len}" if m.max_model_len else "")
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
