#!/usr/bin/env python3
"""Time ``wholerepo audit`` planning on large repositories, and a whole audit against a loopback
endpoint that answers at once.

Usage::

    python bench/bench_audit.py CHECKOUT [CHECKOUT...] [--budgets 1048576,131072] [--runs N]
                                [--loopback] [--concurrency N] [--wholerepo BIN]

For each checkout, with a fresh ``WHOLEREPO_CACHE_DIR``: for each budget, one
``wholerepo audit CHECKOUT --dry-run --format json`` (the first budget's is cold: nothing cached;
a later budget's reuses the packer's and fit/'s cache but cuts afresh) and N warm ones. Wall time
around fork/exec and ``os.wait4``; CPU time (user + sys) and peak RSS from its rusage. From the
dry run's JSON: shards, exact prompt tokens per shard, fill per shard (map included), the map and
the shared prefix, and the estimated cost at DeepSeek's prices with and without prefix-cache hits.

``--loopback`` then audits the checkout (warm) against tests/fake_openai.py serving an empty
findings reply at once to every request, over ``--concurrency`` connections: the whole audit's
wall and CPU time is then the overhead outside the endpoint (planning, requests, verification,
merge, reports).

The machine is shared: the load average is printed with every table; CPU time is the steadier figure.
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

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], env: dict[str, str], out: Path | None = None) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MiB, exit code) of one process and its children."""
    start = time.perf_counter()
    with open(out or os.devnull, "wb") as stdout:
        proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed ({code}): {err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code


def figures(report: dict) -> dict:
    fills = [s["fill"] for s in report["shards"]]
    tokens = [s["prompt_tokens"] for s in report["shards"]]
    cost = report["estimated_cost_usd"] or {}
    full = sorted(fills)[:-1] if len(fills) > 1 else fills  # every shard but the emptiest
    return {
        "shards": len(fills),
        "files": report["files_in_shards"],
        "prompt_tokens": sum(tokens),
        "fill_min_but_last": min(full) if full else 0.0,
        "fill_median": statistics.median(fills) if fills else 0.0,
        "under_90": sum(1 for f in fills if f < 0.9),
        "map": report["map_tokens"],
        "map_share": report["map_tokens"] / report["budget"],
        "prefix": report["shared_prefix_tokens"],
        "prefix_share": report["shared_prefix_tokens"] / (sum(tokens) / len(tokens)) if tokens else 0.0,
        "not_sent": report["not_sent"],
        "cost_without": cost.get("input_without_cache"),
        "cost_with": cost.get("input_with_cache"),
        "output_max": cost.get("output_max"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--budgets", default="1048576,131072")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--loopback", action="store_true")
    parser.add_argument("--loopback-budget", type=int, default=1_048_576)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--wholerepo", default=shutil.which("wholerepo") or "wholerepo")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    for checkout in args.checkouts:
        cache = Path(tempfile.mkdtemp(prefix="bench-audit-cache-"))
        env = {**os.environ, "WHOLEREPO_CACHE_DIR": str(cache)}
        env.pop("CI", None)
        try:
            for budget in budgets:
                cmd = [
                    args.wholerepo, "audit", str(checkout), "--dry-run", "--format", "json", "-q",
                    "--budget", str(budget), "--context-window", str(max(budget + 40_000, 1_048_576)),
                    "--model", "deepseek-flash", "--base-url", "https://api.deepseek.com",
                ]  # fmt: skip
                out = cache / "dry.json"
                first = run(cmd, env, out)
                report = json.loads(out.read_text())
                warm = [run(cmd, env, out) for _ in range(args.runs)]
                f = figures(report)
                label = "cold" if budget == budgets[0] else "warm pack, cut afresh"
                print(f"\n## {checkout.name} at a budget of {budget:,} (load {os.getloadavg()[0]:.1f})")
                print(f"first ({label}): {first[0]:.2f} s wall, {first[1]:.2f} s CPU, {first[2]:.0f} MiB")
                walls = sorted(w[0] for w in warm)
                cpus = sorted(w[1] for w in warm)
                print(
                    f"warm (median of {len(warm)}, {walls[0]:.2f}-{walls[-1]:.2f}):"
                    f" {statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU"
                    f" ({cpus[0]:.2f}-{cpus[-1]:.2f}),"
                    f" {max(w[2] for w in warm):.0f} MiB"
                )
                print(json.dumps(f, indent=1))
            if args.loopback:
                loopback(checkout, args, env)
        finally:
            shutil.rmtree(cache, ignore_errors=True)


def loopback(checkout: Path, args: argparse.Namespace, env: dict[str, str]) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_openai import Chat, FakeOpenAI, usage

    reply = json.dumps({"summary": "nothing to report", "findings": []})
    with FakeOpenAI(respond=lambda request: Chat(reply, usage=usage(), keepalives=0, piece=4096)) as fake:
        out = Path(tempfile.mkdtemp(prefix="bench-audit-out-"))
        window = str(max(args.loopback_budget + 40_000, 1_048_576))
        cmd = [
            args.wholerepo, "audit", str(checkout), "--base-url", fake.url, "--model", "deepseek-flash",
            "--budget", str(args.loopback_budget), "--context-window", window,
            "--concurrency", str(args.concurrency), "--output-dir", str(out), "--format", "sarif",
            "--format", "json", "-q",
        ]  # fmt: skip
        e = {**env, "OPENAI_API_KEY": "sk-loopback"}
        for label in ("first (plan cached by the dry runs)", "warm"):
            before = len(fake.chats)
            wall, cpu, rss, _code = run(cmd, e)
            print(
                f"\nloopback audit of {checkout.name} at {args.loopback_budget:,}, {label}:"
                f" {wall:.2f} s wall, {cpu:.2f} s CPU, {rss:.0f} MiB, {len(fake.chats) - before} requests"
                f" (load {os.getloadavg()[0]:.1f})"
            )
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
