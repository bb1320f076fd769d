#!/usr/bin/env python3
"""Time ``wholerepo pack`` against ``repomix --style xml`` on one checkout, side by side.

Usage::

    python bench/bench_pack.py CHECKOUT [--repomix PATH] [--runs N] [--record]

What is measured (whole processes, started one after the other, never in parallel):

* wholerepo: ``wholerepo pack CHECKOUT --budget 2000000 -o OUT -q``, run with ``--wholerepo BIN``
  or else the console script that sits next to ``sys.executable`` (not a pyenv shim, whose own
  start-up would be timed). Best: a fresh virtual environment with ``pip install .``, which is
  what users run; a development interpreter may carry start-up hooks (``.pth`` files) of its own.
* repomix:   ``repomix --style xml -o OUT --quiet``, run with CHECKOUT as working directory.

Each round runs, in this order (the tool that goes first alternates between rounds):

* cold: wholerepo with ``WHOLEREPO_CACHE_DIR`` set to a fresh empty directory; repomix with its
  token cache removed. repomix 1.18.1 keeps that cache in ``os.tmpdir()/repomix/cache/``
  (``token-counts.json`` plus ``seen/`` markers that make it skip worker pre-warming;
  ``lib/core/metrics/tokenCountCache.js`` and ``lib/shared/tmpDir.js``), i.e. ``$TMPDIR/repomix``
  or ``/tmp/repomix``. The bench gives repomix a private ``TMPDIR`` and deletes
  ``$TMPDIR/repomix`` before each cold run, so it never touches anyone else's /tmp/repomix.
* warm: the same commands again, each tool's cache now filled by the cold run just before.

"Cold" is about the tools' own caches only: one untimed run of each tool first brings the
checkout, Python's bytecode and node_modules into the OS page cache for both alike (wholerepo
runs without PYTHONDONTWRITEBYTECODE, so an editable install gets its .pyc files as an installed
one has them).

Memory: a cold run of a large repository has two processes, the packer and its token-counting
helper (a ProcessPoolExecutor worker, tokens/counter.py), and ``wait4`` reports the larger peak.
One extra untimed cold and warm run goes through ``python -c`` calling the same CLI and printing
``getrusage`` for itself and for its children, which splits the peak by process. Each process is
set against its floor, what it needs whatever the repository: the packer's is the same command
on a one-file repository (warm: the interpreter and the imports); the helper's is the helper
counting one short text (the tokenizer). What is above the floor is what grows with the
repository.

Wall time is measured around fork/exec and ``os.wait4``; CPU time (user + sys) and peak RSS
(``ru_maxrss``) come from the rusage ``wait4`` returns for the child (node's worker threads live
in the same process). CPU time is less sensitive to other users' load than wall time. The table
gives the median of N runs with min-max, the ratios wholerepo/repomix, peak RSS over output size,
wholerepo's exact ``prompt_tokens`` (from ``--manifest``, DeepSeek V4) and repomix's reported
"Total Tokens" (o200k, a sum of per-file counts), both from one extra untimed run.

Installing repomix (needs node >= 18 and npm; a scratch directory keeps it out of the project)::

    mkdir -p /tmp/npmpk && cd /tmp/npmpk && npm install repomix@1.18.1
    # binary: /tmp/npmpk/node_modules/.bin/repomix  (the default of --repomix)

The machine is shared: run nothing else heavy meanwhile, look at the load average the script
prints, and repeat a measurement that looks off.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_REPOMIX = "/tmp/npmpk/node_modules/.bin/repomix"
BUDGET = 2_000_000
README = Path(__file__).resolve().parent / "README.md"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Sample:
    seconds: float
    cpu: float  # user + sys seconds of the process (and children it waited for)
    rss_kb: int
    out_bytes: int


@dataclass
class Series:
    tool: str
    cold: list[Sample] = field(default_factory=list)
    warm: list[Sample] = field(default_factory=list)


def run(argv: list[str], cwd: Path, env: dict[str, str], out: Path) -> Sample:
    """Run one process to completion; wall seconds, peak RSS (KiB) and the output's size."""
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()  # -q/--quiet: nearly empty; read it so a chatty tool never blocks
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return Sample(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out.stat().st_size)


# Runs the CLI in-process, then reports peak RSS (MiB) of this process and of its children.
_BY_PROCESS = """
import json, resource, sys
from wholerepo.cli import main
try:
    main(["pack", *sys.argv[1:]], standalone_mode=False)
except SystemExit:
    pass
peak = lambda who: resource.getrusage(who).ru_maxrss / 1024
print(json.dumps([peak(resource.RUSAGE_SELF), peak(resource.RUSAGE_CHILDREN)]), file=sys.stderr)
"""


def by_process(python: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(packer, helper) peak RSS in MiB for one ``wholerepo pack ARGS`` run."""
    done = subprocess.run(
        [str(python), "-c", _BY_PROCESS, *args], env=env, capture_output=True, text=True, check=True
    )
    packer, helper = json.loads(done.stderr.strip().splitlines()[-1])
    return float(packer), float(helper)


def helper_alone(python: Path, env: dict[str, str]) -> float:
    """Peak RSS (MiB) of a process that loads the tokenizer and counts one short text: the floor
    of the counting worker a cold run starts (tokens/counter.py)."""
    code = "from wholerepo.tokens import get_tokenizer; get_tokenizer('deepseek-v4').count('hello')"
    proc = subprocess.Popen([str(python), "-c", code], env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024


def version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return "?"
    return (done.stdout or done.stderr).strip().splitlines()[-1] if (done.stdout or done.stderr) else "?"


def median(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def spread(samples: list[Sample]) -> str:
    values = sorted(s.seconds for s in samples)
    return f"{values[0]:.2f}-{values[-1]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a git checkout to pack (e.g. pytest @ df87db7b0)")
    parser.add_argument("--repomix", default=DEFAULT_REPOMIX, help=f"repomix binary [{DEFAULT_REPOMIX}]")
    parser.add_argument(
        "--wholerepo", type=Path, help="wholerepo console script [the one next to this Python]"
    )
    parser.add_argument("--runs", type=int, default=5, help="cold and warm runs per tool [5]")
    parser.add_argument("--record", action="store_true", help="append the table to bench/README.md")
    parser.add_argument(
        "--wholerepo-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for wholerepo pack, repeatable (e.g. --wholerepo-arg=--max-file-size=4000000)",
    )
    args = parser.parse_args()

    checkout = args.checkout.resolve()
    if not (checkout / ".git").exists():
        sys.exit(f"not a git checkout: {checkout}")
    wholerepo = args.wholerepo or Path(sys.executable).parent / "wholerepo"
    if not wholerepo.exists():
        sys.exit(f"no wholerepo console script at {wholerepo}: pip install . (or pass --wholerepo)")
    repomix = shutil.which(args.repomix) or args.repomix
    if not Path(repomix).exists():
        sys.exit(f"repomix not found at {repomix}: cd /tmp/npmpk && npm install repomix@1.18.1")

    scratch = Path(tempfile.mkdtemp(prefix="wholerepo-bench-"))
    rx_tmp = scratch / "repomix-tmpdir"  # repomix's os.tmpdir(): its cache is rx_tmp/repomix/cache
    rx_tmp.mkdir()
    wr_out, rx_out = scratch / "wholerepo.xml", scratch / "repomix.xml"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("WHOLEREPO_", "REPOMIX_"))}
    rx_env = {**base_env, "TMPDIR": str(rx_tmp), "NO_COLOR": "1"}
    wr_argv = [
        str(wholerepo),
        "pack",
        str(checkout),
        "--budget",
        str(BUDGET),
        "-o",
        str(wr_out),
        "-q",
        *args.wholerepo_arg,
    ]
    rx_argv = [repomix, "--style", "xml", "-o", str(rx_out), "--quiet"]

    def wr_env(cache: Path) -> dict[str, str]:
        env = {k: v for k, v in base_env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        return {**env, "WHOLEREPO_CACHE_DIR": str(cache)}

    def clear_repomix_cache() -> None:
        shutil.rmtree(rx_tmp / "repomix", ignore_errors=True)

    wr, rx = Series("wholerepo"), Series("repomix")
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}", flush=True)
    # Untimed: page cache, .pyc files and node_modules warm for both tools alike.
    run(wr_argv, checkout, wr_env(Path(tempfile.mkdtemp(dir=scratch))), wr_out)
    clear_repomix_cache()
    run(rx_argv, checkout, rx_env, rx_out)

    for i in range(args.runs):
        cache = Path(tempfile.mkdtemp(prefix="wr-cache-", dir=scratch))
        clear_repomix_cache()
        order = [(wr, wr_argv, wr_env(cache), wr_out), (rx, rx_argv, rx_env, rx_out)]
        if i % 2:
            order.reverse()
        for kind in ("cold", "warm"):
            for series, argv, env, out in order:
                sample = run(argv, checkout, env, out)
                getattr(series, kind).append(sample)
                print(
                    f"  run {i + 1} {kind:4} {series.tool:9} {sample.seconds:6.2f} s "
                    f"cpu {sample.cpu:5.2f} s {sample.rss_kb / 1024:6.0f} MiB  load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
        shutil.rmtree(cache, ignore_errors=True)
    load_after = os.getloadavg()

    # Untimed, warm: the token totals each tool reports.
    manifest = scratch / "manifest.json"
    subprocess.run(
        [*wr_argv, "--manifest", str(manifest)], cwd=checkout, env=wr_env(scratch / "tok"), check=True
    )
    prompt_tokens = json.loads(manifest.read_text())["prompt_tokens"]
    manifest_files = json.loads(manifest.read_text())["files"]
    wr_files = sum(1 for f in manifest_files if f["status"] != "skipped")
    wr_skipped = {f["path"]: f["reason"] for f in manifest_files if f["status"] == "skipped"}
    loud = subprocess.run(
        [repomix, "--style", "xml", "-o", str(rx_out)],
        cwd=checkout,
        env=rx_env,
        capture_output=True,
        text=True,
    )
    summary = ANSI.sub("", loud.stdout)
    m_tokens = re.search(r"Total Tokens:\s*([\d,]+)", summary)
    m_files = re.search(r"Total Files:\s*([\d,]+)", summary)
    rx_tokens = int(m_tokens.group(1).replace(",", "")) if m_tokens else None
    rx_files = int(m_files.group(1).replace(",", "")) if m_files else None
    # Memory by process, and the floors (see the module docstring).
    python = wholerepo.parent / "python"
    python = python if python.exists() else Path(sys.executable)
    split = {
        kind: by_process(python, [str(checkout), "--budget", str(BUDGET), "-o", str(wr_out), "-q"], env)
        for kind, env in (("cold", wr_env(scratch / "split")), ("warm", wr_env(scratch / "split")))
    }
    tiny = scratch / "tiny"
    tiny.mkdir()
    (tiny / "README.md").write_text("# tiny\n", encoding="utf-8")
    git = ["git", "-C", str(tiny), "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for step in (["init", "-q"], ["add", "README.md"], ["commit", "-q", "-m", "tiny"]):
        subprocess.run([*git, *step], check=True)
    tiny_argv = [str(tiny), "-o", str(scratch / "tiny.xml"), "-q"]
    floor_env = wr_env(scratch / "floor-cache")
    by_process(python, tiny_argv, floor_env)
    packer_floor = by_process(python, tiny_argv, floor_env)[0]
    helper_floor = helper_alone(python, base_env)

    rows = []
    for s in (wr, rx):
        cold_s, warm_s = median(s.cold, "seconds"), median(s.warm, "seconds")
        cold_rss, warm_rss = median(s.cold, "rss_kb") / 1024, median(s.warm, "rss_kb") / 1024
        out_mb = s.cold[-1].out_bytes / 2**20
        rows.append((s.tool, cold_s, spread(s.cold), warm_s, spread(s.warm), cold_rss, warm_rss, out_mb))
    (_, wc, _, ww, _, wcr, wwr, wout), (_, rc, _, rw, _, _, _, _) = rows
    cpu = {s.tool: (median(s.cold, "cpu"), median(s.warm, "cpu")) for s in (wr, rx)}

    versions = {
        "wholerepo": version([str(wholerepo), "--version"]).rsplit(" ", 1)[-1],
        "tree": version(
            ["git", "-C", str(Path(__file__).resolve().parents[1]), "describe", "--always", "--dirty"]
        ),
        "repomix": version([repomix, "--version"]),
        "python": platform.python_version(),
        "node": version(["node", "--version"]),
        "checkout": version(["git", "-C", str(checkout), "log", "-1", "--format=%h %s"]),
    }
    today = dt.date.today().isoformat()
    lines = [
        f"### {checkout.name} @ {versions['checkout'].split()[0]}, {today}, {args.runs} runs each",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}, {platform.system()} {platform.release()}), "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after. "
        f"wholerepo {versions['wholerepo']} (tree {versions['tree']}), repomix {versions['repomix']}, "
        f"Python {versions['python']}, node {versions['node']}.",
        "",
        "| tool | cold s (median, min-max) | warm s (median, min-max) | CPU s cold / warm "
        "| peak RSS cold / warm MiB | output MiB | peak RSS / output (cold, warm) | files | total tokens |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    tokens = {
        "wholerepo": f"{prompt_tokens:,} (DeepSeek V4, exact)",
        "repomix": f"{rx_tokens:,} (o200k, sum of parts)" if rx_tokens else "?",
    }
    files = {"wholerepo": wr_files, "repomix": rx_files}
    for tool, cs, csp, ws, wsp, cr, wrss, out_mb in rows:
        lines.append(
            f"| {tool} | {cs:.2f} ({csp}) | {ws:.2f} ({wsp}) | {cpu[tool][0]:.2f} / {cpu[tool][1]:.2f} "
            f"| {cr:.0f} / {wrss:.0f} | {out_mb:.2f} "
            f"| {cr / out_mb:.1f}x, {wrss / out_mb:.1f}x | {files[tool]} | {tokens[tool]} |"
        )
    ok = {True: "met", False: "MISSED"}
    (cold_self, cold_helper), (warm_self, _) = split["cold"], split["warm"]
    lines += [
        "",
        f"- cold: wholerepo/repomix = **{wc / rc:.2f}x** (target <= 0.5x: {ok[wc / rc <= 0.5]})",
        f"- warm: wholerepo/repomix = **{ww / rw:.2f}x** (target <= 0.25x: {ok[ww / rw <= 0.25]})",
        f"- CPU time (user+sys, less sensitive to other load than wall time): wholerepo/repomix cold "
        f"{cpu['wholerepo'][0] / cpu['repomix'][0]:.2f}x, "
        f"warm {cpu['wholerepo'][1] / cpu['repomix'][1]:.2f}x",
        f"- wholerepo peak RSS / output size: cold **{wcr / wout:.1f}x**, warm **{wwr / wout:.1f}x** "
        f"(target <= 3x: cold {ok[wcr / wout <= 3]}, warm {ok[wwr / wout <= 3]})",
        f"- by process: cold, the packer peaks at {cold_self:.0f} MiB and its helper at "
        f"{cold_helper:.0f} MiB; warm, the packer at {warm_self:.0f} MiB. Floors: the packer on a "
        f"one-file repository {packer_floor:.0f} MiB (interpreter and imports), the helper counting "
        f"one line {helper_floor:.0f} MiB (the tokenizer). Above them, what grows with this "
        f"repository: packer cold **{(cold_self - packer_floor) / wout:.1f}x**, warm "
        f"**{(warm_self - packer_floor) / wout:.1f}x**, helper "
        f"**{max(0.0, cold_helper - helper_floor) / wout:.1f}x** the output size",
    ]
    if wr_skipped:
        reasons: dict[str, int] = {}
        for reason in wr_skipped.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        counts = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        shown = ", ".join(f"{p} ({r})" for p, r in sorted(wr_skipped.items()) if r != "binary")
        lines.append(
            f"- wholerepo skipped {len(wr_skipped)} listed files ({counts})" + (f": {shown}" if shown else "")
        )
    if args.wholerepo_arg:
        lines.append(f"- wholerepo extra arguments: {' '.join(args.wholerepo_arg)}")
    table = "\n".join(lines) + "\n"
    print()
    print(table)
    if args.record:
        with README.open("a", encoding="utf-8") as fh:
            fh.write("\n" + table)
        print(f"appended to {README}")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
