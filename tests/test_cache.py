"""The token-count cache: warm runs do not tokenise, corruption and concurrency are never fatal."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

import wholerepo
from conftest import MakeRepo
from wholerepo.cache import TokenCache, text_key
from wholerepo.tokens import DEEPSEEK_V4, Tokenizer, get_tokenizer


class RecordingTokenizer:
    """Wraps the real tokenizer and records every call that tokenises."""

    def __init__(self, inner: Tokenizer) -> None:
        self.inner = inner
        self.name = inner.name
        self.special = inner.special
        self.encoding = inner.encoding
        self.calls: list[str] = []

    def count(self, text: str) -> int:
        self.calls.append("count")
        return self.inner.count(text)

    def count_sent(self, text: str) -> int:
        self.calls.append("count_sent")
        return self.inner.count_sent(text)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        self.calls.append(f"count_many({len(texts)})")
        return self.inner.count_many(texts)

    def encode(self, text: str) -> list[int]:
        self.calls.append("encode")
        return self.inner.encode(text)

    def defang(self, text: str) -> str:
        return self.inner.defang(text)


FILES = {
    "README.md": "# demo\n",
    "src/a.py": "def a():\n    return 1\n" * 20,
    "src/b.py": "B = '数据' * 3\n",
    "notes/<think>.md": "chat: <｜User｜> <think>\n",
}


def cache_files(isolated_env: Path) -> list[Path]:
    return sorted((isolated_env / "cache").glob("*.sqlite"))


def cached_rows(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return sum(db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)
    finally:
        db.close()


def test_warm_run_does_not_tokenise(make_repo: MakeRepo, isolated_env: Path) -> None:
    root = make_repo(FILES)
    cold_tok = RecordingTokenizer(get_tokenizer(DEEPSEEK_V4))
    cold = wholerepo.pack(root, tokenizer=cold_tok)
    assert cold_tok.calls, "the cold run has to tokenise"
    [db] = cache_files(isolated_env)
    assert cached_rows(db) >= len(FILES)

    warm_tok = RecordingTokenizer(get_tokenizer(DEEPSEEK_V4))
    warm = wholerepo.pack(root, tokenizer=warm_tok)
    assert warm_tok.calls == []
    assert warm.text == cold.text and warm.prompt_tokens == cold.prompt_tokens
    assert [f.tokens for f in warm.files] == [f.tokens for f in cold.files]


def test_warm_run_recounts_only_what_changed(make_repo: MakeRepo) -> None:
    root = make_repo(FILES)
    wholerepo.pack(root)
    (root / "src" / "b.py").write_text("B = 'changed'\n")
    tok = RecordingTokenizer(get_tokenizer(DEEPSEEK_V4))
    changed = wholerepo.pack(root, tokenizer=tok)
    assert tok.calls == ["count_sent"]
    assert changed.prompt_tokens == wholerepo.pack(root, cache=False).prompt_tokens


def test_no_cache_writes_no_cache_file(make_repo: MakeRepo, isolated_env: Path) -> None:
    root = make_repo(FILES)
    result = wholerepo.pack(root, cache=False)
    assert result.prompt_tokens > 0
    assert not (isolated_env / "cache").exists()


def test_corrupt_cache_is_rebuilt(make_repo: MakeRepo, isolated_env: Path) -> None:
    root = make_repo(FILES)
    first = wholerepo.pack(root)
    [db] = cache_files(isolated_env)
    db.write_bytes(b"\x00garbage, not a database\xff" * 500)
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).write_bytes(b"junk" * 10)
    again = wholerepo.pack(root)
    assert again.text == first.text and again.prompt_tokens == first.prompt_tokens
    assert cached_rows(db) >= len(FILES)


def test_cache_dir_that_cannot_be_created_is_not_fatal(
    make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("WHOLEREPO_CACHE_DIR", str(blocker / "cache"))
    root = make_repo(FILES)
    assert wholerepo.pack(root).prompt_tokens == wholerepo.pack(root, cache=False).prompt_tokens


def test_concurrent_packs_in_threads_share_one_cache(make_repo: MakeRepo, isolated_env: Path) -> None:
    root = make_repo({f"m{i}.py": f"x{i} = {i}\n" * (i + 1) for i in range(40)})
    results: list[wholerepo.Pack] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(wholerepo.pack(root))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.text for r in results}) == 1 and len(results) == 4
    assert len({r.prompt_tokens for r in results}) == 1
    [db] = cache_files(isolated_env)
    assert cached_rows(db) >= 40


def test_concurrent_processes_share_one_cache(make_repo: MakeRepo, tmp_path: Path) -> None:
    root = make_repo({f"m{i}.py": f"y{i} = {i}\n" * (i + 2) for i in range(30)})
    outs = [tmp_path / f"out{i}.xml" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "wholerepo", "pack", str(root), "-o", str(out), "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for out in outs
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        assert b"Traceback" not in err
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert outs[0].read_bytes() == wholerepo.pack(root, cache=False).text.encode()


def test_token_cache_roundtrip_and_keys(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "c")
    k1, k2 = text_key("deepseek-v4", "abc"), text_key("cl100k_base", "abc")
    assert k1 != k2 and k1 != text_key("deepseek-v4", "abd")
    cache.put_many({k1: 3})
    assert cache.get_many([k1, k2]) == {k1: 3}
    cache.close()
    assert TokenCache(tmp_path / "c").get_many([k1]) == {k1: 3}
    assert TokenCache(None).get_many([k1]) == {}
