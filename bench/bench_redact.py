"""Time secret redaction alone: ``Redactor().redact`` over a checkout's text files, and over
1 MiB lines of adversarial text (the shapes that made the old rules quadratic).

    python bench/bench_redact.py CHECKOUT [--ext .py,.md,...] [--runs N]

CPU time (``time.process_time``) of the best run: on a shared machine it moves far less than
wall time. Imports and the first use of each rule (its regex compiled) are not counted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from wholerepo.redact import Redactor

MIB = 1 << 20
ADVERSARIAL = (
    "keyA",
    "password=",
    "aB3+/9xZ",
    "://@",
    "a://b:c@",
    "eyJ",
    "-----BEGIN PRIVATE KEY-----",
    "api_key='x",
    "<password>",
    "Authorization: Basic ",
)


def files(root: Path, exts: tuple[str, ...]) -> list[tuple[str, str]]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in exts and ".git" not in path.parts:
            try:
                found.append((path.relative_to(root).as_posix(), path.read_text("utf-8")))
            except (UnicodeDecodeError, OSError):
                continue
    return found


def best(runs: int, work: list[tuple[str, str]], redactor: Redactor) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(runs):
        start = time.process_time()
        found = sum(len(redactor.redact(path, text)[1]) for path, text in work)
        times.append(time.process_time() - start)
    return min(times), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--ext", default=".py", help="comma-separated file endings (default .py)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    redactor = Redactor()
    work = files(args.checkout, tuple(args.ext.split(",")))
    best(1, work, redactor)  # compile the rules the files need
    seconds, found = best(args.runs, work, redactor)
    size = sum(len(text) for _, text in work) / 1e6
    print(f"{len(work)} files, {size:.2f} MB: {seconds:.3f} s CPU, {found} secrets")
    for unit in ADVERSARIAL:
        line = (unit * (MIB // len(unit) + 1))[:MIB]
        seconds, _ = best(1, [("app/module.py", line)], redactor)
        print(f"1 MiB of {unit!r}: {seconds:.3f} s CPU")


if __name__ == "__main__":
    main()
