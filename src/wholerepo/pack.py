"""The packer: discover -> filter -> (redact) -> count with cache -> fit the budget -> render.

``pack()`` is a straight sequence; each stage lives in its own module. The total it reports is
the exact token count of the text it returns: sections are framed so that their cached counts
add up to the count of the whole (see styles.py).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from . import budget as budgeting
from . import filters, styles
from .cache import TokenCache, default_cache_dir, text_key
from .config import Settings, load_settings
from .discover import Candidate, Listing, discover, read_bytes
from .errors import BudgetError, UsageError
from .redact import Redactor, redaction_key
from .tokens import Tokenizer, get_tokenizer, may_hold_control_token

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

    @functools.cached_property
    def text(self) -> str:
        """The whole rendered pack (joined on first use; writers can stream ``parts``)."""
        return "".join(self.parts)

    @property
    def included(self) -> tuple[PackedFile, ...]:
        return tuple(f for f in self.files if f.status != "skipped")

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
            "tokenizer": self.tokenizer,
            "budget": self.budget,
            "prompt_tokens": self.prompt_tokens,
            "style": self.style,
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
    text: str = ""
    redactions: tuple[str, ...] = ()
    section: str = ""
    tokens: int = 0


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


def _read_ignore_file(place: Path) -> list[str]:
    file = place / ".wholerepoignore"
    if file.is_file() and not file.is_symlink():
        return file.read_text(encoding="utf-8", errors="replace").splitlines()
    return []


def _rules(listing: Listing, settings: Settings) -> filters.Rules:
    """Selection rules: the packed directory's .wholerepoignore, and the repository root's."""
    outer: list[str] = []
    prefix = ""
    if listing.repo_root is not None and listing.repo_root != listing.root:
        outer = _read_ignore_file(listing.repo_root)
        prefix = listing.root.relative_to(listing.repo_root).as_posix() + "/"
    return filters.Rules.build(
        settings.include,
        settings.exclude,
        _read_ignore_file(listing.root),
        settings.max_file_size,
        outer_lines=outer,
        outer_prefix=prefix,
    )


def settings_for(path: Path, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings for packing ``path``: its repository's file, the environment, then overrides."""
    directories = [path]
    try:
        import git

        top = git.Repo(path, search_parent_directories=True).working_tree_dir
        if top is not None and Path(top).resolve() != path.resolve():
            directories.insert(0, Path(top))
    except Exception:  # not a repository, or git unusable: only the path's own file counts
        pass
    return load_settings(directories, flags=overrides or {})


def pack(
    path: str | os.PathLike[str] = ".",
    settings: Settings | None = None,
    *,
    on_progress: Progress | None = None,
    tokenizer: Tokenizer | None = None,
    keep_file_text: bool = True,
    omit: Iterable[str | os.PathLike[str]] = (),
    **options: Any,
) -> Pack:
    """Pack the repository (or plain directory) at ``path``.

    ``options`` are Settings fields (``budget=``, ``style=``, ``include=(...)``...) applied over
    the repository's configuration and the environment. ``keep_file_text=False`` drops each
    file's text once its section is rendered (``PackedFile.text`` is then None), which keeps the
    peak memory near twice the output's size. ``omit`` names files the caller writes (its output
    and manifest): left out of the listing, so packing twice into the repository gives the same text.
    """
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
    redactor = Redactor() if settings.redact else None
    work = [_Work(c) for c in listing.candidates]
    total = len(work)
    counter = _Counter(settings, tokenizer, progress)
    try:
        for done, w in enumerate(work, 1):
            _load(listing.root, w, rules)
            if done % 256 == 0:
                progress("read", done, total)
        progress("read", total, total)
        if redactor is not None:
            _redact(redactor, [w for w in work if w.reason is None], counter)
        for w in work:
            if w.reason is None:
                # What is sent is what is counted: control-token strings are broken in the output.
                w.text = counter.defang(w.text)
                entry = styles.Entry(
                    w.candidate.path,
                    _numbered(w, settings),
                    w.lines,
                    language=styles.language_of(w.candidate.path),
                )
                section = styles.render_section(settings.style, entry, last=False)
                # The text is defanged already; only the path could bring a control token in.
                w.section = counter.defang(section) if may_hold_control_token(w.candidate.path) else section
                if not keep_file_text:
                    w.text = ""

        kept = [w for w in work if w.reason is None]
        counts = counter.count([w.section for w in kept])
        for w, n in zip(kept, counts, strict=False):
            w.tokens = n
        chosen, text, prompt_tokens = _fit(listing, work, kept, settings, counter)
    finally:
        counter.close()

    files = tuple(_packed(w, chosen) for w in work)
    return Pack(
        root=listing.root,
        files=files,
        parts=text,
        prompt_tokens=prompt_tokens,
        tokenizer=settings.tokenizer,
        budget=settings.budget,
        style=settings.style,
        in_git=listing.in_git,
        settings=settings,
    )


def _load(root: Path, w: _Work, rules: filters.Rules) -> None:
    """Read, classify and decode one file, recording a skip reason instead of raising."""
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
        w.size = os.lstat(os.path.join(root, w.candidate.path)).st_size
        if w.size > rules.max_file_size:
            w.reason = str(filters.Reason.TOO_LARGE)
            return
        data = read_bytes(root, w.candidate.path)
    except OSError:
        w.reason = str(filters.Reason.UNREADABLE)
        return
    w.size = len(data)
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
    w.lines = _line_count(w.text)


def _line_count(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") or not text else 1)


def _redact(redactor: Redactor, kept: list[_Work], counter: _Counter) -> None:
    """Redact secrets; files the cache knows to be clean (same path, same text) are not scanned."""
    keys = [redaction_key(w.candidate.path, w.text) for w in kept]
    known = counter.cached(keys)
    clean: dict[str, int] = {}
    for w, key in zip(kept, keys, strict=True):
        if known.get(key) == 0:
            continue
        w.text, w.redactions = redactor.redact(w.candidate.path, w.text)
        w.lines = _line_count(w.text)
        if not w.redactions:
            clean[key] = 0
    counter.remember(clean)


class _Counter:
    """Counts texts exactly, through the cache; loads the tokenizer only on a miss."""

    def __init__(self, settings: Settings, tokenizer: Tokenizer | None, progress: Progress) -> None:
        self.name = settings.tokenizer
        self._tokenizer = tokenizer
        self._progress = progress
        self._cache = TokenCache(default_cache_dir() if settings.cache else None)

    def cached(self, keys: list[str]) -> dict[str, int]:
        return self._cache.get_many(keys)

    def remember(self, items: dict[str, int]) -> None:
        self._cache.put_many(items)

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = get_tokenizer(self.name)
        return self._tokenizer

    def defang(self, text: str) -> str:
        """Break control-token strings; loads the tokenizer only when ``text`` may hold one."""
        return self.tokenizer.defang(text) if may_hold_control_token(text) else text

    def count(self, texts: list[str]) -> list[int]:
        keys = [text_key(self.name, t) for t in texts]
        known = self._cache.get_many(keys)
        missing = [i for i, k in enumerate(keys) if k not in known]
        if missing:
            tok = self.tokenizer
            fresh: dict[str, int] = {}
            step = 64
            for start in range(0, len(missing), step):
                batch = missing[start : start + step]
                for i, n in zip(batch, tok.count_many([texts[i] for i in batch]), strict=False):
                    fresh[keys[i]] = n
                self._progress("count", min(start + step, len(missing)), len(missing))
            self._cache.put_many(fresh)
            known.update(fresh)
        return [known[k] for k in keys]

    def close(self) -> None:
        self._cache.close()


def _header(listing: Listing, paths: list[str], settings: Settings, skipped: int, dropped: int) -> str:
    notes = []
    if not listing.in_git:
        notes.append("The directory is not a git repository: files were chosen by its .gitignore files.")
    if skipped:
        notes.append(f"{skipped} listed files are not shown (binary, generated, too large, ...).")
    if dropped:
        notes.append(f"{dropped} files did not fit the token budget and are not shown.")
    header = styles.Header(
        styles.render_tree(paths), tuple(notes), settings.line_numbers, settings.line_number_interval
    )
    return styles.render_header(settings.style, header, len(paths))


def _fit(
    listing: Listing, work: list[_Work], kept: list[_Work], settings: Settings, counter: _Counter
) -> tuple[set[str], tuple[str, ...], int]:
    """Choose the files that fit and render the output; returns (chosen, text, exact tokens)."""
    style, limit = settings.style, settings.budget
    skipped = len(work) - len(kept)
    by_path = {w.candidate.path: w for w in kept}
    footer = styles.render_footer(style)

    def assemble(chosen: set[str]) -> tuple[tuple[str, ...], int]:
        paths = sorted(chosen)
        head = counter.defang(_header(listing, paths, settings, skipped, len(kept) - len(chosen)))
        sections = [by_path[p].section for p in paths]
        if style == "json" and paths:
            # The last array element has no trailing comma: "},\n" becomes "}\n".
            sections[-1] = sections[-1][:-2] + "\n"
            head_n, last_n, foot_n = counter.count([head, sections[-1], footer])
            body = sum(by_path[p].tokens for p in paths[:-1]) + last_n
        else:
            head_n, foot_n = counter.count([head, footer])
            body = sum(by_path[p].tokens for p in paths)
        return (head, *sections, footer), head_n + body + foot_n

    everything = set(by_path)
    text, n = assemble(everything)
    if n <= limit:
        return everything, text, n

    _empty_text, empty_n = assemble(set())
    if empty_n > limit:
        raise BudgetError(
            f"budget of {limit} tokens is too small for even the prompt's frame ({empty_n} tokens)",
            "raise --budget",
        )
    # The header with every file in its tree bounds the header of any subset from above.
    full_header = n - sum(w.tokens for w in kept)
    items = [budgeting.Item(p, w.tokens) for p, w in by_path.items()]
    chosen = budgeting.select(items, max(0, limit - full_header))
    # Fill what the smaller tree left free, estimating each extra file's tree line, then verify.
    text, n = assemble(chosen)
    for item in budgeting.rank_order(items):
        if item.path in chosen:
            continue
        estimate = item.tokens + len(item.path) // 2 + 4
        if n + estimate <= limit:
            chosen.add(item.path)
            n += estimate
    text, n = assemble(chosen)
    order = budgeting.rank_order([i for i in items if i.path in chosen])
    while n > limit and order:
        chosen.discard(order.pop().path)
        text, n = assemble(chosen)
    return chosen, text, n


def _numbered(w: _Work, settings: Settings) -> str:
    return styles.number_lines(w.text, settings.line_numbers, settings.line_number_interval)


def _packed(w: _Work, chosen: set[str]) -> PackedFile:
    path = w.candidate.path
    if w.reason is not None:
        return PackedFile(path, "skipped", w.reason, 0, w.size, 0, w.encoding)
    if path not in chosen:
        return PackedFile(
            path,
            "skipped",
            str(filters.Reason.OVER_BUDGET),
            w.tokens,
            w.size,
            w.lines,
            w.encoding,
            w.redactions,
        )
    return PackedFile(path, "included", None, w.tokens, w.size, w.lines, w.encoding, w.redactions, w.text)


def summarize(pack: Pack, top: int = 5) -> dict[str, Any]:
    """Counts for the summary: by status and reason, largest files and directories by tokens."""
    reasons: dict[str, int] = {}
    for f in pack.skipped:
        reasons[f.reason or "?"] = reasons.get(f.reason or "?", 0) + 1
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
    }
