"""TokenCounter: the one way to count. Same counts on threads and in a worker process, in order,
through the store, and a worker process that dies never costs a count."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import wholerepo
from conftest import MakeRepo
from wholerepo.errors import TokenizerError
from wholerepo.tokens import DEEPSEEK_V4, get_tokenizer
from wholerepo.tokens.counter import TokenCounter, text_key

TEXTS = [
    "def f(x):\n    return x + 1\n",
    "",
    "数据库连接失败：请检查配置。👨‍👩‍👧‍👦\n",
    '<file path="a&amp;b.py">\n1|x = "&lt;think&gt;"\n</file>\n',
    "x" * 100_000,
    "def f(x):\n    return x + 1\n",  # a repeat
]


class Store:
    """A count store in memory that remembers what it was asked."""

    def __init__(self, known: dict[str, int] | None = None) -> None:
        self.known = dict(known or {})
        self.asked: list[str] = []

    def get_many(self, keys: Sequence[str]) -> dict[str, int]:
        self.asked.extend(keys)
        return {k: self.known[k] for k in keys if k in self.known}

    def put_many(self, items: dict[str, int]) -> None:
        self.known.update(items)


def expected(texts: list[str]) -> list[int]:
    v4 = get_tokenizer(DEEPSEEK_V4)
    return [v4.count_sent(t) for t in texts]


@pytest.mark.parametrize("process", [False, True])
def test_counts_are_the_tokenizers_in_order(process: bool) -> None:
    counter = TokenCounter(DEEPSEEK_V4, process=process)
    try:
        assert counter.uses_process is process
        batch = counter.submit(TEXTS)
        assert counter.count("one more line\n") == expected(["one more line\n"])[0]
        assert batch.result() == expected(TEXTS)
    finally:
        counter.close()


def test_store_answers_first_and_learns_the_rest() -> None:
    lied = text_key(DEEPSEEK_V4, TEXTS[0])
    store = Store({lied: 12345})  # a stored count is trusted as stored
    counter = TokenCounter(DEEPSEEK_V4, store=store)
    counts = counter.count_many(TEXTS[:3])
    assert counts[0] == 12345 and counts[1:] == expected(TEXTS[1:3])
    assert text_key(DEEPSEEK_V4, TEXTS[2]) not in store.known  # not stored until flushed
    counter.close()
    assert store.known[text_key(DEEPSEEK_V4, TEXTS[2])] == counts[2]


def test_a_worker_process_that_dies_costs_no_count() -> None:
    counter = TokenCounter(DEEPSEEK_V4, process=True)
    try:
        assert counter.count("warm up\n") > 0
        children = _children()
        assert children, "the worker process should be running"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        assert counter.count_many(TEXTS) == expected(TEXTS)
    finally:
        counter.close()


def test_a_tokenizer_that_cannot_load_is_its_own_error_in_either_mode() -> None:
    for process in (False, True):
        counter = TokenCounter("no-such-tokenizer", process=process)
        with pytest.raises(TokenizerError, match="unknown tokenizer"):
            counter.count("text")
        counter.close()


def test_cold_and_warm_packs_count_alike(make_repo: MakeRepo, isolated_env: Path) -> None:
    # Over 1 MB: a cold pack counts in a worker process (when this machine has two CPUs).
    files = {f"m{i}.py": f"def f{i}(x):\n    return x * {i}  # 数据 {'y' * 60}\n" * 400 for i in range(40)}
    root = make_repo(files)
    cold = wholerepo.pack(root, keep_file_text=False)
    warm = wholerepo.pack(root, keep_file_text=False)
    uncached = wholerepo.pack(root, cache=False)
    assert cold.prompt_tokens == warm.prompt_tokens == uncached.prompt_tokens
    assert cold.text == warm.text == uncached.text
    assert cold.prompt_tokens == get_tokenizer(DEEPSEEK_V4).count_sent(cold.text)


def _children() -> list[int]:
    """This process's counting worker processes (Linux /proc)."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) != me:
            continue
        try:
            if b"resource_tracker" in (entry / "cmdline").read_bytes():
                continue  # multiprocessing's own helper, not a counting worker
        except OSError:
            continue
        found.append(int(entry.name))
    return found
