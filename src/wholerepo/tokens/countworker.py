"""Count tokens in a helper process, so that loading the tokenizer overlaps the packer's work.

A cold pack spends about 0.25 s building the V4 tokenizer, holding the GIL all along, and then
about a core-second encoding. In the packer's process that build stalls reading, redacting and
rendering; in a helper started as the pack begins, it runs on the other core meanwhile, and
the helper's own threads encode what the packer sends.

The helper imports only what counting needs (this module, tokens.py, vocab.py, tiktoken).
Protocol on its stdin and stdout, binary: the packer writes one frame per text,
``<u32 length><utf-8 bytes>``; a frame of length FLUSH asks for the answers so far, END ends
the session. The helper answers each text with ``<u32 count>``, in order. If it cannot count
(the tokenizer cannot be loaded, say) it answers ``<u32 FAILED><u32 length><utf-8 message>``
and exits 1. Run as ``python -m wholerepo.countworker TOKENIZER``.
"""

from __future__ import annotations

import os
import queue
import signal
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

END, FLUSH, FAILED = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD
_U32 = struct.Struct("<I")


class WorkerFailed(Exception):
    """The helper could not count; ``message`` is its one-line reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CountWorker:
    """The packer's side: start the helper, send texts, collect their counts in order."""

    def __init__(self, tokenizer: str) -> None:
        self.tokenizer = tokenizer
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "wholerepo.tokens.countworker", tokenizer],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._unanswered = 0

    def send(self, text: str) -> None:
        """Queue ``text`` for counting (raises WorkerFailed if the helper is gone)."""
        data = text.encode("utf-8", "surrogatepass")
        self._write(_U32.pack(len(data)) + data)
        self._unanswered += 1

    def answers(self) -> list[int]:
        """The counts of every text sent since the last call, in order (raises WorkerFailed)."""
        self._write(_U32.pack(FLUSH))
        stdout = self._proc.stdout
        assert stdout is not None
        counts: list[int] = []
        while len(counts) < self._unanswered:
            value = _read_u32(stdout)
            if value == FAILED:
                raise WorkerFailed(_read_exact(stdout, _read_u32(stdout)).decode("utf-8", "replace"))
            counts.append(value)
        self._unanswered = 0
        return counts

    def close(self) -> None:
        """End the helper and reap it (at once: nothing it still holds is wanted)."""
        if self._proc.poll() is None:
            self._proc.kill()  # also spares it tearing down the vocabulary (~50 ms)
        self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def _write(self, frame: bytes) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(frame)
            stdin.flush()  # the helper starts on a text as soon as it is rendered
        except (OSError, ValueError) as exc:
            raise WorkerFailed(f"the token-counting helper stopped ({exc})") from exc


_prestarted: CountWorker | None = None


def prestart(tokenizer: str) -> None:
    """Start a helper for a pack about to begin cold (the CLI calls this before its heavy imports)."""
    global _prestarted
    if _prestarted is None:
        try:
            _prestarted = CountWorker(tokenizer)
        except OSError:  # no interpreter to start: the packer counts in-process
            pass


def take_prestarted(tokenizer: str) -> CountWorker | None:
    """The helper prestart() started, if it counts with ``tokenizer``; any other is stopped."""
    global _prestarted
    worker, _prestarted = _prestarted, None
    if worker is not None and worker.tokenizer != tokenizer:
        worker.close()
        return None
    return worker


def stop_prestarted() -> None:
    """Stop and reap a helper that no pack took (the command failed or was interrupted first)."""
    global _prestarted
    worker, _prestarted = _prestarted, None
    if worker is not None:
        worker.close()


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise WorkerFailed("the token-counting helper stopped before it answered")
    return data


def _read_u32(stream: IO[bytes]) -> int:
    value: int = _U32.unpack(_read_exact(stream, 4))[0]
    return value


def _serve(name: str, stdin: IO[bytes], stdout: IO[bytes]) -> int:
    # Take in whatever the packer sends at once, while the tokenizer loads: the packer must
    # never block on a full pipe.
    inbox: queue.Queue[str | int] = queue.Queue()

    def read() -> None:
        try:
            while (length := _read_u32(stdin)) != END:
                inbox.put(
                    FLUSH if length == FLUSH else _read_exact(stdin, length).decode("utf-8", "surrogatepass")
                )
        except WorkerFailed:
            pass  # the packer went away
        inbox.put(END)

    threading.Thread(target=read, daemon=True).start()
    from ..errors import WholerepoError
    from . import get_tokenizer

    try:
        count = get_tokenizer(name).count_sent
    except WholerepoError as exc:
        message = exc.one_line().encode("utf-8")
        stdout.write(_U32.pack(FAILED) + _U32.pack(len(message)) + message)
        stdout.flush()
        return 1
    outbox: queue.Queue[Future[int] | int] = queue.Queue()

    def answer() -> None:
        while (item := outbox.get()) != END:
            if isinstance(item, int):
                stdout.flush()
            else:
                stdout.write(_U32.pack(item.result()))

    writer = threading.Thread(target=answer, daemon=True)
    writer.start()
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        while (item := inbox.get()) != END:
            outbox.put(item if isinstance(item, int) else pool.submit(count, item))
        outbox.put(END)
        writer.join()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m wholerepo.countworker TOKENIZER", file=sys.stderr)
        return 2
    # Ctrl-C reaches the whole process group: the packer handles it, the helper just ends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        return _serve(argv[0], sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:  # the packer went away
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
