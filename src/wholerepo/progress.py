"""A rich progress bar on stderr, fed by the core's ``on_progress(stage, done, total)`` calls."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

_LABELS = {
    "discover": "listing files",
    "read": "reading",
    "count": "counting tokens",
    "send": "waiting for the model",
    "receive": "receiving",
}


class TerminalProgress:
    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._progress.start()

    def update(self, stage: str, done: int, total: int) -> None:
        task = self._tasks.get(stage)
        if task is None:
            task = self._progress.add_task(_LABELS.get(stage, stage), total=total)
            self._tasks[stage] = task
        self._progress.update(task, completed=done, total=total)

    def stop(self) -> None:
        self._progress.stop()
