"""The one way to count: exact token counts of texts as sent, through a cache, off the caller's thread.

``count_many`` answers at once for what the cache knows and blocks for the rest; ``submit``
starts counting and returns a ``Batch`` whose ``result()`` waits, so a packer can go on reading
and rendering meanwhile. Counting runs on threads (tiktoken releases the GIL while it encodes),
or, for a large cold run on a machine with more than one CPU, in one worker process that builds
the tokenizer on another core while this one works (``ProcessPoolExecutor``). Either way the
counts are the same tokenizer's; a worker process that dies is replaced by counting here.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

from . import (
    Tokenizer,
    break_framing,
    control_tokens,
    defang,
    get_tokenizer,
    is_loaded,
    may_hold_control_token,
)

# A cold run with at least this many bytes to count counts in a worker process: its start-up
# and the tokenizer's build (~0.3 s) then hide behind the caller's own work on another core.
PROCESS_MIN_BYTES = 1_000_000


class CountStore(Protocol):
    """Where counts are remembered between runs (the packer's SQLite cache)."""

    def get_many(self, keys: Sequence[str]) -> dict[str, int]: ...

    def put_many(self, items: dict[str, int]) -> None: ...


def text_key(tokenizer: str, text: str) -> str:
    """The cache key of ``text``'s count under ``tokenizer``."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()
    return f"{tokenizer}:{digest}"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


Work = tuple["Future[int] | Future[list[int]]", list[str], list[str]]  # a future, its texts and keys


class Batch:
    """Counts on their way: ``result()`` waits for them, in the order submitted."""

    def __init__(
        self, counter: TokenCounter, keys: list[str], known: dict[str, int], work: list[Work]
    ) -> None:
        self._counter = counter
        self._keys = keys
        self._known = known
        self._work = work
        self._counts: list[int] | None = None

    @property
    def keys(self) -> list[str]:
        """The cache key of each text's count, in order."""
        return self._keys

    def result(self) -> list[int]:
        if self._counts is None:
            fresh: dict[str, int] = {}
            for future, texts, keys in self._work:
                try:
                    value = future.result()
                except BrokenExecutor:  # the worker process died: the same counts here
                    value = [self._counter.tokenizer.count_sent(t) for t in texts]
                values = value if isinstance(value, list) else [value]
                fresh.update(zip(keys, values, strict=True))
            self._counter._remember(fresh)
            self._known.update(fresh)
            self._counts = [self._known[k] for k in self._keys]
        return self._counts


# -- the worker process's side --------------------------------------------------------------------

_WORKER_TOKENIZER: Tokenizer | None = None


def _worker_start(name: str) -> None:
    global _WORKER_TOKENIZER
    # Ctrl-C reaches the whole process group: the caller handles it and stops this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_TOKENIZER = get_tokenizer(name)


def _worker_count(texts: list[str]) -> list[int]:
    assert _WORKER_TOKENIZER is not None
    return [_WORKER_TOKENIZER.count_sent(t) for t in texts]


# -- the caller's side ----------------------------------------------------------------------------


class TokenCounter:
    """Exact counts with one tokenizer (``name``), remembered in ``store``."""

    def __init__(
        self,
        name: str,
        *,
        store: CountStore | None = None,
        tokenizer: Tokenizer | None = None,
        process: bool = False,
    ) -> None:
        self.name = name
        self._store = store
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self._threads: ThreadPoolExecutor | None = None
        self._process: ProcessPoolExecutor | None = None
        self._pending: dict[str, int] = {}  # fresh counts not yet stored
        if process and tokenizer is None:
            self._process = _start_process(name)

    @classmethod
    def for_run(
        cls,
        name: str,
        *,
        store: CountStore | None,
        cold: bool,
        text_bytes: int,
        tokenizer: Tokenizer | None = None,
    ) -> TokenCounter:
        """A counter for one pack: a worker process only when it pays (a large cold run, with
        another CPU to run it on, and the tokenizer not loaded here already)."""
        process = (
            tokenizer is None
            and cold
            and text_bytes >= PROCESS_MIN_BYTES
            and available_cpus() > 1
            and not is_loaded(name)
        )
        return cls(name, store=store, tokenizer=tokenizer, process=process)

    @property
    def uses_process(self) -> bool:
        return self._process is not None

    @property
    def tokenizer(self) -> Tokenizer:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = get_tokenizer(self.name)
            return self._tokenizer

    def defang(self, text: str) -> str:
        """Make repository text safe to embed: the request's framing markers and control-token
        strings broken (needs the tokenizer's control tokens, not its vocabulary)."""
        text = break_framing(text)
        if not may_hold_control_token(text):
            return text
        special = self._tokenizer.special if self._tokenizer is not None else control_tokens(self.name)
        return defang(text, special)

    def count(self, text: str) -> int:
        """The exact count of ``text`` as it is (already defanged)."""
        return self.count_many([text])[0]

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return self.submit(texts).result()

    def submit(self, texts: Sequence[str]) -> Batch:
        """Start counting ``texts``; what the store knows is answered at once."""
        keys = [text_key(self.name, t) for t in texts]
        known = self._store.get_many(keys) if self._store is not None else {}
        with self._lock:
            known.update((k, self._pending[k]) for k in keys if k in self._pending and k not in known)
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in known}
        return Batch(self, keys, known, self._start(missing) if missing else [])

    def _remember(self, fresh: dict[str, int]) -> None:
        with self._lock:
            self._pending.update(fresh)

    def _start(self, missing: dict[str, str]) -> list[Work]:
        texts, keys = list(missing.values()), list(missing)
        if self._process is not None:
            try:
                return [(self._process.submit(_worker_count, texts), texts, keys)]
            except (RuntimeError, BrokenExecutor):  # the worker process broke: count here instead
                self._stop_process()
        count = self.tokenizer.count_sent  # loaded on this thread, before a counting thread starts
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                max_workers=available_cpus(), thread_name_prefix="wholerepo-count"
            )
        return [(self._threads.submit(count, t), [t], [k]) for k, t in zip(keys, texts, strict=True)]

    def flush(self) -> None:
        """Store the counts made so far."""
        with self._lock:
            fresh, self._pending = self._pending, {}
        if fresh and self._store is not None:
            self._store.put_many(fresh)

    def _stop_process(self) -> None:
        if self._process is not None:
            self._process.shutdown(wait=False, cancel_futures=True)
            self._process = None

    def close(self) -> None:
        self.flush()
        self._stop_process()
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None


def _start_process(name: str) -> ProcessPoolExecutor | None:
    """One worker process that builds the tokenizer at once; None where processes cannot start."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork is the cheapest start (no re-import) and safe while this process has one thread;
    # otherwise spawn, which imports only what counting needs (the package's __init__ is lazy).
    method = "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"
    try:
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context(method),
            initializer=_worker_start,
            initargs=(name,),
        )
        pool.submit(int)  # start the worker now, not at the first text
    except (OSError, RuntimeError, ValueError):
        return None
    return pool
