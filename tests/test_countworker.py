"""The token-counting helper process: same counts as in-process, and failures never cost a count."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest

import wholerepo
from conftest import MakeRepo
from wholerepo import packer, tokens
from wholerepo.tokens import DEEPSEEK_V4, get_tokenizer
from wholerepo.tokens.countworker import CountWorker, WorkerFailed

TEXTS = [
    "def f(x):\n    return x + 1\n",
    "",
    "数据库连接失败：请检查配置。👨‍👩‍👧‍👦\n",
    '<file path="a&amp;b.py">\n1|x = "&lt;think&gt;"\n</file>\n',
    "x" * 100_000,
]


def test_helper_counts_like_the_tokenizer_in_process() -> None:
    v4 = get_tokenizer(DEEPSEEK_V4)
    worker = CountWorker(DEEPSEEK_V4)
    try:
        for text in TEXTS:
            worker.send(text)
        assert worker.answers() == [v4.count_sent(t) for t in TEXTS]
        worker.send("second round\n")  # the session goes on after answers
        assert worker.answers() == [v4.count_sent("second round\n")]
        assert worker.answers() == []
    finally:
        worker.close()


def test_helper_reports_why_it_cannot_count() -> None:
    worker = CountWorker("no-such-tokenizer")
    try:
        worker.send("text")
        with pytest.raises(WorkerFailed, match="unknown tokenizer"):
            worker.answers()
    finally:
        worker.close()


class Recorded(CountWorker):
    """The real helper; remembers that it was started, and can be made to die after N texts."""

    started: ClassVar[list[Recorded]] = []
    die_after: ClassVar[int | None] = None

    def __init__(self, tokenizer: str) -> None:
        super().__init__(tokenizer)
        self.sends = 0
        Recorded.started.append(self)

    def send(self, text: str) -> None:
        if self.die_after is not None and self.sends == self.die_after:
            self._proc.kill()
            self._proc.wait()
        self.sends += 1
        super().send(text)


FILES = {f"pkg/m{i:02d}.py": f'"""M{i}."""\n\nVALUE_{i} = {i}  # 数据 {i}\n' * (i + 3) for i in range(40)}


@pytest.fixture
def cold_helper(monkeypatch: pytest.MonkeyPatch) -> type[Recorded]:
    """Make every cold pack in this test use the helper, as a large cold repository does."""
    monkeypatch.setattr(packer, "_WORKER_MIN_BYTES", 0)
    monkeypatch.setattr(tokens, "_LOADED", set())
    monkeypatch.setattr(packer, "CountWorker", Recorded)
    monkeypatch.setattr(Recorded, "started", [])
    monkeypatch.setattr(Recorded, "die_after", None)
    return Recorded


def test_cold_pack_counts_in_the_helper(make_repo: MakeRepo, cold_helper: type[Recorded]) -> None:
    root = make_repo(FILES)
    helped = wholerepo.pack(root, keep_file_text=False, cache=False)
    assert len(cold_helper.started) == 1 and cold_helper.started[0].sends >= len(FILES)
    in_process = wholerepo.pack(root, keep_file_text=False, cache=False, tokenizer=get_tokenizer(DEEPSEEK_V4))
    assert helped.text == in_process.text
    exact = get_tokenizer(DEEPSEEK_V4).count_sent(helped.text)
    assert helped.prompt_tokens == in_process.prompt_tokens == exact
    assert [f.tokens for f in helped.files] == [f.tokens for f in in_process.files]


@pytest.mark.parametrize("die_after", [0, 7, 39])
def test_a_helper_that_dies_costs_no_count(
    make_repo: MakeRepo, cold_helper: type[Recorded], die_after: int
) -> None:
    cold_helper.die_after = die_after
    root = make_repo(FILES)
    helped = wholerepo.pack(root, keep_file_text=False, cache=False)
    assert cold_helper.started, "the helper was started"
    assert helped.prompt_tokens == get_tokenizer(DEEPSEEK_V4).count_sent(helped.text)
    reference = wholerepo.pack(root, keep_file_text=False, cache=False, tokenizer=get_tokenizer(DEEPSEEK_V4))
    assert [f.tokens for f in helped.files] == [f.tokens for f in reference.files]


def test_warm_and_small_runs_start_no_helper(
    make_repo: MakeRepo, cold_helper: type[Recorded], monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    root = make_repo(FILES)
    wholerepo.pack(root, keep_file_text=False)  # cold: fills the cache
    assert len(cold_helper.started) == 1
    wholerepo.pack(root, keep_file_text=False)  # warm
    assert len(cold_helper.started) == 1
    monkeypatch.setattr(packer, "_WORKER_MIN_BYTES", 10**9)
    monkeypatch.setattr(tokens, "_LOADED", set())
    wholerepo.pack(root, keep_file_text=False, cache=False)  # cold but small
    assert len(cold_helper.started) == 1


def _helpers_of(pid: int) -> list[int]:
    """Live token-counting helpers whose parent is ``pid``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"wholerepo.tokens.countworker" in cmdline and ppid == pid:
            found.append(int(proc.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_ctrl_c_during_a_cold_pack_stops_the_helper(make_repo: MakeRepo) -> None:
    # Over a megabyte of files: a cold CLI run counts in a helper process.
    root = make_repo({f"big/m{i:03d}.py": f"value_{i} = '{i}' * 80  # padding\n" * 400 for i in range(80)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "wholerepo", "pack", str(root), "-o", str(root.parent / "out.xml"), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    helpers: list[int] = []
    while not helpers and time.monotonic() < deadline and proc.poll() is None:
        helpers = _helpers_of(proc.pid)
        time.sleep(0.005)
    if not helpers:
        proc.communicate(timeout=60)
        pytest.skip("the pack finished before its helper could be seen")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert err.decode().strip().splitlines()[-1] == "Interrupted."
    assert b"Traceback" not in err
    for _ in range(200):  # the helper is killed and reaped by the packer before it exits
        if not any(Path(f"/proc/{pid}").exists() for pid in helpers):
            break
        time.sleep(0.01)
    assert not any(Path(f"/proc/{pid}").exists() for pid in helpers)


def test_a_prestarted_helper_is_taken_once_or_stopped() -> None:
    from wholerepo.tokens import countworker

    countworker.prestart(DEEPSEEK_V4)
    worker = countworker.take_prestarted(DEEPSEEK_V4)
    assert worker is not None and countworker.take_prestarted(DEEPSEEK_V4) is None
    worker.send("taken\n")
    assert worker.answers() == [get_tokenizer(DEEPSEEK_V4).count_sent("taken\n")]
    worker.close()

    countworker.prestart("cl100k_base")  # the settings turned out to name another tokenizer
    mismatch = countworker._prestarted
    assert mismatch is not None
    assert countworker.take_prestarted(DEEPSEEK_V4) is None
    assert mismatch._proc.returncode is not None, "stopped and reaped"

    countworker.prestart(DEEPSEEK_V4)  # the command failed before any pack took it
    orphan = countworker._prestarted
    assert orphan is not None
    countworker.stop_prestarted()
    assert countworker._prestarted is None and orphan._proc.returncode is not None
