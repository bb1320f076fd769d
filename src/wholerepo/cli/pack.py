"""`wholerepo pack`: the repository as one deterministic, line-numbered prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .errors import echo_err, handled_errors
from .options import (
    check_path,
    fit_focus,
    flag_overrides,
    fmt,
    output_option,
    pack_options,
    plural,
    print_explanation,
    print_fit_summary,
    print_warnings,
    reporter,
)


@click.command("pack")
@pack_options
@output_option("the pack")
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
    with handled_errors(params["debug"]):
        path: Path = params["path"]
        check_path(path)
        flags = flag_overrides(ctx, params)
        from ..packer import pack, settings_for
        from .output import ensure_parent, require_stdout, write_atomic, write_stdout

        if params["output"] is None:
            require_stdout()
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
                echo_err(f"  wrote {target}")
        if params["output"] is None:
            write_stdout(result.parts)


def print_summary(pack: Any) -> None:
    from ..packer import summarize

    s = summarize(pack)
    total = len(pack.files)
    reasons = ", ".join(f"{k} {v}" for k, v in s["reasons"].items())
    line = f"wholerepo: packed {s['included']} of {total} files"
    if s["skipped"]:
        line += f" ({s['skipped']} skipped: {reasons})"
    echo_err(line)
    if not pack.in_git:
        echo_err("  not a git repository: files were chosen by walking the tree with its .gitignore files")
    share = 100.0 * pack.prompt_tokens / pack.budget
    echo_err(
        f"  tokens: {fmt(pack.prompt_tokens)} exact ({pack.tokenizer}), "
        f"{share:.1f}% of the {fmt(pack.budget)} budget"
    )
    if s["largest_files"]:
        echo_err("  largest files: " + ", ".join(f"{p} {fmt(n)}" for p, n in s["largest_files"]))
        echo_err("  largest dirs:  " + ", ".join(f"{p} {fmt(n)}" for p, n in s["largest_dirs"]))
    for reason, label in (("vendored", "vendored trees"), ("wholerepo-output", "wholerepo's own outputs")):
        dirs = s["skipped_dirs"].get(reason)
        if dirs:
            count = s["reasons"][reason]
            echo_err(f"  skipped {plural(count, 'file')} of {label}: " + ", ".join(dirs))
    if s["redactions"]:
        files = s["redacted_files"]
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        echo_err(f"  redacted {plural(s['redactions'], 'secret')} in {plural(len(files), 'file')}: {shown}")
    if not pack.settings.redact:
        echo_err("  warning: redaction is off (--no-redact): secrets in the files are in the output")
    print_fit_summary(pack)
