"""Per-file results on disk, keyed by content hashes, in one SQLite file.

Four tables: ``counts`` maps a hash of the exact text counted to its token count; ``files`` maps
(how we render, path, hash of the file's bytes) to everything the packer derived from the file
(skip reason, encoding, line count, redactions, the rendered section, and the ``counts`` key of
that section), so a warm run reads, hashes and looks up instead of decoding, redacting and
rendering again. Fitting a repository to its budget (fit/) adds ``parses``, what tree-sitter
found in a file's text (outline ranges in ``meta``; imports, definitions and references in
``graph``), keyed by content, and ``blobs``, derived values by key: compressed sections, git
churn per HEAD, rankings. Rows of these three tables unused for PRUNE_AFTER_DAYS days are deleted.

Each row carries a digest of what it holds and of its key, and a section is checked against the
``counts`` key it was stored with (a hash of the section's text): a row changed on disk (one byte
of a section, a line count, a token count, a parse, a row moved under another key) is a miss,
never served, so a warm run can only give what a cold run would.

Safe under concurrent runs (WAL, a busy timeout, idempotent inserts). A cache that cannot be
opened or is corrupt is rebuilt; if even that fails, runs go on without one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 3  # 1 had only the counts table, in tokens-v1.sqlite; 2 had no row digests
PRUNE_AFTER_DAYS = 30
# Past this many bytes in use, the least recently used half of the file results goes (SQLite
# reuses the freed pages, so the file stops growing there).
MAX_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class FileResult:
    """What packing derived from one file's bytes at one path, under one way of rendering."""

    reason: str | None  # a skip reason decided from the content, or None
    encoding: str | None
    lines: int
    count_key: str  # the counts key of the section ("" when skipped)
    redactions: tuple[str, ...]
    section: str  # the rendered section ("" when skipped)
    tokens: int = 0  # the section's count, filled in from counts when read back

    def digest(self, key: str) -> str:
        """What the row must carry under ``key``: every field but the section, which is checked
        against ``count_key`` (a hash of its text, see section_intact)."""
        fields = (key, self.reason, self.encoding, str(self.lines), self.count_key, ",".join(self.redactions))
        return _digest(*fields)


def _digest(*fields: str | None) -> str:
    """A digest of ``fields`` (their repr: each string quoted and escaped, None distinct)."""
    return hashlib.blake2b(repr(fields).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def count_check(key: str, tokens: int) -> str:
    """What a ``counts`` row must carry beside ``tokens`` under ``key``."""
    return _digest(key, str(tokens))


def section_intact(count_key: str, section: str) -> bool:
    """Whether ``section`` is the text ``count_key`` (``tokenizer:hash``) was made from."""
    if not count_key:
        return section == ""
    from ..tokens.counter import text_key

    tokenizer, _, _ = count_key.partition(":")
    return isinstance(section, str) and text_key(tokenizer, section) == count_key


# Every table's columns, as created; a file whose tables differ is rebuilt.
TABLES = {
    "counts": "key TEXT PRIMARY KEY, tokens INTEGER NOT NULL, digest TEXT NOT NULL",
    "files": "key TEXT PRIMARY KEY, used INTEGER NOT NULL, reason TEXT, encoding TEXT,"
    " lines INTEGER NOT NULL, count_key TEXT NOT NULL, redactions TEXT NOT NULL, section TEXT NOT NULL,"
    " digest TEXT NOT NULL",
    "parses": "key TEXT PRIMARY KEY, used INTEGER NOT NULL, meta TEXT NOT NULL, graph TEXT NOT NULL,"
    " digest TEXT NOT NULL",
    "blobs": "key TEXT PRIMARY KEY, used INTEGER NOT NULL, value TEXT NOT NULL, digest TEXT NOT NULL",
}


def default_cache_dir() -> Path:
    env = os.environ.get("WHOLEREPO_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("wholerepo", appauthor=False))


class TokenCache:
    """A mapping from text keys to token counts; every failure degrades to a miss."""

    def __init__(self, directory: Path | None) -> None:
        self.path = None if directory is None else directory / f"cache-v{SCHEMA_VERSION}.sqlite"
        self._db: sqlite3.Connection | None = None
        self._touched: list[str] = []  # keys of reused files rows last used before yesterday
        self._touched_fit: dict[str, list[str]] = {"parses": [], "blobs": []}  # the same, fit/'s tables
        self.empty = True  # no counts stored yet: this run starts cold, and reads find nothing
        # Writes wait for flush() (or close()): one transaction per run, not one per chunk.
        self._counts: dict[str, int] = {}
        self._files: dict[str, FileResult] = {}
        if self.path is not None:
            self._db = self._open(self.path, retry=True)

    def _open(self, path: Path, retry: bool) -> sqlite3.Connection | None:
        try:
            # The cache holds rendered (redacted) copies of files: readable by this user only.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            for old in ("tokens-v1", "cache-v2"):  # earlier schemas' files, now unused
                for suffix in ("", "-wal", "-shm"):
                    (path.parent / f"{old}.sqlite{suffix}").unlink(missing_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            db = sqlite3.connect(path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            for table, columns in TABLES.items():
                db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
                # A file of the same name from another build may hold other columns: every write
                # would fail and every run stay cold, silently. Such a file is rebuilt.
                found = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
                if found != [c.split()[0] for c in columns.split(", ")]:
                    raise sqlite3.DatabaseError(f"the cache's {table} table has other columns")
            self.empty = db.execute("SELECT 1 FROM counts LIMIT 1").fetchone() is None
            return db
        except sqlite3.OperationalError as exc:
            # Locked or busy: another run holds it. Go on without a cache; never delete its file.
            if "locked" in str(exc) or "busy" in str(exc) or not retry:
                return None
            return self._rebuild(path)
        except (sqlite3.Error, OSError):
            if not retry:
                return None
            return self._rebuild(path)

    def _rebuild(self, path: Path) -> sqlite3.Connection | None:
        """A corrupt or foreign file: remove it and start afresh."""
        for suffix in ("", "-wal", "-shm"):
            try:
                Path(str(path) + suffix).unlink()
            except OSError:
                pass
        return self._open(path, retry=False)

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def get_many(self, keys: Iterable[str]) -> dict[str, int]:
        wanted = list(keys)
        found = {k: self._counts[k] for k in wanted if k in self._counts}
        if self._db is None or self.empty:
            return found
        try:
            rest = [k for k in wanted if k not in found]
            query = "SELECT key, tokens, digest FROM counts WHERE key IN ({})"
            for k, v, check in self._rows_for(query, rest):
                if isinstance(v, int) and check == count_check(k, v):  # else changed on disk: a miss
                    found[k] = v
        except sqlite3.Error:
            return found
        return found

    def put_many(self, items: dict[str, int]) -> None:
        if self._db is not None:
            self._counts.update(items)

    def _rows_for(self, query: str, keys: Iterable[str]) -> Iterator[tuple[Any, ...]]:
        """Rows of ``query`` (its ``IN ({})`` filled with placeholders) for distinct ``keys``,
        500 keys per statement (SQLite caps a statement's parameters)."""
        assert self._db is not None
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            yield from self._db.execute(query.format(",".join("?" * len(chunk))), chunk)

    def get_files(self, keys: Iterable[str], sections: bool = True) -> dict[str, FileResult]:
        """Stored results; ``sections`` False leaves each section "" (get_sections reads it later:
        over the budget most sections are never sent)."""
        wanted = list(keys)
        found: dict[str, FileResult] = {}
        for key in wanted:
            pending = self._files.get(key)
            if pending is not None and (pending.reason is not None or pending.count_key in self._counts):
                found[key] = dataclasses.replace(pending, tokens=self._counts.get(pending.count_key, 0))
        if self._db is None or self.empty:
            return found
        stale = _today() - 1
        query = (
            "SELECT f.key, f.used, f.reason, f.encoding, f.lines, f.count_key, f.redactions,"
            f" {'f.section' if sections else chr(39) * 2}, f.digest, c.tokens, c.digest FROM files f"
            " LEFT JOIN counts c ON c.key = f.count_key WHERE f.key IN ({})"
        )
        try:
            rest = [k for k in wanted if k not in found]
            for row in self._rows_for(query, rest):
                key, used, reason, encoding, lines, count_key, redactions, section, digest, tokens, check = (
                    row
                )
                if reason is None and not (
                    isinstance(tokens, int) and check == count_check(count_key, tokens)
                ):
                    continue  # the section's count is gone or changed: not a usable result
                try:
                    kinds = tuple(filter(None, redactions.split(",")))
                    result = FileResult(
                        reason, encoding, int(lines), count_key, kinds, section, int(tokens or 0)
                    )
                    intact = result.digest(key) == digest and (
                        not sections or section_intact(count_key, section)
                    )
                except (AttributeError, TypeError, ValueError):  # a field of the wrong type
                    intact = False
                if not intact:
                    continue  # changed since it was written: computed afresh (and stored again)
                found[key] = result
                if used < stale:
                    self._touched.append(key)
        except sqlite3.Error:
            return found
        return found

    def get_sections(self, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(keys)
        found = {k: self._files[k].section for k in wanted if k in self._files}
        if self._db is None or self.empty:
            return found
        try:
            rest = [k for k in wanted if k not in found]
            for key, section, count_key in self._rows_for(
                "SELECT key, section, count_key FROM files WHERE key IN ({})", rest
            ):
                if section_intact(count_key, section):  # else changed on disk: rendered again
                    found[key] = section
        except sqlite3.Error:
            return found
        return found

    def put_files(self, items: dict[str, FileResult]) -> None:
        """Store new results (at the next flush)."""
        if self._db is not None:
            self._files.update(items)

    def flush(self) -> None:
        """Write what was put, mark reused results as used today and drop long-unused ones: one
        transaction, so a result and the count it needs are stored together."""
        if self._db is None or not (self._counts or self._files or self._touched):
            return
        today = _today()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO counts (key, tokens, digest) VALUES (?, ?, ?)",
                    [(k, n, count_check(k, n)) for k, n in self._counts.items()],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            k,
                            today,
                            r.reason,
                            r.encoding,
                            r.lines,
                            r.count_key,
                            ",".join(r.redactions),
                            r.section,
                            r.digest(k),
                        )
                        for k, r in self._files.items()
                    ],
                )
                self._db.executemany(
                    "UPDATE files SET used = ? WHERE key = ?", [(today, k) for k in self._touched]
                )
                self._db.execute("DELETE FROM files WHERE used < ?", (today - PRUNE_AFTER_DAYS,))
            if self._counts:
                self.empty = False
            self._counts, self._files, self._touched = {}, {}, []
            self._cap()
        except sqlite3.Error:
            pass

    # -- fit/: parse results and derived values ----------------------------------------------------

    def get_parses(self, keys: Iterable[str], graph: bool = False) -> dict[str, tuple[str, str | None]]:
        """key -> (meta, graph or None): ``graph`` False leaves the larger column unread."""
        if self._db is None:
            return {}
        columns = "key, used, meta, graph, digest" if graph else "key, used, meta, NULL, digest"
        found: dict[str, tuple[str, str | None]] = {}
        stale = _today() - 1
        try:
            for key, used, meta, graph_json, digest in self._rows_for(
                f"SELECT {columns} FROM parses WHERE key IN ({{}})", keys
            ):
                meta_check, _, graph_check = str(digest).partition(":")
                if meta_check != _digest(key, meta) or (graph and graph_check != _digest(key, graph_json)):
                    continue  # changed on disk: parsed again
                found[key] = (meta, graph_json)
                if used < stale:
                    self._touched_fit["parses"].append(key)
        except sqlite3.Error:
            return found
        return found

    def put_parses(self, items: dict[str, tuple[str, str]]) -> None:
        rows = {
            k: (meta, graph, f"{_digest(k, meta)}:{_digest(k, graph)}") for k, (meta, graph) in items.items()
        }
        self._put_fit("parses", "INSERT OR REPLACE INTO parses VALUES (?, ?, ?, ?, ?)", rows)

    def get_blobs(self, keys: Iterable[str]) -> dict[str, str]:
        if self._db is None:
            return {}
        found: dict[str, str] = {}
        stale = _today() - 1
        try:
            for key, used, value, digest in self._rows_for(
                "SELECT key, used, value, digest FROM blobs WHERE key IN ({})", keys
            ):
                if digest != _digest(key, value):
                    continue  # changed on disk: derived again
                found[key] = value
                if used < stale:
                    self._touched_fit["blobs"].append(key)
        except sqlite3.Error:
            return found
        return found

    def put_blobs(self, items: dict[str, str]) -> None:
        rows = {k: (value, _digest(k, value)) for k, value in items.items()}
        self._put_fit("blobs", "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?)", rows)

    def _put_fit(self, table: str, insert: str, items: dict[str, Any]) -> None:
        touched = self._touched_fit[table]
        if self._db is None or not (items or touched):
            return
        today = _today()
        rows = [(k, today, *(v if isinstance(v, tuple) else (v,))) for k, v in items.items()]
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(insert, rows)
                self._db.executemany(
                    f"UPDATE {table} SET used = ? WHERE key = ?", [(today, k) for k in touched]
                )
                self._db.execute(f"DELETE FROM {table} WHERE used < ?", (today - PRUNE_AFTER_DAYS,))
            touched.clear()
        except sqlite3.Error:
            pass

    def _cap(self) -> None:
        assert self._db is not None
        for _ in range(8):
            page_size, pages, free = (
                self._db.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("page_size", "page_count", "freelist_count")
            )
            if (pages - free) * page_size <= MAX_BYTES:
                return
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "DELETE FROM files WHERE key IN (SELECT key FROM files ORDER BY used, key"
                    " LIMIT (SELECT (count(*) + 1) / 2 FROM files))"
                )

    def close(self) -> None:
        if self._db is not None:
            self.flush()
            self._db.close()
            self._db = None


def _today() -> int:
    return int(time.time() // 86400)
