"""`wholerepo review`: ask the endpoint, pack into its window, send, verify, report."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from ..settings import FAIL_ON, FAIL_ON_SCOPES, FORMATS, THINKING
from .errors import Interrupts, Terminated, echo_err, handled_errors
from .options import (
    check_path,
    flag_overrides,
    fmt,
    output_option,
    plural,
    print_explanation,
    print_warnings,
    reporter,
    review_pack_options,
)


@click.command("review", short_help="Review a whole repository; verified findings out.")
@review_pack_options
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
@output_option("the report")
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
    help="The reply's token limit, sent as max_tokens [default: 32768, at most a quarter of a smaller"
    " window].",
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
    (the raw reply is saved as review.raw.txt), 130 interrupted or 143 terminated (findings so
    far written), 70 an internal error (a bug: --debug shows the traceback).

    \b
    Examples:
      wholerepo review . --dry-run
      wholerepo review . --fail-on high --format sarif -o review.sarif
      wholerepo review . --base origin/main --output-dir out --format markdown --format sarif
      wholerepo review . --base-url http://localhost:8000/v1 --model my-model
    """
    with handled_errors(params["debug"]):
        path: Path = params["path"]
        check_path(path)
        # Checked in a dry run too, so that a dry run passing means the real run will start.
        targets = _review_targets(params["formats"], params["output"], params["output_dir"])
        if params["dry_run"]:
            targets = []  # a dry run writes no report, only its own summary on stdout
        flags = flag_overrides(ctx, params)
        from ..packer import settings_for
        from .output import ensure_parent, require_stdout

        if params["dry_run"] or any(target is None for _name, target in targets):
            require_stdout()  # where the report goes: closed, so stop before anything is sent

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
    from ..llm.policy import Endpoint, find_api_key, is_deepseek
    from ..reviewer import dry_run_report, dry_run_text
    from .output import write_stdout

    key, names = find_api_key(settings.base_url, settings.api_key_env)
    chat = None
    not_asked = None
    if key is None and (is_deepseek(settings.base_url) or settings.api_key_env):
        not_asked = f"no API key ({names[0]} is not set)"
    else:
        from ..llm.openai_compat import OpenAICompatible
        from .output import register_secret

        register_secret(key)
        endpoint = Endpoint.from_settings(settings)
        print_warnings(endpoint.warnings)
        chat = OpenAICompatible(endpoint)
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
    from ..reviewer import plan

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

    from .. import __version__
    from ..llm.openai_compat import OpenAICompatible
    from ..llm.policy import Endpoint
    from ..report import render
    from ..reviewer import failing, left_out, left_out_text, review_blocking
    from .output import register_secret, write_atomic, write_stdout

    quiet = params["quiet"]
    endpoint = Endpoint.from_settings(settings, also="--dry-run needs no key")
    register_secret(endpoint.api_key)
    print_warnings(endpoint.warnings)
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
            echo_err(
                f"wholerepo: sending {plural(len(p.pack.included), 'file')},"
                f" {fmt(p.prompt_tokens)} prompt tokens (exact, {settings.tokenizer}) to {p.model}"
            )
            dropped = left_out_text(left_out(p))
            if dropped:
                echo_err(f"  {dropped}")
        chat = OpenAICompatible(endpoint, on_event=progress.event, on_progress=progress.update)
        outcome = review_blocking(p, chat, tool_version=str(__version__), on_event=progress.event)
    finally:
        progress.stop()
    result = outcome.result
    written: list[str] = []
    private = not settings.redact
    if result is not None:
        for report_format, target in targets:
            text = render(report_format, result)
            if target is None:
                write_stdout(text)
            else:
                write_atomic(target, text, private=private)
                written.append(str(target))
    saved: Path | None = None
    if outcome.raw is not None and (outcome.error is not None or outcome.interrupted):
        write_atomic(raw_file, outcome.raw, private=True)
        saved = raw_file
    elif outcome.error is None and not outcome.interrupted:
        # An earlier failure's raw reply beside this run's reports would read as this run's.
        with contextlib.suppress(OSError):
            raw_file.unlink(missing_ok=True)
    if not quiet and result is not None:
        _review_summary(result, written)
    if outcome.interrupted:
        note = f"; raw reply saved to {saved}" if saved else ""
        echo_err(f"Interrupted: the findings received so far were written (partial){note}.")
        sys.exit(143 if Interrupts.seen is Terminated else 130)
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
        echo_err(
            f"wholerepo: failing the run (--fail-on {settings.fail_on}, scope {scope}): {culprit.severity}"
            f" {culprit.category} at {where}: {culprit.title}"
        )
        sys.exit(1)
    outside = failing(result, settings.fail_on, "all") if settings.fail_on != "none" else None
    if outside is not None and not quiet:  # out of --fail-on's diff scope: said, not silently passed
        echo_err(
            f"wholerepo: not failing the run for {outside.severity} {outside.category} at"
            f" {outside.path}:{outside.start_line}: it is outside the diff (--fail-on-scope all counts it)"
        )
    sys.exit(0)


def _probe(settings: Any, chat: Any, not_asked: str | None, raw_file: Path) -> Any:
    """Ask the endpoint about itself; a non-JSON answer is saved before the error is raised."""
    from ..llm.base import NotJSONError
    from ..reviewer import probe_blocking
    from .output import write_atomic

    try:
        return probe_blocking(settings, chat, not_asked=not_asked)
    except NotJSONError as exc:
        if exc.raw:
            write_atomic(raw_file, exc.raw, private=True)
            exc.hint = (
                f"{exc.hint}; what it sent is saved in {raw_file}" if exc.hint else f"saved in {raw_file}"
            )
        raise


def _review_targets(
    formats: tuple[str, ...], output: Path | None, output_dir: Path | None
) -> list[tuple[str, Path | None]]:
    """Which report goes where: (format, file or None for stdout)."""
    from ..errors import UsageError
    from ..report import FORMAT_FILENAMES

    chosen = list(dict.fromkeys(formats))
    if output is not None and output_dir is not None:
        raise UsageError("give -o FILE or --output-dir DIR, not both")
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
    from ..report import severity_counts

    counts = ", ".join(f"{n} {s}" for s, n in severity_counts(result.verified).items() if n)
    line = f"wholerepo: {plural(len(result.verified), 'verified finding')}"
    if counts:
        line += f" ({counts})"
    line += f", {len(result.unanchored)} unanchored, {len(result.unverified)} unverified"
    if result.merged:
        line += f", {result.merged} duplicates merged"
    if result.partial:
        line += " [partial]"
    echo_err(line)
    usage = result.usage
    if usage is not None and usage.prompt_tokens is not None:
        text = f"  usage: {fmt(usage.prompt_tokens)} prompt tokens"
        if usage.cache_hit_tokens is not None:
            text += f" ({fmt(usage.cache_hit_tokens)} from cache)"
        if usage.completion_tokens is not None:
            text += f", {fmt(usage.completion_tokens)} output tokens"
        if usage.reasoning_tokens:
            text += f" ({fmt(usage.reasoning_tokens)} reasoning)"
        if result.cost_usd is not None:
            text += f"; cost ${result.cost_usd:.4f}"
        echo_err(text)
    for warning in result.warnings:
        echo_err(f"  warning: {warning}")
    for name in written:
        echo_err(f"  wrote {name}")
