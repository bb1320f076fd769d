"""`wholerepo audit`: a repository far larger than one window, reviewed in shards and merged.

``wholerepo audit [PATH]`` plans, sends every shard (concurrently, over every ``--base-url``) and
merges; ``audit plan`` / ``audit run --shard K`` / ``audit merge`` split the same work across CI
runners. The group runs its default command when the first argument is not a subcommand.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from ..settings import FAIL_ON, FORMATS, THINKING
from .errors import Interrupts, Terminated, echo_err, handled_errors
from .groups import DefaultCommand, DefaultGroup
from .options import (
    audit_pack_options,
    check_path,
    flag_overrides,
    fmt,
    output_option,
    plural,
    print_warnings,
    reporter,
)

DEFAULT = "repository"
EXIT_FAILED = 3


class _AuditGroup(DefaultGroup):
    default = DEFAULT


def _endpoint_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--base-url",
            "base_url",
            metavar="URL",
            multiple=True,
            help="OpenAI-compatible endpoint; repeat to spread the shards over several"
            " [default: https://api.deepseek.com].",
        ),
        click.option("--model", metavar="NAME", default=None, help="Model id [default: as `review`]."),
        click.option("--api-key-env", metavar="VAR", default=None, help="Read the API key from VAR."),
        click.option(
            "--prompt", metavar="NAME|FILE", default=None, help="review, security, architecture, or a file."
        ),
        click.option(
            "--max-output-tokens", type=click.IntRange(min=1), default=None, metavar="N",
            help="Each reply's token limit [default: 32768, at most a quarter of a smaller window].",
        ),
        click.option(
            "--context-window", type=click.IntRange(min=1), default=None, metavar="N",
            help="The model's window [default: the endpoint's /models figure, else 1048576].",
        ),
        click.option(
            "--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
            help="Deadline for each shard's reply, retries included [default: 1800].",
        ),
        click.option("--thinking", type=click.Choice(THINKING), default=None, help="DeepSeek thinking mode."),
        click.option(
            "--path", "subdirs", metavar="SUBDIR", multiple=True,
            help="Audit only the files under SUBDIR (repeatable); the map still shows everything.",
        ),
        click.option(
            "--changed-since", metavar="REF", default=None,
            help="Send only the shards holding a file changed since REF (the others are not sent).",
        ),
        click.option(
            "--map-share", type=click.FloatRange(min=0, max=1, max_open=True), default=None, metavar="F",
            help="The repository map's share of each request's budget, at most [default: 0.15].",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return audit_pack_options(func)


def _report_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--format", "formats", type=click.Choice(FORMATS), multiple=True,
            help="Report format; repeat with --output-dir for several [default: markdown].",
        ),
        output_option("the report"),
        click.option(
            "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
            help="Write review.md / review.sarif / review.json here.",
        ),
        click.option(
            "--fail-on", type=click.Choice(FAIL_ON), default=None,
            help="Exit 1 when a verified finding is at least this severe [default: none].",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _sending_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--concurrency", type=click.IntRange(min=1), default=4, show_default=True, metavar="N",
            help="Requests in flight at once, per endpoint.",
        ),
        click.option(
            "--resume", is_flag=True, help="Send only the shards not answered before (checkpoints)."
        ),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


@click.group("audit", cls=_AuditGroup, short_help="Audit a repository far larger than one window, in shards.")
def audit_command() -> None:
    """Audit a repository far larger than one window: shards, reviewed concurrently, merged.

    Its --help is the default command's (audit PATH), then plan, run and merge."""


@audit_command.command(DEFAULT, cls=DefaultCommand, hidden=True, usage="[PATH] [OPTIONS]")
@_endpoint_options
@_report_options
@_sending_options
@click.option("--dry-run", is_flag=True, help="Send nothing: print the shards, exact tokens and the cost.")
@click.pass_context
def audit_all(ctx: click.Context, /, **params: Any) -> None:
    """Audit PATH (default: the current directory), a repository far larger than one window: cut
    it into shards along its structure, send them concurrently across endpoints, merge the
    findings into one report; resumable. The same work split across CI runners:

    \b
    wholerepo audit plan -o plan.json    the shard plan, a JSON list for a CI matrix
    wholerepo audit run --plan plan.json --shard K -o shard-K.json
    wholerepo audit merge shard-*.json --format sarif -o audit.sarif

    \b
    Exit codes: 0 done, 1 a verified finding at or above --fail-on, 2 usage error, 3 a shard
    failed (the finished shards' findings are in the report; --resume sends only the rest),
    130 interrupted or 143 terminated (the same), 70 an internal error (a bug: --debug shows
    the traceback).

    \b
    Examples:
      wholerepo audit . --dry-run
      wholerepo audit . --budget 128000 --concurrency 8 --format sarif -o audit.sarif
      wholerepo audit . --base-url http://gpu1:8000/v1 --base-url http://gpu2:8000/v1
      wholerepo audit . --resume
    """
    with handled_errors(params["debug"]):
        from .review import _review_targets

        path: Path = params["path"]
        check_path(path)
        targets = _review_targets(params["formats"], params["output"], params["output_dir"])
        if params["dry_run"]:
            targets = []  # checked above like the real run; a dry run writes no report
        settings, urls = _settings(ctx, params)
        print_warnings(settings.warnings)
        _prepare_outputs(targets)
        progress = reporter(params["quiet"])
        try:
            probes = _probe_all(settings, urls, params["dry_run"])
            plan = _plan(path, settings, probes, params, progress)
        finally:
            progress.stop()
        print_warnings(plan.warnings)
        if params["dry_run"]:
            _print_dry_run(plan, [p[0] for p in probes], [n for p in probes for n in p[3]], params)
            return
        if not params["quiet"]:
            _announce(plan, len(urls))
        audit, interrupted = _send(plan, settings, probes, params, None)
        merged = _merge(plan, audit, probes)
        _write_reports(merged.result, targets, settings)
        _finish(merged, settings, params, interrupted, audit)


@audit_command.command("plan")
@_endpoint_options
@output_option("the plan")
@click.pass_context
def audit_plan(ctx: click.Context, /, **params: Any) -> None:
    """Write the deterministic shard plan: a JSON list, one entry per shard, for a CI matrix.

    \b
    Examples:
      wholerepo audit plan . -o plan.json
      jq -c '[.[].shard]' plan.json      # the matrix of shard numbers
    """
    with handled_errors(params["debug"]):
        from .output import ensure_parent, write_atomic, write_stdout

        path: Path = params["path"]
        check_path(path)
        settings, urls = _settings(ctx, params)
        print_warnings(settings.warnings)
        progress = reporter(params["quiet"])
        try:
            plan = _plan(path, settings, _probe_all(settings, urls, True), params, progress)
        finally:
            progress.stop()
        print_warnings(plan.warnings)
        text = json.dumps(plan.to_json(), indent=1, ensure_ascii=False) + "\n"
        if params["output"] is None:
            write_stdout(text)
        else:
            ensure_parent(params["output"])
            write_atomic(params["output"], text)
        if not params["quiet"]:
            echo_err(
                f"wholerepo: {plural(len(plan.selected), 'shard')} to send of {len(plan.shards)},"
                f" plan {plan.digest}"
            )


@audit_command.command("run")
@_endpoint_options
@_sending_options
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The plan `wholerepo audit plan` wrote.",
)
@click.option("--shard", type=click.IntRange(min=1), required=True, metavar="K", help="The shard to review.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="Write the shard's result here (merge them with `wholerepo audit merge`).",
)  # fmt: skip
@click.pass_context
def audit_run(ctx: click.Context, /, **params: Any) -> None:
    """Review one shard of a plan (one CI runner's part) into a shard file.

    \b
    Exit codes: 0 done, 2 the plan does not match this checkout or these options, 3 the shard
    failed (its file says so; merge names it), 130 interrupted or 143 terminated.

    \b
    Examples:
      wholerepo audit run . --plan plan.json --shard 3 -o shard-3.json
    """
    with handled_errors(params["debug"]):
        from ..audit.plan import load_plan_file
        from ..errors import UsageError
        from .output import ensure_parent

        path: Path = params["path"]
        check_path(path)
        entries = load_plan_file(params["plan_file"].read_text(encoding="utf-8"))
        settings, urls = _settings(ctx, params)
        print_warnings(settings.warnings)
        ensure_parent(params["output"])
        progress = reporter(params["quiet"])
        try:
            probes = _probe_all(settings, urls, False)
            plan = _plan(path, settings, probes, params, progress)
        finally:
            progress.stop()
        digests = {str(e.get("plan")) for e in entries}
        if digests != {plan.digest}:
            raise UsageError(
                f"{params['plan_file']} is not the plan of this checkout with these options"
                f" (its plan {', '.join(sorted(digests))}, here {plan.digest})",
                "run `wholerepo audit plan` and `audit run` on the same commit with the same options",
            )
        if params["shard"] not in {int(e["shard"]) for e in entries}:
            raise UsageError(f"--shard {params['shard']} is not in {params['plan_file']}")
        if not params["quiet"]:
            _announce(plan, len(urls), only=params["shard"])
        audit, interrupted = _send(plan, settings, probes, params, params["shard"])
        from ..audit.merge import FAILED, ShardResult, shard_file
        from .output import write_atomic

        s = plan.shard(params["shard"])
        result = audit.results.get(s.index) or ShardResult(
            s.index, s.name, FAILED, tuple(plan.prefix + p for p in s.paths), None, "not finished"
        )
        write_atomic(params["output"], shard_file(_info(plan, probes), result), private=not settings.redact)
        if not params["quiet"]:
            echo_err(f"wholerepo: wrote {params['output']}")
        if interrupted:
            echo_err("Interrupted: the findings received so far were written (partial).")
            sys.exit(143 if Interrupts.seen is Terminated else 130)
        if result.status != "done":
            echo_err(f"Error: shard {s.index} {result.status}: {result.error}")
            sys.exit(EXIT_FAILED)
        sys.exit(0)


@audit_command.command("merge")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@_report_options
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
def audit_merge(**params: Any) -> None:
    """Merge the shard files of one plan into one report.

    \b
    Exit codes: 0 done, 1 a verified finding at or above --fail-on, 3 a shard of the plan failed
    or its file is missing (named; the others' findings are in the report).

    \b
    Examples:
      wholerepo audit merge shards/shard-*.json --format sarif -o audit.sarif
      wholerepo audit merge shard-*.json --output-dir out --format sarif --format markdown
    """
    with handled_errors(params["debug"]):
        from ..audit.merge import merge_files
        from ..settings import Settings
        from .review import _review_targets

        targets = _review_targets(params["formats"], params["output"], params["output_dir"])
        _prepare_outputs(targets)
        merged = merge_files([(str(f), f.read_text(encoding="utf-8")) for f in params["files"]])
        settings = Settings(fail_on=params["fail_on"] or "none")
        _write_reports(merged.result, targets, settings)
        _finish(merged, settings, params, False, None, merging=True)


# -- the steps -------------------------------------------------------------------------------------


def _settings(ctx: click.Context, params: dict[str, Any]) -> tuple[Any, list[str]]:
    from ..packer import settings_for

    urls = list(params["base_url"])
    given = {k: v for k, v in params.items() if k not in ("fit", "base_url")}
    flags = flag_overrides(ctx, given)
    if urls:
        flags["base_url"] = urls[0]
    settings = settings_for(params["path"], flags)
    return settings, urls or [settings.base_url]


def _prepare_outputs(targets: list[tuple[str, Path | None]]) -> None:
    from .output import ensure_parent

    for _fmt, target in targets:
        if target is not None:
            ensure_parent(target)


def _probe_all(settings: Any, urls: list[str], dry: bool) -> list[tuple[str, Any, Any, tuple[str, ...]]]:
    """(url, settings, probe, notes) per endpoint: the window and model each reports."""
    from ..llm.openai_compat import OpenAICompatible
    from ..llm.policy import Endpoint, find_api_key, is_deepseek
    from ..reviewer import probe_blocking
    from .output import register_secret

    found = []
    for url in urls:
        s = replace(settings, base_url=url)
        if dry:
            key, names = find_api_key(url, s.api_key_env)
            if key is None and (is_deepseek(url) or s.api_key_env):
                p = probe_blocking(s, None, not_asked=f"no API key ({names[0]} is not set)")
                found.append((url, s, p, p.notes))
                continue
        endpoint = Endpoint.from_settings(s, also="" if dry else "--dry-run needs no key")
        register_secret(endpoint.api_key)
        print_warnings(endpoint.warnings)
        p = probe_blocking(s, OpenAICompatible(endpoint))
        found.append((url, s, p, p.notes))
    return found


def _plan(path: Path, settings: Any, probes: list[Any], params: dict[str, Any], progress: Any) -> Any:
    from ..audit.plan import MAP_SHARE, make_plan
    from ..reviewer.plan import Window

    windows = [p[2].window for p in probes]
    window = (
        min(windows, key=lambda w: w.tokens) if windows else Window(settings.context_window or 0, "default")
    )
    return make_plan(
        path,
        settings,
        window,
        model=probes[0][2].model,
        subdirs=params["subdirs"],
        changed_since=params["changed_since"],
        map_share=params["map_share"] if params["map_share"] is not None else MAP_SHARE,
        on_progress=progress.update,
    )


def _print_dry_run(plan: Any, urls: list[str], notes: list[str], params: dict[str, Any]) -> None:
    from ..audit.plan import dry_run_report, dry_run_text
    from ..llm.policy import public_url
    from .output import write_stdout

    report = dry_run_report(plan, [public_url(u) for u in urls], notes)
    if params["formats"] and params["formats"][-1] == "json":
        write_stdout(json.dumps({"generator": "wholerepo", **report}, indent=2) + "\n")
    else:
        write_stdout(dry_run_text(report))


def _announce(plan: Any, endpoints: int, only: int | None = None) -> None:
    sent = [plan.shard(i) for i in ((only,) if only is not None else plan.selected)]
    files = sum(len(s.paths) for s in sent)
    tokens = sum(plan.prompt_tokens(s) for s in sent)
    # One runner of a matrix sends one shard: name it, not the plan's count.
    what = f"shard {only} of {len(plan.shards)}" if only is not None else plural(len(sent), "shard")
    echo_err(
        f"wholerepo: auditing {plural(files, 'file')} in {what},"
        f" {fmt(tokens)} prompt tokens (exact, {plan.settings.tokenizer}; a shared map of"
        f" {fmt(plan.repo_map.tokens)}) over {plural(endpoints, 'endpoint')}"
    )


def _send(
    plan: Any, settings: Any, probes: list[Any], params: dict[str, Any], only: int | None
) -> tuple[Any, bool]:
    """Send the plan's shards (or shard ``only``); returns the Audit and whether it was interrupted."""
    from .. import __version__
    from ..audit.checkpoint import Checkpoints
    from ..audit.run import Audit, Progress, Target
    from ..llm.openai_compat import OpenAICompatible
    from ..llm.policy import Endpoint

    quiet = params["quiet"]
    bar = reporter(quiet)
    if only is not None:
        plan = replace(plan, selected=(only,))
    total = len(plan.selected)
    done: list[int] = []

    def on_done(r: Any, seconds: float) -> None:
        done.append(r.index)
        bar.update("shards", len(done), total)
        what = f"{plural(len(r.result.verified), 'finding')}" if r.result is not None else "no findings"
        state = "done" if r.status == "done" else f"{r.status}: {r.error}"
        bar.event(
            f"shard {r.index}/{len(plan.shards)} {state} ({what}, {seconds:.0f} s, {r.endpoint}): {r.name}"
        )

    def on_event(message: str) -> None:  # retries and fallbacks; not every reply's start
        if not message.startswith(("the model started answering", "reply complete")):
            bar.event(message)

    targets = []
    for _url, s, p, _notes in probes:
        endpoint = Endpoint.from_settings(s)
        if p.model != endpoint.model:
            endpoint = replace(endpoint, model=p.model)
        chat = OpenAICompatible(endpoint, on_event=on_event)
        targets.append(Target(chat, s.base_url, p.model, params["concurrency"]))
    store = Checkpoints(settings)
    if params["resume"] and not store.enabled:
        from ..errors import UsageError

        raise UsageError("--resume needs the cache (it is off: --no-cache or --no-redact)")
    audit = Audit(
        plan, targets, str(__version__), store, resume=params["resume"], progress=Progress(on_done=on_done)
    )
    interrupted = False
    try:
        taken = audit.resumed()
        for index in taken:
            done.append(index)
        if taken and not quiet:
            bar.event(f"resumed {plural(len(taken), 'shard')} from checkpoints: {', '.join(map(str, taken))}")
        bar.update("shards", len(done), total)

        async def main() -> None:
            try:
                await audit.run()
            finally:
                for t in targets:
                    await t.chat.aclose()

        import asyncio

        asyncio.run(main())
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.stop()
        store.close()
    return audit, interrupted


def _info(plan: Any, probes: list[Any]) -> Any:
    from .. import __version__
    from ..audit.merge import AuditInfo
    from ..llm.policy import public_url

    return AuditInfo(
        plan=plan.digest,
        shards=len(plan.shards),
        selected=tuple(plan.selected),
        not_sent=tuple(plan.not_sent),
        endpoints=tuple(public_url(p[0]) for p in probes),
        model=plan.model,
        tokenizer=plan.settings.tokenizer,
        prompt_name=plan.frame.instructions.name,
        tool_version=str(__version__),
    )


def _merge(plan: Any, audit: Any, probes: list[Any]) -> Any:
    from ..audit.merge import merge

    return merge(_info(plan, probes), list(audit.results.values()))


def _write_reports(result: Any, targets: list[tuple[str, Path | None]], settings: Any) -> list[str]:
    from ..report import render
    from .output import write_atomic, write_stdout

    written = []
    for report_format, target in targets:
        text = render(report_format, result)
        if target is None:
            write_stdout(text)
        else:
            write_atomic(target, text, private=not settings.redact)
            written.append(str(target))
    return written


def _finish(
    merged: Any,
    settings: Any,
    params: dict[str, Any],
    interrupted: bool,
    audit: Any,
    *,
    merging: bool = False,
) -> None:
    from ..reviewer import failing
    from .review import _review_summary

    result = merged.result
    if not params["quiet"]:
        _review_summary(result, [])
    if interrupted:
        echo_err(
            "Interrupted: the findings of every finished shard were written (partial); "
            "run again with --resume to send only the rest."
        )
        sys.exit(143 if Interrupts.seen is Terminated else 130)
    if merged.failed:
        names = ", ".join(str(i) for i in merged.failed)
        if merging:  # merge sends nothing: each missing shard is its own `audit run`
            fix = "; ".join(
                f"wholerepo audit run --plan plan.json --shard {i} -o shard-{i}.json" for i in merged.failed
            )
            fix = f"review them with the plan's options, then merge again: {fix}"
        else:
            fix = "run again with --resume to send only these"
        echo_err(
            f"Error: {plural(len(merged.failed), 'shard')} did not finish: {names}; the other shards'"
            f" findings were written; {fix}"
        )
        sys.exit(EXIT_FAILED)
    culprit = failing(result, settings.fail_on, "all")
    if culprit is not None:
        echo_err(
            f"wholerepo: failing the run (--fail-on {settings.fail_on}): {culprit.severity}"
            f" {culprit.category} at {culprit.path}:{culprit.start_line}: {culprit.title}"
        )
        sys.exit(1)
    sys.exit(0)
