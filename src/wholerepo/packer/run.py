"""The packer: discover -> filter -> (redact) -> count with cache -> fit the budget -> render.

``pack()`` is a straight sequence; each stage lives in its own module. Files go through it in
chunks, so counting (the TokenCounter, on threads or in a worker process) runs while later files
are still read and rendered, and a file the cache knows skips straight to its stored section. The total
it reports is the exact token count of the text it returns: sections are framed so that their
cached counts add up to the count of the whole (see styles.py).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..git.listing import Candidate, FileTooLarge, Listing, NotAFile, Reader, discover, read_bytes
from ..git.repo import work_tree
from ..redact.paths import redact_path
from ..sanitize import escape_path, unescape_path
from ..settings import FIELDS, Settings, Trust, load_settings
from ..tokens import Tokenizer, may_need_defang
from ..tokens.counter import Batch, TokenCounter, text_key
from . import decode as decoding
from . import fit as budgeting
from . import render as styles
from . import select as filters
from .cache import FileResult, TokenCache, default_cache_dir
from .model import Pack, PackedFile

if TYPE_CHECKING:
    from ..fit.stage import FileIn, FitStage, Focus

Progress = Callable[[str, int, int], None]


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
    count_key: str = ""  # the cache key of the section's count, once submitted

    def result(self, tokenizer: str) -> FileResult:
        count_key = (self.count_key or text_key(tokenizer, self.section)) if self.reason is None else ""
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
    return replace(listing, candidates=tuple(c for c in listing.candidates if c.fs_path not in paths))


def _read_ignore_file(place: Path) -> list[str] | None:
    try:
        text = read_bytes(place, filters.IGNORE_FILE, 1 << 20)
    except (OSError, FileTooLarge):  # absent, a link, a FIFO...: not read
        return None
    return text.decode("utf-8", "replace").splitlines()


def _rules(listing: Listing, settings: Settings, *, ignore_files: bool = True) -> filters.Rules:
    """Selection rules, with every .wholerepoignore from the repository root down.

    The packed directory's own file and those of its parent directories (up to the repository
    root) are read whatever git thinks of them; deeper ones are read if git lists them.
    """
    files: dict[str, list[str]] = {}
    prefix = ""
    if listing.repo_root is not None and listing.repo_root != listing.root:
        prefix = listing.root.relative_to(listing.repo_root).as_posix() + "/"
    if not ignore_files:
        return filters.Rules.build(
            settings.include,
            settings.exclude,
            None,
            settings.max_file_size,
            root_prefix=prefix,
            vendored=filters.vendored_roots(c.fs_path for c in listing.candidates),
        )
    if prefix and listing.repo_root is not None:
        parts = prefix.split("/")[:-1]
        for depth in range(len(parts)):
            base = "".join(part + "/" for part in parts[:depth])
            lines = _read_ignore_file(listing.repo_root / base)
            if lines is not None:
                files[base] = lines
    for c in listing.candidates:
        directory, _, name = c.fs_path.rpartition("/")
        if name == filters.IGNORE_FILE and c.kind == "file" and directory:
            try:
                text = read_bytes(listing.root, c.fs_path, 1 << 20).decode("utf-8", "replace")
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
        vendored=filters.vendored_roots(c.fs_path for c in listing.candidates),
    )


def settings_for(
    path: Path, overrides: Mapping[str, Any] | None = None, *, repository: Trust | None = None
) -> Settings:
    """Settings for packing ``path``: the user's file, its repository's file (trusted as far as
    ``repository`` says; see config.py), the environment, then ``overrides`` (flags)."""
    directories = [path]
    try:
        top = work_tree(path)
    except UsageError:  # git unusable: only the path's own file counts
        top = None
    if top is not None and top != path.resolve():
        directories.insert(0, top)
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
    selection_files: bool = True,
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
    ``selection_files=False`` applies no ``.wholerepoignore`` file and no linguist attribute of
    the checkout: a pull request that changes them cannot hide its own files from its review.
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
    if not selection_files:
        listing = replace(
            listing, candidates=tuple(replace(c, attributes=frozenset()) for c in listing.candidates)
        )
    rules = _rules(listing, settings, ignore_files=selection_files)
    warnings = list(rules.warnings)
    _check_include(listing, rules, settings, warnings)
    work = [_Work(c) for c in listing.candidates]
    text_bytes = sum(c.size for c in listing.candidates if c.size <= settings.max_file_size)
    render_key = _render_key(settings)
    cache = TokenCache(default_cache_dir() if settings.cache else None)
    counter = TokenCounter.for_run(
        settings.tokenizer,
        store=cache if cache.enabled else None,
        cold=cache.empty,
        text_bytes=text_bytes,
        tokenizer=tokenizer,
    )
    # A warm run takes each unchanged file's section from the cache; callers that want the
    # file's text (the reviewer's verifier) get it decoded and redacted afresh.
    # Sections are stored only redacted: with --no-redact they would hold the secrets.
    store = cache.enabled and settings.redact
    reuse = store and not keep_file_text
    computed: list[_Work] = []  # files decoded in this run (not taken from the cache)
    batches: list[tuple[list[_Work], Batch]] = []  # sections being counted meanwhile
    reader = Reader(listing.root)
    # Over the budget, fit/ parses each decoded file while its text is at hand, and the sections
    # the cache has are read only for the files sent.
    lazy = budgeting.likely_over(text_bytes, settings)

    def make_stage() -> FitStage:
        return budgeting.fit_stage(listing, settings, counter, cache, focus, code_digest())

    stage = make_stage() if explain or lazy else None
    try:
        for start in range(0, len(work), _CHUNK):
            chunk = work[start : start + _CHUNK]
            for w in chunk:
                _read(reader, w, rules, render_key)
            known = cache.get_files([w.key for w in chunk if w.key], not lazy) if reuse else {}
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
                _redact(fresh, cache)
            for w in fresh:
                _render(w, settings, counter)
                if stage is not None:
                    stage.see(w.candidate.path, w.key, w.content, w.text or "")
                if not keep_file_text:
                    w.text = None
            batch = counter.submit([w.section for w in fresh])
            for w, key in zip(fresh, batch.keys, strict=True):
                w.count_key = key
            batches.append((fresh, batch))
            progress("read", min(start + _CHUNK, len(work)), len(work))
        # Stored while the last counts are still being made; a result is used only with its count.
        if store:
            cache.put_files({w.key: w.result(settings.tokenizer) for w in computed})
        for done, (works, batch) in enumerate(batches, 1):
            for w, n in zip(works, batch.result(), strict=True):
                w.tokens = n
            progress("count", done, len(batches))
        kept = [w for w in work if w.reason is None]
        reread = functools.partial(_texts_again, reader, work, rules, render_key, counter, cache, settings)
        sections = functools.partial(_sections_again, reader, rules, render_key, counter, cache, settings)
        fitted = budgeting.fit(
            listing, work, kept, settings, counter, lambda: stage or make_stage(), reread, sections, explain
        )
    finally:
        reader.close()
        counter.close()
        cache.close()

    files = tuple(_packed(w, fitted, settings.redact) for w in work)
    prefix = ""
    if listing.repo_root is not None and listing.repo_root != listing.root:
        prefix = escape_path(listing.root.relative_to(listing.repo_root).as_posix() + "/")
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
    files = [c.fs_path for c in listing.candidates if c.kind == "file"]
    unmatched = filters.unmatched_patterns(settings.include, files)
    if len(unmatched) == len(settings.include):
        source = settings.sources.get("include", "flag")
        if source.startswith("repo:"):  # the repository's own pattern: name its file, not -i
            shown = f"include {list(settings.include)!r} in {source[5:]}"
        else:
            shown = " ".join(f"-i {p!r}" for p in settings.include)
        raise UsageError(
            f"{shown}: no file in {listing.root} matches",
            "patterns use gitignore syntax relative to PATH, e.g. '*.py', 'src/', 'src/**/*.ts'",
        )
    warnings.extend(f"--include {p!r} matches no file" for p in unmatched)


_CHUNK = 64  # files read, rendered and handed to the counter at a time

# Files that carry the versions of the libraries whose behaviour shapes a section: the tokenizer
# engine (counts). Read, not imported. (The secret detectors are wholerepo's own.)
_LIBRARY_VERSION_FILES = (("tiktoken", "__init__.py"),)


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


def source_files() -> list[Path]:
    """Every source file of wholerepo: its modules and templates."""
    package = Path(__file__).resolve().parent.parent
    return sorted(
        p for p in package.rglob("*") if p.suffix in (".py", ".j2") and "__pycache__" not in p.parts
    )


@functools.cache
def code_digest() -> str:
    """A digest of every source file of wholerepo (read, not imported) and of the library versions.

    Every file, not a hand-kept list: a section rendered by other code is never reused, whichever
    module changed or moved.
    """
    digest = hashlib.blake2b(_library_versions(), digest_size=16)
    package = Path(__file__).resolve().parent.parent
    files = source_files()
    if not files:  # installed without sources (zipapp, frozen): never reuse across runs
        digest.update(os.urandom(16))
    for file in files:
        try:
            digest.update(file.relative_to(package).as_posix().encode() + b"\0" + file.read_bytes())
        except OSError:
            digest.update(os.urandom(16))
    return digest.hexdigest()


def _render_key(settings: Settings) -> bytes:
    """Everything besides the path and the bytes that decides a file's section and its count."""
    parts = (
        code_digest(),
        settings.tokenizer,
        settings.style,
        settings.line_numbers,
        str(settings.line_number_interval),
        str(settings.redact),
    )
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=16).digest()


def _read(reader: Reader, w: _Work, rules: filters.Rules, render_key: bytes) -> None:
    """Read one file and key it by content, recording a skip reason instead of raising."""
    reason = filters.by_path(w.candidate, rules)
    if reason is not None:
        w.reason = str(reason)
        w.size = w.candidate.size
        return
    try:
        w.data = reader.read(w.candidate.fs_path, rules.max_file_size)
    except FileTooLarge as exc:
        # A large pack or report of an earlier run is still named as what it is.
        large = filters.Reason.OWN_OUTPUT if decoding.is_own_output(exc.head) else filters.Reason.TOO_LARGE
        w.size, w.reason = exc.size, str(large)
        return
    except NotAFile as exc:  # replaced since it was listed: a link, a FIFO, a device...
        reason = filters.Reason.SYMLINK if exc.kind == "symlink" else filters.Reason.SPECIAL
        w.reason = str(reason)
        return
    except OSError:
        w.reason = str(filters.Reason.UNREADABLE)
        return
    w.size = len(w.data)
    w.content = content = hashlib.blake2b(w.data, digest_size=20).digest()
    w.key = _file_key(render_key, content, w.candidate.path)


def _file_key(render_key: bytes, content: bytes, path: str) -> str:
    path_bytes = path.encode("utf-8", "surrogateescape")
    return hashlib.blake2b(render_key + content + path_bytes, digest_size=20).hexdigest()


def fit_inputs_of(pack: Pack) -> list[FileIn]:
    """fit/'s view of a pack's included files (path, the packer's key, digest, exact tokens), for
    work on a finished pack that shares its cache entries (the audit's graph and outlines)."""
    from ..fit.stage import FileIn

    render_key = _render_key(pack.settings)
    return [
        FileIn(f.path, _file_key(render_key, f.digest, f.path), f.digest, f.tokens)
        for f in pack.files
        if f.status == "included"
    ]


def texts_of(pack: Pack) -> Callable[[Iterable[str]], dict[str, str]]:
    """Read again, as sent, the texts of a pack's included files: a ``reread`` for fit/ that keeps
    nothing in memory (a file that changed or vanished since it was packed is left out)."""
    included = {f.path: f for f in pack.files if f.status == "included"}

    def reread(paths: Iterable[str]) -> dict[str, str]:
        found = {}
        for path in paths:
            f = included.get(path)
            if f is None:
                continue
            try:
                found[path] = file_text(pack, f)
            except FileChanged:
                continue
        return found

    return reread


def _decode(w: _Work) -> None:
    """Decode the bytes read and apply the skips that need the content."""
    data, w.data = w.data, b""
    decoded = decoding.decode(data)
    if not isinstance(decoded, decoding.Decoded):
        w.reason = str(decoded)
        return
    late = decoding.by_content(data, decoded.text)
    if late is not None:
        w.reason = str(late)
        return
    w.text = decoded.text
    w.encoding = decoded.encoding
    w.lines = _line_count(decoded.text)


def _render(w: _Work, settings: Settings, counter: TokenCounter) -> None:
    # What is sent is what is counted: control-token strings are broken in the output.
    w.text = counter.defang(w.text or "")
    entry = styles.Entry(
        w.candidate.path, _numbered(w.text, settings), w.lines, language=styles.language_of(w.candidate.path)
    )
    section = styles.render_section(settings.style, entry, last=False)
    # The text is defanged already; only the path could bring a control token or marker in.
    w.section = counter.defang(section) if may_need_defang(w.candidate.path) else section


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
    return f"redact-{code_digest()}:{digest.hexdigest()}"


def _redact(kept: list[_Work], cache: TokenCache) -> None:
    """Redact secrets; files the cache knows to be clean (same path, same text) are not scanned."""
    keys = [redaction_key(w.candidate.path, w.content) for w in kept]
    known = cache.get_many(keys)
    clean: dict[str, int] = {}
    redactor = None
    for w, key in zip(kept, keys, strict=True):
        if known.get(key) == 0:
            continue
        if redactor is None:
            from ..redact import Redactor

            redactor = Redactor()
        w.text, w.redactions = redactor.redact(w.candidate.path, w.text or "")
        w.lines = _line_count(w.text)
        if not w.redactions:
            clean[key] = 0
    cache.put_many(clean)


def _numbered(text: str, settings: Settings) -> str:
    return styles.number_lines(text, settings.line_numbers, settings.line_number_interval)


def _packed(w: _Work, fitted: budgeting.Fitted, redact: bool) -> PackedFile:
    path = w.candidate.path
    if w.reason is not None:
        if redact:  # a token in a file or directory name: skipped (reason secret), name shown redacted
            path = redact_path(path)[0]
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
            digest=w.content, elided=c.elided, full_tokens=w.tokens, ranked=ranked,
        )  # fmt: skip
    return PackedFile(
        path, "included", None, w.tokens, w.size, w.lines, w.encoding, w.redactions, w.text,
        digest=w.content, ranked=ranked,
    )  # fmt: skip


# -- fitting (fit/): the packer's side of the seam --------------------------------------------------


def _sections_again(
    reader: Reader,
    rules: filters.Rules,
    render_key: bytes,
    counter: TokenCounter,
    cache: TokenCache,
    settings: Settings,
    works: Iterable[_Work],
) -> None:
    """Give files taken from the cache without their section (``get_files(..., False)``) their
    section: from the cache, else rendered again from the file."""
    lazy = [w for w in works if not w.section]
    if not lazy:
        return
    found = cache.get_sections([w.key for w in lazy])
    for w in lazy:
        w.section = found.get(w.key, "")
        if not w.section:  # gone from the cache meanwhile: the same bytes render the same section
            again = _Work(w.candidate)
            _read(reader, again, rules, render_key)
            _decode(again)
            if settings.redact:
                _redact([again], cache)
            _render(again, settings, counter)
            w.section = again.section
            if again.key != w.key:  # and the file changed since it was counted: count it again
                w.tokens = counter.count(w.section)


def _texts_again(
    reader: Reader,
    work: list[_Work],
    rules: filters.Rules,
    render_key: bytes,
    counter: TokenCounter,
    cache: TokenCache,
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
            _read(reader, again, rules, render_key)
            if again.key == w.key and again.reason is None:
                _decode(again)
                if again.reason is None:
                    fresh.append(again)
    if settings.redact:
        _redact(fresh, cache)
    return kept_text | {w.candidate.path: counter.defang(w.text or "") for w in fresh}


class FileChanged(UsageError):
    """A packed file changed on disk before its text was read again."""


def file_text(pack: Pack, f: PackedFile) -> str:
    """``f``'s text exactly as ``pack`` sent it: read, decoded, redacted and defanged again.

    Each step is a pure function of the file's bytes, so the text equals the one the section was
    rendered from, as long as the bytes are the same (checked against the pack's digest).
    """
    settings = pack.settings
    try:  # opened by the name the file system gives it (f.path is shown escaped)
        data = read_bytes(pack.root, unescape_path(f.path), settings.max_file_size)
    except (OSError, FileTooLarge) as exc:
        raise FileChanged(f"{f.path} cannot be read again: {exc}") from exc
    if f.digest and hashlib.blake2b(data, digest_size=20).digest() != f.digest:
        raise FileChanged(f"{f.path} changed on disk during the review")
    decoded = decoding.decode(data)
    if not isinstance(decoded, decoding.Decoded):
        raise FileChanged(f"{f.path} is no longer text")
    text = decoded.text
    if settings.redact:
        from ..redact import Redactor

        text = Redactor().redact(f.path, text)[0]
    return TokenCounter(settings.tokenizer).defang(text)
