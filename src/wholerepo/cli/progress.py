"""Progress on stderr: a rich bar with elapsed time on a terminal, plain event lines elsewhere.

The core calls ``update(stage, done, total)`` as it goes and ``event(message)`` for things a
user should hear about while waiting (a retry, a fallback, the model starting to answer). On a
terminal the bar shows them above itself; in a pipe or CI log each event is one line and there
is no bar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

_LABELS = {
    "discover": "listing files",
    "read": "reading",
    "count": "counting tokens",
    "send": "waiting for the model",
    "receive": "receiving",
    "shards": "shards reviewed",
}


class Reporter:
    """What the CLI hands the core as ``on_progress`` and ``on_event``."""

    def __init__(self, *, quiet: bool, terminal: bool, check: Callable[[], None] = lambda: None) -> None:
        self._quiet = quiet
        self._check = check  # raises KeyboardInterrupt if a Ctrl-C was swallowed meanwhile
        self._bar: _Bar | None = _Bar() if terminal and not quiet else None
        self._started = time.monotonic()

    def update(self, stage: str, done: int, total: int) -> None:
        self._check()
        if self._bar is not None:
            self._bar.update(stage, done, total)

    def event(self, message: str) -> None:
        if self._quiet:
            return
        from ..sanitize import strip_control

        # Events carry an endpoint's words (a model id, an error): no escape sequence gets through.
        line = f"wholerepo: {strip_control(message)}"
        if self._bar is not None:
            self._bar.print(line)
            return
        try:
            print(line, file=sys.stderr, flush=True)
        except (OSError, ValueError):  # stderr gone: the exit code still says how it ended
            pass

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class _Bar:
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._tasks: dict[str, object] = {}
        self._progress.start()

    def update(self, stage: str, done: int, total: int) -> None:
        task = self._tasks.get(stage)
        if task is None:
            task = self._progress.add_task(_LABELS.get(stage, stage), total=total)
            self._tasks[stage] = task
        self._progress.update(task, completed=done, total=total)  # type: ignore[arg-type]

    def print(self, line: str) -> None:
        self._progress.console.print(line, markup=False, highlight=False)

    def stop(self) -> None:
        self._progress.stop()
