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
from test_redact import SEEDS, source_for
from wholerepo.packer.cache import FileResult, TokenCache, count_check
from wholerepo.tokens import DEEPSEEK_V4, Tokenizer, get_tokenizer
from wholerepo.tokens.counter import text_key


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


def test_a_cache_file_from_another_build_is_rebuilt_not_left_cold(
    make_repo: MakeRepo, isolated_env: Path
) -> None:
    """The same file name with other columns (an older build's): every write failed silently and
    every run stayed cold. Such a file is rebuilt, and the next run is warm."""
    root = make_repo(FILES)
    wholerepo.pack(root)
    [path] = cache_files(isolated_env)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE counts (key TEXT PRIMARY KEY, tokens INTEGER NOT NULL)")  # no digest
    db.commit()
    db.close()
    first = wholerepo.pack(root)
    tok = RecordingTokenizer(get_tokenizer(DEEPSEEK_V4))
    warm = wholerepo.pack(root, tokenizer=tok)
    assert tok.calls == [], "the run after the rebuild must be warm"
    assert warm.text == first.text and cached_rows(path) >= len(FILES)


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


# --- whole file results (the warm path of `wholerepo pack`) ------------------------------------

RICH_FILES: dict[str, str | bytes] = {
    **FILES,
    "config.py": source_for(SEEDS[2]),  # a GitHub token: redacted
    "logo.svg.txt": b"\x89PNG\r\n\x1a\n\x00\x00 binary with a text name",
    "legacy.txt": "caf\xe9 cr\xe8me\n".encode("latin-1"),
    "min.js": "var a=1;" * 800,
}


def packed(root: Path, **options: object) -> wholerepo.Pack:
    return wholerepo.pack(root, keep_file_text=False, **options)  # type: ignore[arg-type]


def file_rows(isolated_env: Path) -> list[tuple[str, int, str]]:
    [db] = cache_files(isolated_env)
    con = sqlite3.connect(db)
    try:
        return list(con.execute("SELECT key, used, section FROM files ORDER BY key"))
    finally:
        con.close()


def test_warm_pack_reuses_whole_file_results(make_repo: MakeRepo, isolated_env: Path) -> None:
    root = make_repo(RICH_FILES)
    cold = packed(root)
    rows = file_rows(isolated_env)
    # One row per file that was read: the binary, minified and redacted ones included.
    assert len(rows) == len(RICH_FILES)
    warm_tok = RecordingTokenizer(get_tokenizer(DEEPSEEK_V4))
    warm = packed(root, tokenizer=warm_tok)
    assert warm_tok.calls == []
    assert warm.text == cold.text and warm.manifest() == cold.manifest()
    assert warm.text == packed(root, cache=False).text
    secret = warm.file("config.py")
    assert secret is not None and secret.redactions == ("github-token",)
    assert SEEDS[2].value not in warm.text
    reasons = {f.path: f.reason for f in warm.files}
    assert reasons["logo.svg.txt"] == "binary" and reasons["min.js"] == "minified"
    assert warm.file("legacy.txt") is not None and warm.file("legacy.txt").encoding == "cp1252"  # type: ignore[union-attr]

    # The sections really come from the cache: a row rewritten whole, digest included, shows up.
    forge_rows(isolated_env, "def a()", "def CACHED()")
    assert "def CACHED()" in packed(root).text
    # ...and only the packer's warm path uses them: the API default re-reads the text.
    assert "def CACHED()" not in wholerepo.pack(root).text


def forge_rows(isolated_env: Path, old: str, new: str) -> None:
    """Rewrite the cached sections holding ``old`` as the cache itself would: the section, the
    counts key it is checked against, its count and every digest."""
    [db] = cache_files(isolated_env)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT * FROM files WHERE section LIKE ?", (f"%{old}%",)).fetchall()
    assert rows
    with con:
        for key, _used, reason, encoding, lines, count_key, redactions, section, _digest in rows:
            [(tokens,)] = con.execute("SELECT tokens FROM counts WHERE key = ?", (count_key,)).fetchall()
            forged_key = text_key(count_key.partition(":")[0], section.replace(old, new))
            forged = FileResult(
                reason, encoding, lines, forged_key, tuple(filter(None, redactions.split(","))),
                section.replace(old, new),
            )  # fmt: skip
            con.execute(
                "INSERT OR REPLACE INTO counts VALUES (?, ?, ?)",
                (forged_key, tokens, count_check(forged_key, tokens)),
            )
            con.execute(
                "UPDATE files SET section = ?, count_key = ?, digest = ? WHERE key = ?",
                (forged.section, forged_key, forged.digest(key), key),
            )
    con.close()


@pytest.mark.parametrize(
    "change",
    [
        {"style": "markdown"},
        {"style": "json"},
        {"line_numbers": "all"},
        {"line_numbers": "none"},
        {"line_number_interval": 5},
        {"redact": False},
        {"tokenizer": "cl100k_base"},
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_file_results_follow_settings(make_repo: MakeRepo, change: dict[str, object]) -> None:
    root = make_repo(RICH_FILES)
    packed(root)
    cached = packed(root, **change)
    fresh = packed(root, cache=False, **change)
    assert cached.text == fresh.text and cached.manifest() == fresh.manifest()


def test_file_results_follow_content_and_path(make_repo: MakeRepo) -> None:
    root = make_repo(RICH_FILES)
    packed(root)
    (root / "src" / "a.py").write_text("def a():\n    return 2\n")
    (root / "src" / "b.py").rename(root / "src" / "renamed.py")
    (root / "legacy.txt").write_bytes(b"now utf-8 \xe2\x9c\x93\n")
    cached, fresh = packed(root), packed(root, cache=False)
    assert cached.text == fresh.text and cached.manifest() == fresh.manifest()
    assert 'path="src/renamed.py"' in cached.text and "return 2" in cached.text


def test_unused_file_results_are_pruned(make_repo: MakeRepo, isolated_env: Path) -> None:
    root = make_repo(RICH_FILES)
    packed(root)
    [db] = cache_files(isolated_env)
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE files SET used = used - 40")
    con.close()
    before = file_rows(isolated_env)
    (root / "src" / "a.py").write_text("def a():\n    return 3\n")
    packed(root)
    after = file_rows(isolated_env)
    # The old version of src/a.py (unused for 40 days) is gone; files read again were kept.
    assert len(after) == len(before)
    assert len({key for key, _, _ in after} - {key for key, _, _ in before}) == 1
    assert len({used for _, used, _ in after}) == 1, "every row left was marked as used today"


def test_cache_is_private_to_its_user(make_repo: MakeRepo, isolated_env: Path) -> None:
    # It holds rendered copies of the files (redacted, but still the repository's code).
    packed(make_repo(RICH_FILES))
    [db] = cache_files(isolated_env)
    assert db.stat().st_mode & 0o077 == 0
    assert db.parent.stat().st_mode & 0o077 == 0
    for side in db.parent.glob(db.name + "-*"):
        assert side.stat().st_mode & 0o077 == 0, side


def test_no_redact_stores_no_section(make_repo: MakeRepo, isolated_env: Path) -> None:
    root = make_repo(RICH_FILES)
    out = packed(root, redact=False)
    assert SEEDS[2].value in out.text  # the secret is in the output, as asked
    [db] = cache_files(isolated_env)
    assert file_rows(isolated_env) == []
    for path in db.parent.iterdir():
        assert SEEDS[2].value.encode() not in path.read_bytes()


def test_cache_stops_growing_at_its_cap(
    make_repo: MakeRepo, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wholerepo.packer import cache

    monkeypatch.setattr(cache, "MAX_BYTES", 200_000)
    root = make_repo({f"f{i:02d}.py": f"# file {i}\n" + f"value_{i} = 'x'\n" * 2000 for i in range(20)})
    packed(root)
    [db] = cache_files(isolated_env)
    con = sqlite3.connect(db)
    try:
        pages, free, size = (
            con.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size")
        )
    finally:
        con.close()
    used = (pages - free) * size
    assert used <= 200_000
    assert 0 < len(file_rows(isolated_env)) < 20
    # What is left still gives the same output as a fresh run.
    assert packed(root).text == packed(root, cache=False).text
