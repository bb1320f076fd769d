"""`wholerepo eval CORPUS`: measure review quality on a corpus; `wholerepo eval plant`: make one.

``eval`` is a group whose default command is the evaluation itself: ``wholerepo eval CORPUS ...``
runs it, ``wholerepo eval plant REPO -o CORPUS`` plants bugs. (A corpus directory that is
literally named ``plant`` is given as ``./plant``.)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .errors import echo_err, handled_errors
from .groups import DefaultCommand, DefaultGroup
from .options import flag_overrides, output_option, plural, print_warnings
from .review import review_command

MODES = ("diff", "repo", "fit")
REPORT_FORMATS = ("markdown", "json")
RUN = "run"
# The review's options that an evaluation takes as they are: endpoint, model, prompt, window and
# every pack option (the PATH argument, outputs, --base, --fail-on and --dry-run are not).
_NOT_SHARED = frozenset(
    {"path", "formats", "output", "output_dir", "fail_on", "fail_on_scope", "manifest", "base", "dry_run"}
)


class EvalGroup(DefaultGroup):
    default = RUN


@click.group("eval", cls=EvalGroup, short_help="Measure review quality on planted and real bugs.")
def eval_group() -> None:
    """Measure review quality on a corpus of changes with known issues."""


@eval_group.command(
    RUN, cls=DefaultCommand, hidden=True, usage="CORPUS [OPTIONS]   |   {path} plant REPO -o CORPUS"
)
@click.argument("corpus", type=click.Path(path_type=Path))
@click.option(
    "--context",
    "contexts",
    type=click.Choice(MODES),
    multiple=True,
    help="What the model sees: diff (the change only), repo (the whole repository and the diff, as"
    " --budget and --fit shape it), fit (the repository fitted into the window, whatever --budget"
    " and --fit say); repeatable [default: all three].",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1, max=100),
    default=1,
    metavar="N",
    help="Review every case N times per mode; the report gives the spread [default: 1].",
)
@output_option("the report (the checkpoint goes beside it)")
@click.option(
    "--format",
    "report_format",
    type=click.Choice(REPORT_FORMATS),
    default=None,
    help="Report format [default: json for a .json file, else markdown].",
)
@click.option(
    "--tolerance",
    type=click.IntRange(min=0),
    default=3,
    metavar="LINES",
    help="A finding matches an expected issue on the same path within this many lines [default: 3].",
)
@click.option(
    "--judge",
    is_flag=True,
    help="Also ask an endpoint whether each matching finding describes the expected issue.",
)
@click.option("--judge-model", metavar="NAME", default=None, help="The judge's model [default: --model's].")
@click.option(
    "--judge-base-url", metavar="URL", default=None, help="The judge's endpoint [default: --base-url's]."
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=64),
    default=4,
    metavar="N",
    help="Requests in flight at once [default: 4].",
)
@click.option("--case", "case_names", multiple=True, metavar="ID", help="Run only this case; repeatable.")
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.png",
    help="Also draw precision/recall/F1 per mode (needs: pip install 'wholerepo[chart]').",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Where finished reviews are kept [default: beside -o, else in the cache directory].",
)
@click.option("--fresh", is_flag=True, help="Ignore the checkpoint: review every case again.")
@click.pass_context
def eval_command(ctx: click.Context, /, **params: Any) -> None:
    """Review every case of CORPUS in each context mode and score the findings.

    Each case is a change (base..head in a repository or bundle) with the issues a good review
    finds, or none (a clean change: every finding is a false alarm). The report gives recall,
    precision, F1, false alarms per clean case, the verified share, tokens, cost and latency per
    mode, and every case's details. A failed review is tried again on the next run; finished ones
    are kept in the checkpoint. `fit` fits the repository into the window with the packer's
    fitting (--fit compress: ranked, compressed to outlines before anything is left out) whatever
    --budget and --fit say; with neither given, that is the request `repo` sends, so it is sent
    once and its reply counts for both (the report says so).

    \b
    Exit codes: 0 every review done, 2 usage or corpus error, 3 some reviews failed (the report
    is written; run again to retry them, or, for a prompt that does not fit, change the options
    the error names), 130 interrupted or 143 terminated (finished reviews kept), 70 an internal
    error (a bug: --debug shows the traceback).

    \b
    Examples:
      wholerepo eval plant . -o corpus --count 12 --seed 1
      wholerepo eval corpus --base-url http://127.0.0.1:8000/v1 -o eval.md
      wholerepo eval corpus --context diff --context repo --repeat 3 -o eval.json --chart eval.png
      wholerepo eval corpus --model deepseek-flash --judge -o eval.md
    """
    with handled_errors(params["debug"]):
        sys.exit(_evaluate(ctx, params))


for _param in review_command.params:
    if _param.name not in _NOT_SHARED:
        eval_command.params.append(_param)


def _evaluate(ctx: click.Context, params: dict[str, Any]) -> int:
    import asyncio
    import hashlib
    from dataclasses import replace

    from .. import __version__
    from ..eval.corpus import case_ids, load_corpus, workspace
    from ..eval.report import Report, check_chart, render, write_chart
    from ..eval.run import Checkpoint, Evaluation, Judge, evaluate
    from ..eval.score import summarize
    from ..llm.openai_compat import OpenAICompatible
    from ..llm.policy import Endpoint, public_url
    from ..packer import settings_for
    from ..packer.cache import default_cache_dir
    from ..reviewer import probe
    from .output import ensure_parent, register_secret, write_atomic, write_stdout

    if params["chart"] is not None:
        check_chart()
    corpus = load_corpus(params["corpus"])
    cases = case_ids(corpus, params["case_names"])
    modes = tuple(dict.fromkeys(params["contexts"])) or MODES
    flags = flag_overrides(ctx, params)
    settings = settings_for(corpus.root, flags, repository="none")
    print_warnings(settings.warnings)
    output: Path | None = params["output"]
    fmt = params["report_format"] or (
        "json" if output is not None and output.suffix == ".json" else "markdown"
    )
    for target in (output, params["chart"], params["checkpoint"]):
        if target is not None:
            ensure_parent(target)
    if params["checkpoint"] is not None:
        checkpoint_file = params["checkpoint"]
    elif output is not None:
        checkpoint_file = output.with_name(output.stem + ".checkpoint.jsonl")
    else:
        digest = hashlib.sha256(str(corpus.file).encode()).hexdigest()[:16]
        checkpoint_file = default_cache_dir() / "eval" / f"{digest}.jsonl"
    checkpoint = Checkpoint(checkpoint_file, fresh=params["fresh"])
    endpoint = Endpoint.from_settings(settings)
    register_secret(endpoint.api_key)
    print_warnings(endpoint.warnings)
    quiet = params["quiet"]

    def event(message: str) -> None:
        if not quiet:
            echo_err(f"wholerepo eval: {message}")

    judge_settings = None
    if params["judge"] or params["judge_model"] or params["judge_base_url"]:
        judge_settings = replace(
            settings,
            base_url=params["judge_base_url"] or settings.base_url,
            model=params["judge_model"] or settings.model,
        )

    async def main() -> tuple[Any, list[Any], str | None]:
        chat = OpenAICompatible(endpoint, on_event=event)
        judge_chat = None
        try:
            found = await probe(settings, chat)
            for note in found.notes:
                event(note)
            if found.model != endpoint.model:
                await chat.aclose()
                chat = OpenAICompatible(replace(endpoint, model=found.model), on_event=event)
            judge = None
            if judge_settings is not None:
                judge_endpoint = Endpoint.from_settings(
                    judge_settings, model=judge_settings.model or found.model
                )
                register_secret(judge_endpoint.api_key)
                judge_chat = OpenAICompatible(judge_endpoint, on_event=event)
                judge = Judge(judge_chat, public_url(judge_endpoint.base_url))
            if not quiet:
                event(
                    f"{plural(len(cases), 'case')} x {plural(len(modes), 'mode')} x {params['repeat']}"
                    f" to {found.model}"
                    f" ({found.window.tokens:,}-token window, {found.window.label});"
                    f" checkpoint {checkpoint_file}"
                )
            ev = Evaluation(
                chat=chat,
                probe=found,
                flags=flags,
                modes=modes,
                repeat=params["repeat"],
                jobs=params["jobs"],
                tolerance=params["tolerance"],
                judge=judge,
                tool_version=str(__version__),
                on_event=event,
            )
            with workspace() as space:
                reviews = await evaluate(corpus, cases, ev, checkpoint, space)
            judge_name = f"{judge.chat.model} at {judge.endpoint}" if judge is not None else None
            return found, reviews, judge_name
        finally:
            await chat.aclose()
            if judge_chat is not None:
                await judge_chat.aclose()

    found, reviews, judge_name = asyncio.run(main())
    summaries, scores = summarize(cases, reviews, params["tolerance"])
    report = Report(
        corpus=corpus,
        cases=cases,
        modes=modes,
        reviews=tuple(reviews),
        summaries=summaries,
        scores=tuple(scores),
        endpoint=public_url(settings.base_url),
        model=found.model,
        window=found.window.tokens,
        tokenizer=settings.tokenizer,
        repeat=params["repeat"],
        tolerance=params["tolerance"],
        tool_version=str(__version__),
        judge=judge_name,
    )
    text = render(report, fmt)
    if output is None:
        write_stdout(text)
    else:
        write_atomic(output, text, private=not settings.redact)
        if not quiet:
            echo_err(f"wholerepo eval: wrote {output}")
    if params["chart"] is not None:
        write_chart(report, params["chart"])
        if not quiet:
            echo_err(f"wholerepo eval: wrote {params['chart']}")
    failures = report.failed
    if failures:
        _say_failures(failures)
        return 3
    return 0


def _say_failures(failures: tuple[Any, ...]) -> None:
    """What failed and what helps: an error that every run repeats (a prompt too large for the
    window, a usage error) once, with its fix; the others are tried again by the next run."""
    lasting: dict[str, int] = {}
    for r in failures:
        if r.lasting is not None:
            lasting[r.lasting] = lasting.get(r.lasting, 0) + 1
    for cause, count in lasting.items():
        echo_err(
            f"Error: {count} reviews failed: {cause}; the same command fails the same way again,"
            " so change the options this names (finished reviews are kept)"
        )
    retry = len(failures) - sum(lasting.values())
    if retry:
        echo_err(
            f"wholerepo eval: {retry} reviews failed and were not scored; run the same command"
            " again to retry them (finished reviews are kept)"
        )


@eval_group.command("plant")
@click.argument("repo", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    metavar="CORPUS",
    help="The corpus directory to create (or a .toml / .json file; the bundle goes beside it).",
)
@click.option(
    "--count",
    type=click.IntRange(min=1, max=500),
    default=12,
    metavar="N",
    help="How many cases, a quarter of them clean refactors [default: 12].",
)
@click.option(
    "--seed", type=int, default=0, metavar="S", help="The same seed plants the same bugs [default: 0]."
)
@click.option(
    "--clean",
    "clean_count",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="How many of the cases are clean refactors [default: a quarter].",
)
@click.option(
    "--tests",
    "test_mode",
    type=click.Choice(("auto", "off")),
    default="auto",
    help="auto: run the repository's pytest suite and keep only bugs a test catches"
    " (and refactors every test passes); off: plant unchecked [default: auto].",
)
@click.option(
    "--test-command",
    metavar="CMD",
    default=None,
    help="Run this instead of pytest to check a plant (exit 0 = tests pass).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
def plant_command(**params: Any) -> None:
    """Make a corpus from REPO by planting realistic bugs as commits, with their ground truth.

    Works on a copy: REPO is never changed. The corpus is REPO's HEAD as one snapshot commit, one
    commit per case on top of it, in a git bundle beside corpus.toml. Bugs: off-by-one, inverted
    condition, wrong argument order, a callee changed so that a caller in another file breaks,
    removed None check, resource not closed, missing await, string-built SQL, swallowed exception;
    clean cases are renames and extracted functions. About half the bug cases need code outside the
    change to be seen. With tests (pytest), each bug is kept only when a test fails on it; they
    run in wholerepo's own Python unless --test-command names yours. Tests that fail before any
    change are a warning, and the corpus is planted unchecked.

    \b
    Examples:
      wholerepo eval plant . -o corpus --test-command ".venv/bin/python -m pytest -x -q"
      wholerepo eval plant ../project -o eval/corpus.toml --count 20 --seed 7
    """
    with handled_errors(params["debug"]):
        from ..eval.plant import plant_corpus

        quiet = params["quiet"]
        done = plant_corpus(
            params["repo"],
            params["output"],
            count=params["count"],
            seed=params["seed"],
            clean=params["clean_count"],
            tests=params["test_mode"] == "auto",
            test_command=params["test_command"],
            on_event=(lambda message: None)
            if quiet
            else (lambda message: echo_err(f"wholerepo eval plant: {message}")),
            on_warning=lambda message: echo_err(f"wholerepo eval plant: warning: {message}"),
        )
        if not quiet:
            echo_err(f"wholerepo eval plant: wrote {done}")


__all__ = ["eval_group"]
