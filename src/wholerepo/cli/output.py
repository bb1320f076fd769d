"""Writing results: atomically to files, or as UTF-8 to standard output.

Everything written passes through ``scrub``: text that must never be written (the API key,
registered by the review before it calls the endpoint) is masked wherever it turns up, say in a
reply that echoes it.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import OutputError

_SECRETS: list[str] = []


def register_secret(value: str | None) -> None:
    """Never write ``value`` (or 8+ characters of it) in any output from now on."""
    if value and value not in _SECRETS:
        _SECRETS.append(value)


def forget_secrets() -> None:
    _SECRETS.clear()


def scrub(text: str) -> str:
    if not _SECRETS:
        return text
    from ..llm.policy import scrub_key

    for secret in _SECRETS:
        text = scrub_key(text, secret)
    return text


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ensure_parent(path: Path) -> None:
    """Create ``path``'s directory now, so that nothing paid for is lost for want of it later."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: cannot create {directory}: {exc.strerror or exc}") from exc
    if not directory.is_dir():
        raise OutputError(f"cannot write {path}: {directory} is not a directory")


def write_atomic(path: str | Path, text: str | Iterable[str], *, private: bool = False) -> None:
    """Write ``text`` to ``path`` so that readers see either the old file or the whole new one.

    The file gets the user's usual permissions (the umask), or 0600 when ``private`` (it holds
    unredacted text). A target that exists and is not a regular file (a device, a FIFO,
    /dev/stdout) is written in place: renaming over it would replace the device node.
    """
    target = Path(path)
    try:
        info = os.stat(target)
    except OSError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        if stat.S_ISDIR(info.st_mode):
            raise OutputError(f"cannot write {target}: it is a directory")
        _write_in_place(target, text)
        return
    ensure_parent(target)
    directory = target.parent if str(target.parent) else Path(".")
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as fh:
            for chunk in _chunks(text):
                fh.write(chunk)
            os.fchmod(fh.fileno(), 0o600 if private else 0o666 & ~_umask())
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


def _write_in_place(target: Path, text: str | Iterable[str]) -> None:
    try:
        # O_NONBLOCK: a FIFO without a reader fails at once instead of hanging.
        fd = os.open(target, os.O_WRONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as fh:
            for chunk in _chunks(text):
                fh.write(chunk)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc


def _chunks(text: str | Iterable[str], size: int = 1 << 20) -> Iterator[bytes]:
    """UTF-8 bytes of ``text`` (or of its parts) a slice at a time: a pack is never copied whole."""
    for part in [text] if isinstance(text, str) else text:
        if _SECRETS:
            part = scrub(part)
        for start in range(0, len(part), size):
            yield part[start : start + size].encode("utf-8", "replace")


def require_stdout() -> None:
    """Stop before any work when standard output, where the result would go, is closed (``>&-``)."""
    if sys.stdout is None:
        raise OutputError("cannot write to standard output: it is closed", "give -o FILE, or open stdout")


def write_stdout(text: str | Iterable[str]) -> None:
    require_stdout()
    try:
        sys.stdout.flush()
        for chunk in _chunks(text):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `wholerepo pack | head`: the reader left, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except AttributeError:  # a text-only stream (some test runners)
        try:
            sys.stdout.write(scrub(text if isinstance(text, str) else "".join(text)))
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot write to standard output: {exc}") from exc
    except (OSError, ValueError) as exc:  # stdout closed or gone: nowhere to write
        raise OutputError(
            f"cannot write to standard output: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
