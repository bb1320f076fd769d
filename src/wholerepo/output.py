"""Writing results: atomically to files, or as UTF-8 to standard output."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OutputError


def write_atomic(path: str | Path, text: str | Iterable[str]) -> None:
    """Write ``text`` to ``path`` so that readers see either the old file or the whole new one."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as fh:
            for chunk in _chunks(text):
                fh.write(chunk)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(f"cannot write {target}: {reason}") from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _chunks(text: str | Iterable[str], size: int = 1 << 20) -> Iterator[bytes]:
    """UTF-8 bytes of ``text`` (or of its parts) a slice at a time: a pack is never copied whole."""
    for part in [text] if isinstance(text, str) else text:
        for start in range(0, len(part), size):
            yield part[start : start + size].encode("utf-8", "replace")


def write_stdout(text: str | Iterable[str]) -> None:
    try:
        sys.stdout.flush()
        for chunk in _chunks(text):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `wholerepo pack | head`: the reader left, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except AttributeError:  # a text-only stream (some test runners)
        sys.stdout.write(text if isinstance(text, str) else "".join(text))
