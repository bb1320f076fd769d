"""The packer: discover -> filter -> (redact) -> count with cache -> fit the budget -> render.

``pack()`` is a straight sequence; each stage lives in its own module. Files go through it in
chunks, so counting (on threads, or in the countworker helper) runs while later files are still
read and rendered, and a file the cache knows skips straight to its stored section. The total
it reports is the exact token count of the text it returns: sections are framed so that their
cached counts add up to the count of the whole (see styles.py).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from . import filters, styles
from .cache import FileResult, TokenCache, default_cache_dir, text_key
from .config import FIELDS, Settings, Trust, load_settings
from .countworker import CountWorker, WorkerFailed, take_prestarted
from .discover import Candidate, FileTooLarge, Listing, discover, read_bytes
from .errors import BudgetError, UsageError
from .tokens import (
    Tokenizer,
    control_tokens,
    defang,
    get_tokenizer,
    is_loaded,
    may_hold_control_token,
)

if TYPE_CHECKING:
    from .fit.rank import Ranked
    from .fit.stage import FileIn, FitStage, Focus, Outcome

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class PackedFile:
    """One path git lists, and what the pack did with it."""

    path: str
    status: str  # included | compressed | truncated | skipped
    reason: str | None
    tokens: int
    bytes: int
    lines: int
    encoding: str | None = None
    redactions: tuple[str, ...] = ()  # kinds of the secrets removed, one entry each
    text: str | None = field(default=None, repr=False)  # the text as sent (redacted, unnumbered)
    # Fitting (fit/), when the repository exceeds the budget or a ranking was asked for:
    ranked: Ranked | None = field(default=None, repr=False)  # its rank, score and why
    elided: tuple[tuple[int, int], ...] = ()  # compressed: the original lines not sent
    full_tokens: int | None = None  # compressed: what the whole file would have cost

    @property
    def rank(self) -> int | None:
        """1 = the most important file; None when no ranking was made."""
        return self.ranked.rank if self.ranked is not None else None

    @property
    def score(self) -> float | None:
        return self.ranked.score if self.ranked is not None else None

    @property
    def why(self) -> tuple[str, ...]:
        return self.ranked.why if self.ranked is not None else ()

    def manifest_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "tokens": self.tokens,
            "bytes": self.bytes,
            "lines": self.lines,
        }
        if self.encoding not in (None, "utf-8"):
            entry["encoding"] = self.encoding
        if self.redactions:
            entry["redactions"] = len(self.redactions)
            entry["redacted_kinds"] = sorted(set(self.redactions))
        if self.rank is not None:
            entry.update(rank=self.rank, score=self.score, why=list(self.why))
        if self.status == "compressed":
            entry.update(full_tokens=self.full_tokens, elided=[list(r) for r in self.elided])
        return entry


@dataclass(frozen=True)
class Pack:
    """A packed repository: the rendered text, its exact token count and every file's fate."""

    root: Path
    files: tuple[PackedFile, ...]
    parts: tuple[str, ...] = field(repr=False)  # header, one section per file, footer
    prompt_tokens: int
    tokenizer: str
    budget: int
    style: str
    in_git: bool
    settings: Settings = field(repr=False)
    prefix: str = ""  # the packed directory relative to the repository root ("" or "pkg/")
    warnings: tuple[str, ...] = ()
    ranking: tuple[Ranked, ...] = ()  # fit/'s order, when it was computed (over budget, or asked)

    @functools.cached_property
    def text(self) -> str:
        """The whole rendered pack (joined on first use; writers can stream ``parts``)."""
        return "".join(self.parts)

    @property
    def included(self) -> tuple[PackedFile, ...]:
        return tuple(f for f in self.files if f.status != "skipped")

    @property
    def elided(self) -> dict[str, tuple[tuple[int, int], ...]]:
        """The compressed files' elided line ranges: findings there cannot be verified."""
        return {f.path: f.elided for f in self.files if f.status == "compressed"}

    @property
    def skipped(self) -> tuple[PackedFile, ...]:
        return tuple(f for f in self.files if f.status == "skipped")

    def file(self, path: str) -> PackedFile | None:
        for f in self.files:
            if f.path == path:
                return f
        return None

    def manifest(self) -> dict[str, Any]:
        return {
            "generator": "wholerepo",  # also how a later pack recognises this file as ours
            "tokenizer": self.tokenizer,
            "budget": self.budget,
            "prompt_tokens": self.prompt_tokens,
            "style": self.style,
            "fit": self.settings.fit,
            "line_numbers": self.settings.line_numbers,
            "in_git": self.in_git,
            "redactions": sum(len(f.redactions) for f in self.files),
            "files": [f.manifest_entry() for f in self.files],
        }


@dataclass
class _Work:
    """Mutable per-file state while packing."""

    candidate: Candidate
    size: int = 0
    lines: int = 0
    reason: str | None = None
    encoding: str | None = None
    data: bytes = b""  # the file's bytes, from reading until decoding
    content: bytes = b""  # a digest of the file's bytes
    key: str = ""  # the file-results cache key: how we render, the path, a hash of the bytes
    text: str | None = ""  # redacted, defanged, unnumbered; None once dropped
    redactions: tuple[str, ...] = ()
    section: str = ""
    tokens: int = -1  # -1 until counted

    def result(self, tokenizer: str) -> FileResult:
        count_key = text_key(tokenizer, self.section) if self.reason is None else ""
        return FileResult(self.reason, self.encoding, self.lines, count_key, self.redactions, self.section)

    def reuse(self, known: FileResult) -> None:
        self.reason, self.encoding, self.lines = known.reason, known.encoding, known.lines
        self.tokens, self.redactions, self.section = known.tokens, known.redactions, known.section
        self.data, self.text = b"", None


def _without(listing: Listing, files: Iterable[str | os.PathLike[str]]) -> Listing:
    """The listing minus the given files (those inside the packed directory)."""
    paths = set()
    for file in files:
        try:
            paths.add(Path(file).resolve().relative_to(listing.root).as_posix())
        except ValueError:  # outside the packed directory
            continue
    if not paths:
        return listing
    return replace(listing, candidates=tuple(c for c in listing.candidates if c.path not in paths))


def _read_ignore_file(place: Path) -> list[str] | None:
    file = place / filters.IGNORE_FILE
    if file.is_file() and not file.is_symlink():
        return file.read_text(encoding="utf-8", errors="replace").splitlines()
    return None


def _rules(listing: Listing, settings: Settings) -> filters.Rules:
    """Selection rules, with every .wholerepoignore from the repository root down.

    The packed directory's own file and those of its parent directories (up to the repository
    root) are read whatever git thinks of them; deeper ones are read if git lists them.
    """
    files: dict[str, list[str]] = {}
    prefix = ""
    if listing.repo_root is not None and listing.repo_root != listing.root:
        prefix = listing.root.relative_to(listing.repo_root).as_posix() + "/"
        parts = prefix.split("/")[:-1]
        for depth in range(len(parts)):
            base = "".join(part + "/" for part in parts[:depth])
            lines = _read_ignore_file(listing.repo_root / base)
            if lines is not None:
                files[base] = lines
    for c in listing.candidates:
        directory, _, name = c.path.rpartition("/")
        if name == filters.IGNORE_FILE and c.kind == "file" and directory:
            try:
                text = read_bytes(listing.root, c.path, 1 << 20).decode("utf-8", "replace")
            except (OSError, FileTooLarge):
                continue
            files[prefix + directory + "/"] = text.splitlines()
    return filters.Rules.build(
        settings.include,
        settings.exclude,
        _read_ignore_file(listing.root),
        settings.max_file_size,
        ignore_files=files,
        root_prefix=prefix,
        vendored=filters.vendored_roots(c.path for c in listing.candidates),
    )


def settings_for(
    path: Path, overrides: Mapping[str, Any] | None = None, *, repository: Trust | None = None
) -> Settings:
    """Settings for packing ``path``: the user's file, its repository's file (trusted as far as
    ``repository`` says; see config.py), the environment, then ``overrides`` (flags)."""
    directories = [path]
    try:
        import git

        with git.Repo(path, search_parent_directories=True) as repo:
            top = repo.working_tree_dir
        if top is not None and Path(top).resolve() != path.resolve():
            directories.insert(0, Path(top))
    except Exception:  # not a repository, or git unusable: only the path's own file counts
        pass
    return load_settings(directories, flags=overrides or {}, repository=repository)


def pack(
    path: str | os.PathLike[str] = ".",
    settings: Settings | None = None,
    *,
    on_progress: Progress | None = None,
    tokenizer: Tokenizer | str | None = None,
    keep_file_text: bool = True,
    omit: Iterable[str | os.PathLike[str]] = (),
    focus: Focus | None = None,
    explain: bool = False,
    **options: Any,
) -> Pack:
    """Pack the repository (or plain directory) at ``path``.

    ``options`` are Settings fields (``budget=``, ``style=``, ``include=(...)``...) applied over
    the repository's configuration and the environment. ``keep_file_text=False`` drops each
    file's text once its section is rendered (``PackedFile.text`` is then None), which keeps the
    peak memory near twice the output's size. ``omit`` names files the caller writes (its output
    and manifest): left out of the listing, so packing twice into the repository gives the same text.
    ``focus`` (the files a diff changed) ranks those files and their imports first when the
    repository exceeds the budget; ``explain`` ranks the files even when everything fits.
    """
    if isinstance(tokenizer, str):  # the setting (a tokenizer's name), not a loaded Tokenizer
        options["tokenizer"], tokenizer = tokenizer, None
    unknown = sorted(set(options) - FIELDS)
    if unknown:
        raise TypeError(
            f"pack() got an unexpected keyword argument {unknown[0]!r}"
            f" (settings are: {', '.join(sorted(FIELDS))})"
        )
    root = Path(path)
    if not root.exists():
        raise UsageError(f"path does not exist: {root}")
    if not root.is_dir():
        raise UsageError(f"path is not a directory: {root}")
    if settings is None:
        settings = settings_for(root, options)
    elif options:
        settings = replace(settings, **options)
    progress = on_progress or (lambda stage, done, total: None)

    progress("discover", 0, 1)
    listing = _without(discover(root, tracked_only=settings.tracked_only), omit)
    if not listing.candidates:
        where = "repository" if listing.in_git else "directory"
        raise UsageError(f"nothing to pack: the {where} at {root} lists no files")
    rules = _rules(listing, settings)
    warnings = list(rules.warnings)
    _check_include(listing, rules, settings, warnings)
    work = [_Work(c) for c in listing.candidates]
    text_bytes = sum(c.size for c in listing.candidates if c.size <= settings.max_file_size)
    render_key = _render_key(settings)
    counter = _Counter(settings, tokenizer, progress, text_bytes)
    # A warm run takes each unchanged file's section from the cache; callers that want the
    # file's text (the reviewer's verifier) get it decoded and redacted afresh.
    # Sections are stored only redacted: with --no-redact they would hold the secrets.
    store = counter.caching and settings.redact
    reuse = store and not keep_file_text
    computed: list[_Work] = []  # files decoded in this run (not taken from the cache)
    # Over the budget, fit/ parses each decoded file while its text is at hand, and the sections
    # the cache has are read only for the files sent.
    lazy = _likely_over(text_bytes, settings)
    stage = _fit_stage(listing, settings, counter, focus) if explain or lazy else None
    try:
        for start in range(0, len(work), _CHUNK):
            chunk = work[start : start + _CHUNK]
            for w in chunk:
                _read(listing.root, w, rules, render_key)
            known = counter.known_files([w.key for w in chunk if w.key], not lazy) if reuse else {}
            fresh = []
            for w in chunk:
                if w.key in known:
                    w.reuse(known[w.key])
                elif w.key:
                    _decode(w)
                    computed.append(w)
                    if w.reason is None:
                        fresh.append(w)
            if settings.redact:
                _redact(fresh, counter)
            for w in fresh:
                _render(w, settings, counter)
                if stage is not None:
                    stage.see(w.candidate.path, w.key, w.content, w.text or "")
                if not keep_file_text:
                    w.text = None
            counter.submit(fresh)
            progress("read", min(start + _CHUNK, len(work)), len(work))
        # Stored while the last counts are still being made; a result is used only with its count.
        if store:
            counter.remember_files({w.key: w.result(settings.tokenizer) for w in computed})
        counter.finish()
        kept = [w for w in work if w.reason is None]
        reread = functools.partial(_texts_again, listing.root, work, rules, render_key, counter, settings)
        sections = functools.partial(_sections_again, listing.root, rules, render_key, counter, settings)

        def make_stage() -> FitStage:
            return stage if stage is not None else _fit_stage(listing, settings, counter, focus)

        fitted = _fit(listing, work, kept, settings, counter, make_stage, reread, sections, explain)
    finally:
        counter.close()

    files = tuple(_packed(w, fitted) for w in work)
    prefix = ""
    if listing.repo_root is not None and listing.repo_root != listing.root:
        prefix = listing.root.relative_to(listing.repo_root).as_posix() + "/"
    return Pack(
        root=listing.root,
        files=files,
        parts=fitted.parts,
        prompt_tokens=fitted.tokens,
        tokenizer=settings.tokenizer,
        budget=settings.pack_budget,
        style=settings.style,
        in_git=listing.in_git,
        settings=settings,
        prefix=prefix,
        warnings=tuple(warnings),
        ranking=fitted.ranking,
    )


def _check_include(listing: Listing, rules: filters.Rules, settings: Settings, warnings: list[str]) -> None:
    """``-i`` that matches no file at all is a mistake worth stopping for; one of several that
    matches nothing is worth a warning."""
    if not settings.include:
        return
    files = [c.path for c in listing.candidates if c.kind == "file"]
    unmatched = filters.unmatched_patterns(settings.include, files)
    if len(unmatched) == len(settings.include):
        shown = " ".join(f"-i {p!r}" for p in settings.include)
        raise UsageError(
            f"{shown}: no file in {listing.root} matches",
            "patterns use gitignore syntax relative to PATH, e.g. '*.py', 'src/', 'src/**/*.ts'",
        )
    warnings.extend(f"--include {p!r} matches no file" for p in unmatched)


_CHUNK = 64  # files read, rendered and handed to the counting threads at a time
# A cold run with at least this many bytes of files counts in a helper process (countworker.py):
# its start-up (~0.35 s, on the other core) then hides behind this process's own work.
_WORKER_MIN_BYTES = 1_000_000

# The modules whose code decides what a file's section is: a change to any of them (a new
# wholerepo, or a local edit) must not reuse sections rendered by the old code.
_RENDERING_MODULES = ("packer.py", "filters.py", "redact.py", "styles.py", "tokens.py", "vocab.py")
# Files that carry the versions of the libraries whose behaviour shapes a section: the secret
# detectors (redaction) and the tokenizer engine (counts). Read, not imported.
_LIBRARY_VERSION_FILES = (("detect_secrets", "__version__.py"), ("tiktoken", "__init__.py"))


def _library_versions() -> bytes:
    found = []
    for package, name in _LIBRARY_VERSION_FILES:
        spec = importlib.util.find_spec(package)
        try:
            if spec is None or spec.origin is None:
                raise OSError(package)
            found.append(package.encode() + b"\0" + (Path(spec.origin).parent / name).read_bytes())
        except OSError:
            found.append(package.encode() + b"\0missing")
    return b"\0".join(found)


@functools.lru_cache(maxsize=4)
def _code_digest(modules: tuple[str, ...] = _RENDERING_MODULES) -> str:
    """A digest of wholerepo's ``modules`` (read, not imported) and of the library versions."""
    digest = hashlib.blake2b(_library_versions(), digest_size=16)
    here = Path(__file__).parent
    for name in modules:
        try:
            digest.update(name.encode() + b"\0" + (here / name).read_bytes())
        except OSError:  # installed without sources (zipapp, frozen): never reuse across runs
            digest.update(os.urandom(16))
    return digest.hexdigest()


def _render_key(settings: Settings) -> bytes:
    """Everything besides the path and the bytes that decides a file's section and its count."""
    parts = (
        _code_digest(),
        settings.tokenizer,
        settings.style,
        settings.line_numbers,
        str(settings.line_number_interval),
        str(settings.redact),
    )
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=16).digest()


def _read(root: Path, w: _Work, rules: filters.Rules, render_key: bytes) -> None:
    """Read one file and key it by content, recording a skip reason instead of raising."""
    reason = filters.by_path(w.candidate, rules)
    if reason is not None:
        w.reason = str(reason)
        if w.candidate.kind == "file":
            try:
                w.size = os.lstat(os.path.join(root, w.candidate.path)).st_size
            except OSError:
                pass
        return
    try:
        w.data = read_bytes(root, w.candidate.path, rules.max_file_size)
    except FileTooLarge as exc:
        w.size, w.reason = exc.size, str(filters.Reason.TOO_LARGE)
        return
    except OSError:
        w.reason = str(filters.Reason.UNREADABLE)
        return
    w.size = len(w.data)
    w.content = content = hashlib.blake2b(w.data, digest_size=20).digest()
    path = w.candidate.path.encode("utf-8", "surrogateescape")
    w.key = hashlib.blake2b(render_key + content + path, digest_size=20).hexdigest()


def _decode(w: _Work) -> None:
    """Decode the bytes read and apply the skips that need the content."""
    data, w.data = w.data, b""
    decoded = filters.decode(data)
    if isinstance(decoded, filters.Reason):
        w.reason = str(decoded)
        return
    late = filters.by_content(data, decoded.text)
    if late is not None:
        w.reason = str(late)
        return
    w.text = decoded.text
    w.encoding = decoded.encoding
    w.lines = _line_count(decoded.text)


def _render(w: _Work, settings: Settings, counter: _Counter) -> None:
    # What is sent is what is counted: control-token strings are broken in the output.
    w.text = counter.defang(w.text or "")
    entry = styles.Entry(
        w.candidate.path, _numbered(w.text, settings), w.lines, language=styles.language_of(w.candidate.path)
    )
    section = styles.render_section(settings.style, entry, last=False)
    # The text is defanged already; only the path could bring a control token in.
    w.section = counter.defang(section) if may_hold_control_token(w.candidate.path) else section


def _line_count(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") or not text else 1)


def redaction_key(path: str, content: bytes) -> str:
    """A cache key for "this file, with these bytes, holds no secret" under the current rules.

    ``content`` is a digest of the file's bytes: its text follows from them (decoding is a pure
    function of the bytes), so the text need not be hashed again.
    """
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape") + b"\0" + content, digest_size=20)
    # Any change to the rules or to decoding invalidates what the cache knows about clean files;
    # the sources are read, not imported, so a warm run that needs no redaction compiles no rule.
    return f"redact-{_code_digest(('redact.py', 'filters.py'))}:{digest.hexdigest()}"


def _redact(kept: list[_Work], counter: _Counter) -> None:
    """Redact secrets; files the cache knows to be clean (same path, same text) are not scanned."""
    keys = [redaction_key(w.candidate.path, w.content) for w in kept]
    known = counter.cached(keys)
    clean: dict[str, int] = {}
    redactor = None
    for w, key in zip(kept, keys, strict=True):
        if known.get(key) == 0:
            continue
        if redactor is None:
            from .redact import Redactor

            redactor = Redactor()
        w.text, w.redactions = redactor.redact(w.candidate.path, w.text or "")
        w.lines = _line_count(w.text)
        if not w.redactions:
            clean[key] = 0
    counter.remember(clean)


class _Counter:
    """Counts texts exactly, through the cache, while the packer goes on reading and rendering.

    A run that starts cold counts in a helper process (countworker.py), started at once, which
    builds the tokenizer on another core while this process discovers, reads and renders.
    Otherwise misses are counted here, on threads (tiktoken releases the GIL while it encodes),
    with the tokenizer loaded at the first miss. Either way the counts are the same tokenizer's.
    """

    def __init__(
        self, settings: Settings, tokenizer: Tokenizer | None, progress: Progress, text_bytes: int = 0
    ) -> None:
        self.name = settings.tokenizer
        self._tokenizer = tokenizer
        self._progress = progress
        self._cache = TokenCache(default_cache_dir() if settings.cache else None)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[tuple[_Work, str, Future[int] | None]] = []
        # The helper pays off when much text is to be counted and the tokenizer is not loaded yet;
        # one the CLI started before its imports is used whatever the size (it is running).
        cold = tokenizer is None and self._cache.empty and not is_loaded(self.name)
        self._worker = take_prestarted(self.name)
        if self._worker is not None and not cold:
            self._worker.close()
            self._worker = None
        if self._worker is None and cold and text_bytes >= _WORKER_MIN_BYTES:
            try:
                self._worker = CountWorker(self.name)
            except OSError:  # no interpreter to start (embedded Python): count in-process
                pass

    @property
    def caching(self) -> bool:
        return self._cache.enabled

    @property
    def cache(self) -> TokenCache:
        return self._cache

    def cached(self, keys: list[str]) -> dict[str, int]:
        return self._cache.get_many(keys)

    def remember(self, items: dict[str, int]) -> None:
        self._cache.put_many(items)

    def known_files(self, keys: list[str], sections: bool = True) -> dict[str, FileResult]:
        return self._cache.get_files(keys, sections)

    def remember_files(self, items: dict[str, FileResult]) -> None:
        self._cache.put_files(items)

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = get_tokenizer(self.name)
        return self._tokenizer

    def defang(self, text: str) -> str:
        """Break control-token strings (needs the tokenizer's control tokens, not its vocabulary)."""
        if not may_hold_control_token(text):
            return text
        special = self._tokenizer.special if self._tokenizer is not None else control_tokens(self.name)
        return defang(text, special)

    def submit(self, works: list[_Work]) -> None:
        """Start counting the sections of ``works``; cached counts are filled in at once."""
        keys = [text_key(self.name, w.section) for w in works]
        known = self._cache.get_many(keys)
        for w, key in zip(works, keys, strict=True):
            if key in known:
                w.tokens = known[key]
            elif self._send(w.section):
                self._pending.append((w, key, None))
            else:
                self._pending.append((w, key, self._threads().submit(self.tokenizer.count_sent, w.section)))

    def _send(self, text: str) -> bool:
        """Hand ``text`` to the helper, if there is one that still works."""
        if self._worker is None:
            return False
        try:
            self._worker.send(text)
            return True
        except WorkerFailed:
            return False  # finish() recounts what the helper had

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            _ = self.tokenizer  # loaded on this thread, before any counting thread starts
            self._pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
        return self._pool

    def _answers(self, texts: list[str]) -> list[int]:
        """The helper's counts of ``texts`` (everything sent since the last answers)."""
        worker = self._worker
        if worker is not None:
            try:
                return worker.answers()
            except WorkerFailed:
                worker.close()
                self._worker = None
        # No helper, or it failed: the same counts here (a tokenizer that cannot be loaded
        # raises its own error now).
        return [self.tokenizer.count_sent(t) for t in texts]

    def finish(self) -> None:
        """Wait for every submitted count and store the new ones."""
        answers = iter(self._answers([w.section for w, _, f in self._pending if f is None]))
        fresh: dict[str, int] = {}
        total = len(self._pending)
        for done, (w, key, future) in enumerate(self._pending, 1):
            w.tokens = fresh[key] = next(answers) if future is None else future.result()
            if done % _CHUNK == 0 or done == total:
                self._progress("count", done, total)
        self._pending = []
        self._cache.put_many(fresh)

    def count(self, texts: list[str]) -> list[int]:
        """Exact counts of whole output pieces (already defanged), through the cache."""
        keys = [text_key(self.name, t) for t in texts]
        known = self._cache.get_many(keys)
        missing = [(k, t) for k, t in zip(keys, texts, strict=True) if k not in known]
        sent = [t for _, t in missing if self._send(t)]
        counts = self._answers(sent) if sent else []
        fresh = {k: n for (k, _), n in zip(missing, counts, strict=False)}
        fresh.update({k: self.tokenizer.count_sent(t) for k, t in missing if k not in fresh})
        self._cache.put_many(fresh)
        known.update(fresh)
        return [known[k] for k in keys]

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._cache.close()


def _header(
    listing: Listing, paths: list[str], settings: Settings, skipped: int, dropped: int, compressed: int = 0
) -> str:
    notes = []
    if not listing.in_git:
        notes.append("The directory is not a git repository: files were chosen by its .gitignore files.")
    if skipped:
        notes.append(f"{skipped} listed files are not shown (binary, generated, too large, ...).")
    if dropped:
        notes.append(f"{dropped} files did not fit the token budget and are not shown.")
    if compressed:
        notes.append(_compressed_note(compressed))
    header = styles.Header(
        styles.render_tree(paths), tuple(notes), settings.line_numbers, settings.line_number_interval
    )
    return styles.render_header(settings.style, header, len(paths))


@dataclass(frozen=True)
class _Fitted:
    """What fitting decided: a status per path (absent: included whole) and the output."""

    parts: tuple[str, ...]
    tokens: int
    outcome: Outcome | None = None  # fit/'s decision, when the repository exceeded the budget
    ranking: tuple[Ranked, ...] = ()

    @functools.cached_property
    def _by_path(self) -> dict[str, Ranked]:
        return {r.path: r for r in self.ranking}

    def ranked(self, path: str) -> Ranked | None:
        return self._by_path.get(path) if self.ranking else None


def _fit(
    listing: Listing,
    work: list[_Work],
    kept: list[_Work],
    settings: Settings,
    counter: _Counter,
    make_stage: Callable[[], FitStage],
    reread: Callable[[Iterable[str]], dict[str, str]],
    load_sections: Callable[[Iterable[_Work]], None],
    explain: bool,
) -> _Fitted:
    """Everything if it fits; otherwise fit/ ranks, compresses and chooses. The count is exact."""
    style, limit = settings.style, settings.pack_budget
    skipped = len(work) - len(kept)
    by_path = {w.candidate.path: w for w in kept}
    footer = styles.render_footer(style)

    def assemble(
        compressed: Mapping[str, tuple[str, int]], whole: Iterable[str]
    ) -> tuple[tuple[str, ...], int]:
        paths = sorted([*compressed, *whole])
        load_sections(by_path[p] for p in whole)
        dropped = len(kept) - len(paths)
        head = counter.defang(_header(listing, paths, settings, skipped, dropped, len(compressed)))
        sections = [compressed[p][0] if p in compressed else by_path[p].section for p in paths]
        tokens = [compressed[p][1] if p in compressed else by_path[p].tokens for p in paths]
        if style == "json" and paths:
            # The last array element has no trailing comma: "},\n" becomes "}\n".
            sections[-1] = sections[-1][:-2] + "\n"
            head_n, last_n, foot_n = counter.count([head, sections[-1], footer])
            tokens[-1] = last_n
        else:
            head_n, foot_n = counter.count([head, footer])
        return (head, *sections, footer), head_n + sum(tokens) + foot_n

    _empty_text, empty_n = assemble({}, ())
    if empty_n > limit:
        raise BudgetError(
            f"budget of {limit} tokens is too small for even the prompt's frame ({empty_n} tokens)",
            "raise --budget",
        )
    # Sections add up exactly and the tree only adds tokens: over this sum, nothing to try.
    if empty_n + sum(w.tokens for w in kept) <= limit:
        text, n = assemble({}, by_path)
        if n <= limit:
            ranking = make_stage().rank_only(_fit_inputs(kept), reread) if explain else ()
            return _Fitted(text, n, ranking=ranking)
    # The frame: the header with an empty tree, plus the note on compressed files it may get.
    frame = empty_n + counter.count([_compressed_note(len(kept))])[0] + 2
    outcome = make_stage().run(
        _fit_inputs(kept), limit=limit, frame=frame, assemble=assemble, count=counter.count, reread=reread
    )
    return _Fitted(outcome.parts, outcome.tokens, outcome, outcome.ranking)


# -- fitting (fit/): the packer's side of the seam --------------------------------------------------


def _compressed_note(files: int) -> str:
    from .fit.skeleton import NOTE

    return f"{files} files are compressed to fit the token budget. {NOTE}"


def _likely_over(text_bytes: int, settings: Settings) -> bool:
    """Whether the files' bytes suggest the budget will be exceeded (then fit/ parses as it reads).

    Code runs at about 3.5 bytes per DeepSeek V4 token; below 2 bytes per token of budget the
    pack fits unless its text is unusually dense."""
    return text_bytes > 2 * settings.pack_budget


def _fit_stage(listing: Listing, settings: Settings, counter: _Counter, focus: Focus | None) -> FitStage:
    from .fit.stage import FitStage

    text_key = hashlib.blake2b(
        "\0".join((_code_digest(), settings.tokenizer, str(settings.redact))).encode(), digest_size=16
    ).digest()
    return FitStage(
        listing.root,
        settings,
        counter.cache,
        text_key,
        focus=focus,
        in_git=listing.in_git,
        defang=counter.defang,
    )


def _fit_inputs(kept: list[_Work]) -> list[FileIn]:
    from .fit.stage import FileIn

    return [FileIn(w.candidate.path, w.key, w.content, w.tokens) for w in kept]


def _sections_again(
    root: Path,
    rules: filters.Rules,
    render_key: bytes,
    counter: _Counter,
    settings: Settings,
    works: Iterable[_Work],
) -> None:
    """Give files taken from the cache without their section (``known_files(..., False)``) their
    section: from the cache, else rendered again from the file."""
    lazy = [w for w in works if not w.section]
    if not lazy:
        return
    found = counter.cache.get_sections([w.key for w in lazy])
    for w in lazy:
        w.section = found.get(w.key, "")
        if not w.section:  # gone from the cache meanwhile: the same bytes render the same section
            again = _Work(w.candidate)
            _read(root, again, rules, render_key)
            _decode(again)
            if settings.redact:
                _redact([again], counter)
            _render(again, settings, counter)
            w.section = again.section
            if again.key != w.key:  # and the file changed since it was counted: count it again
                w.tokens = counter.count([w.section])[0]


def _texts_again(
    root: Path,
    work: list[_Work],
    rules: filters.Rules,
    render_key: bytes,
    counter: _Counter,
    settings: Settings,
    paths: Iterable[str],
) -> dict[str, str]:
    """The text as sent (decoded, redacted, defanged) of files whose text was not kept; a file
    whose bytes changed since it was counted is left out."""
    wanted = set(paths)
    fresh = []
    kept_text = {}
    for w in work:
        if w.candidate.path in wanted and w.reason is None and w.text is not None:
            kept_text[w.candidate.path] = w.text  # decoded in this run and kept (keep_file_text)
        elif w.candidate.path in wanted:
            again = _Work(w.candidate)
            _read(root, again, rules, render_key)
            if again.key == w.key and again.reason is None:
                _decode(again)
                if again.reason is None:
                    fresh.append(again)
    if settings.redact:
        _redact(fresh, counter)
    return kept_text | {w.candidate.path: counter.defang(w.text or "") for w in fresh}


def _numbered(text: str, settings: Settings) -> str:
    return styles.number_lines(text, settings.line_numbers, settings.line_number_interval)


def _packed(w: _Work, fitted: _Fitted) -> PackedFile:
    path = w.candidate.path
    if w.reason is not None:
        return PackedFile(path, "skipped", w.reason, 0, w.size, 0, w.encoding)
    ranked = fitted.ranked(path)
    outcome = fitted.outcome
    status = outcome.status.get(path, "included") if outcome is not None else "included"
    if status == "over-budget":
        return PackedFile(
            path, "skipped", str(filters.Reason.OVER_BUDGET), w.tokens, w.size, w.lines, w.encoding,
            w.redactions, ranked=ranked,
        )  # fmt: skip
    if status == "compressed":
        assert outcome is not None
        c = outcome.compressed[path]
        return PackedFile(
            path, "compressed", c.reason, c.tokens, w.size, w.lines, w.encoding, w.redactions, w.text,
            elided=c.elided, full_tokens=w.tokens, ranked=ranked,
        )  # fmt: skip
    return PackedFile(
        path, "included", None, w.tokens, w.size, w.lines, w.encoding, w.redactions, w.text, ranked
    )


def summarize(pack: Pack, top: int = 5) -> dict[str, Any]:
    """Counts for the summary: by status and reason, largest files and directories by tokens."""
    reasons: dict[str, int] = {}
    where: dict[str, dict[str, int]] = {}  # reason -> top directory -> files
    for f in pack.skipped:
        reasons[f.reason or "?"] = reasons.get(f.reason or "?", 0) + 1
        if f.reason in ("vendored", "wholerepo-output"):
            top_dir = _top_dir(f.path)
            counts = where.setdefault(f.reason, {})
            counts[top_dir] = counts.get(top_dir, 0) + 1
    included = pack.included
    dirs: dict[str, int] = {}
    for f in included:
        parent = str(PurePosixPath(f.path).parent)
        dirs[parent if parent != "." else "(root)"] = (
            dirs.get(parent if parent != "." else "(root)", 0) + f.tokens
        )
    return {
        "included": len(included),
        "skipped": len(pack.skipped),
        "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "largest_files": sorted(((f.path, f.tokens) for f in included), key=lambda x: (-x[1], x[0]))[:top],
        "largest_dirs": sorted(dirs.items(), key=lambda x: (-x[1], x[0]))[:top],
        "redactions": sum(len(f.redactions) for f in pack.files),
        "redacted_files": sorted(f.path for f in pack.files if f.redactions),
        "skipped_dirs": {
            reason: [d for d, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
            for reason, counts in where.items()
        },
    }


def _top_dir(path: str) -> str:
    """The directory that names a vendored tree: the path up to node_modules/, .venv/ and the like."""
    parts = path.split("/")
    for i, part in enumerate(parts[:2]):  # frontend/node_modules/, not .venv/lib/.../site-packages/
        if part in filters.VENDORED_DIRS and i < len(parts) - 1:
            return "/".join(parts[: i + 1]) + "/"
    return path if len(parts) == 1 else parts[0] + "/"
