#!/usr/bin/env python3
"""Time ``wholerepo pack`` on repositories larger than the budget (fit/: rank, compress, choose).

Usage::

    python bench/bench_fit.py CHECKOUT [CHECKOUT...] [--budget N] [--runs N] [--wholerepo BIN]

For each checkout: one cold run (``WHOLEREPO_CACHE_DIR`` a fresh empty directory) and N warm runs
(the cache the cold run filled), each ``wholerepo pack CHECKOUT -o OUT --manifest M -q`` with the
default budget (1,048,576) unless ``--budget``. Wall time around fork/exec and ``os.wait4``; CPU
time (user + sys) and peak RSS from the rusage ``wait4`` returns (the larger of the packer and its
token-counting helper, on a cold run). From the manifest: exact prompt tokens and the share of the
budget used, and how many files went in whole, compressed, or were left out (over-budget).

``--edit PATH`` (a file of the checkout, for generated trees only: the checkout is modified and
then restored with ``git checkout``) adds one more run after appending a comment line to PATH:
a warm run after a one-file edit, which parses that file again and ranks afresh.

The machine is shared: the load average is printed with every table, and CPU time is the figure
least disturbed by other users' work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one process and its children."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed: {err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def fates(manifest: Path) -> dict[str, float]:
    doc = json.loads(manifest.read_text())
    counts = {"whole": 0, "compressed": 0, "left out": 0}
    for f in doc["files"]:
        if f["status"] == "included":
            counts["whole"] += 1
        elif f["status"] == "compressed":
            counts["compressed"] += 1
        elif f["reason"] == "over-budget":
            counts["left out"] += 1
    return {**counts, "tokens": doc["prompt_tokens"], "used": doc["prompt_tokens"] / doc["budget"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wholerepo", default=str(Path(sys.executable).with_name("wholerepo")))
    parser.add_argument("--edit", default=None, metavar="PATH", help="also time a run after editing PATH")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-fit-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEREPO_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}, {os.cpu_count()} CPUs")
    print(
        "| checkout | run | wall s | CPU s | peak RSS MiB | prompt tokens | budget used"
        " | whole | compressed | left out |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        for checkout in args.checkouts:
            out, manifest = scratch / "out.xml", scratch / "manifest.json"
            cmd = [args.wholerepo, "pack", str(checkout), "-o", str(out), "--manifest", str(manifest), "-q"]
            if args.budget:
                cmd += ["--budget", str(args.budget)]
            cache = scratch / f"cache-{checkout.name}"
            env["WHOLEREPO_CACHE_DIR"] = str(cache)
            shutil.rmtree(cache, ignore_errors=True)
            samples = [("cold", run(cmd, env))]
            samples += [("warm", run(cmd, env)) for _ in range(args.runs)]
            f = fates(manifest)
            shown = [(*samples[0], f), ("warm (median)", _median(samples[1:]), f)]
            if args.edit:
                edited = checkout / args.edit
                edited.write_text(edited.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
                try:
                    shown.append(("after a one-file edit", run(cmd, env), fates(manifest)))
                finally:
                    subprocess.run(
                        ["git", "-C", str(checkout), "checkout", "-q", "--", args.edit], check=True
                    )
            for label, (wall, cpu, rss), f in shown:
                print(
                    f"| {checkout.name} | {label} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {f['tokens']:,.0f} |"
                    f" {100 * f['used']:.2f} % | {f['whole']:,.0f} | {f['compressed']:,.0f}"
                    f" | {f['left out']:,.0f} |"
                )
            warm = [s[1][0] for s in samples[1:]]
            print(f"<!-- {checkout.name} warm wall min-max {min(warm):.2f}-{max(warm):.2f} s -->")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _median(samples: list[tuple[str, tuple[float, float, float]]]) -> tuple[float, float, float]:
    values = [s[1] for s in samples]
    return tuple(statistics.median(v[i] for v in values) for i in range(3))  # type: ignore[return-value]


if __name__ == "__main__":
    main()
