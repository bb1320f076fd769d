"""The change under review for ``--base REF``: a unified diff, parsed once (unidiff).

The diff runs from the merge base of REF and HEAD to the working tree (what the pack holds), with
paths relative to the reviewed directory, as the pack's paths are. Each file's added lines and
hunks (the new side's line ranges, which is where GitHub accepts review comments) come from the
same parse.

The diff obeys the pack's selection: ``git diff --raw`` lists what changed, the caller's
``hide`` says which of those paths the pack would not show (and why), and git is asked for the
patch of the others only. A hidden file appears as its name and the kind of change, nothing
of its content: a ``.env`` the change edits, a vendored tree, a binary, an ignored path. Names
are shown escaped as in the pack (sanitize.escape_path), in the diff's headers too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import UsageError
from ..sanitize import escape_path
from .repo import run, work_tree

# The same diff whatever the user's git configuration says about prefixes, renames or drivers.
_DIFF_OPTIONS = (
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-renames",
    "--relative",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)
_PATHS_PER_CALL = 500  # pathspecs given to one git diff


@dataclass(frozen=True)
class Hunk:
    """One hunk's new-side range, inclusive (``start`` > ``end`` for a hunk that only deletes)."""

    start: int
    end: int


@dataclass(frozen=True)
class FileChange:
    path: str  # the new path ("" when the file was deleted)
    old_path: str  # the old path ("" when the file was added)
    added: frozenset[int]  # new-side line numbers added or changed
    hunks: tuple[Hunk, ...]
    binary: bool = False
    status: str = "modified"  # added | deleted | modified | type-changed
    hidden: str | None = None  # why its content is not shown (a skip reason), or None


@dataclass(frozen=True)
class Entry:
    """One path ``git diff --raw`` says changed."""

    path: str  # as shown (escaped)
    raw: str  # as the file system spells it (surrogateescape)
    status: str  # added | deleted | modified | type-changed | unmerged
    old_mode: str
    new_mode: str
    old_blob: str  # the base side's blob id (zeros when added)

    @property
    def old_side(self) -> bool:
        return self.status not in ("added", "unmerged") and set(self.old_blob) != {"0"}

    @property
    def new_side(self) -> bool:
        return self.status != "deleted"


# Decides, for the changed paths, which the pack would not show: path -> skip reason.
Hide = Callable[[Sequence[Entry]], dict[str, str]]


@dataclass(frozen=True)
class Diff:
    ref: str
    base: str  # the commit the diff starts from
    text: str = field(repr=False)  # what is shown: patches of shown files, names of hidden ones
    changed: dict[str, frozenset[int]]  # path -> added or modified line numbers (new side)
    files: tuple[FileChange, ...] = ()


_STATUS = {"A": "added", "D": "deleted", "M": "modified", "T": "type-changed", "U": "unmerged"}


def diff_against(root: Path, ref: str, hide: Hide | None = None) -> Diff:
    """The working tree of ``root`` against the merge base of ``ref`` and HEAD.

    ``hide`` (the pack's selection) names the changed paths whose content is not shown.
    """
    if ref.startswith("-"):
        raise UsageError(f"--base {ref!r} is not a git revision")
    if work_tree(root) is None:
        raise UsageError(f"--base needs a git repository: {root} is not inside one")
    try:
        commit = run(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    except UsageError as exc:
        raise UsageError(f"--base {ref!r} is not a commit in this repository") from exc
    commit_id = commit.decode().strip()
    try:
        base = run(root, "merge-base", commit_id, "HEAD").decode().strip() or commit_id
    except UsageError:  # no common history, or no HEAD yet: compare with REF itself
        base = commit_id
    entries = changes(root, base)
    hidden = hide(entries) if hide is not None and entries else {}
    shown = [e for e in entries if e.path not in hidden]
    # With the pack's selection, every file shown is text the pack decoded: asked for with
    # --text, so that a repository's .gitattributes (-diff, binary) cannot turn its change into
    # "Binary files differ" and hide it.
    patches = _patches(root, base, [e.raw for e in shown], as_text=hide is not None)
    parts: list[str] = []
    files: list[FileChange] = []
    for e in entries:
        reason = hidden.get(e.path)
        if reason is None and e.path not in patches:
            continue  # no patch: git found no change in content (or mode) after all
        if reason is not None:
            parts.append(stub(e, reason))
            old, new = ("" if e.status == "added" else e.path), ("" if e.status == "deleted" else e.path)
            files.append(FileChange(new, old, frozenset(), (), status=e.status, hidden=reason))
            continue
        body = patches[e.path]
        parts.append(_rewrite(escape_path(e.raw), body))
        # One file per part. Its names come from git's listing: the lines are parsed under a
        # plain stand-in name, which no space, tab or quote in the real one can confuse.
        old, new = ("" if e.status == "added" else e.path), ("" if e.status == "deleted" else e.path)
        parsed = parse(_rewrite("file", body))[:1]
        files.extend(replace(f, path=new, old_path=old, status=e.status) for f in parsed)
    changed = {f.path: f.added for f in files if f.path and f.hidden is None}
    return Diff(ref=ref, base=base, text="".join(parts), changed=changed, files=tuple(files))


def stub(entry: Entry, reason: str) -> str:
    """A hidden file in the diff: its name and the kind of change, never its content."""
    return f"diff --git a/{entry.path} b/{entry.path}\n{entry.status} file, content not shown: {reason}\n"


def changes(root: Path, base: str) -> tuple[Entry, ...]:
    """What ``git diff --raw`` lists between ``base`` and the working tree, in git's order."""
    out = run(root, "diff", "--raw", "-z", "--no-abbrev", *_DIFF_OPTIONS, base, "--", ".")
    fields = out.decode("utf-8", "surrogateescape").split("\0")
    entries = []
    i = 0
    while i + 1 < len(fields):
        meta, raw = fields[i], fields[i + 1]
        i += 2
        parts = meta.lstrip(":").split(" ")
        if len(parts) < 5 or not raw:
            continue
        old_mode, new_mode, old_blob, _new_blob, letter = parts[:5]
        status = _STATUS.get(letter[:1], "modified")
        entries.append(Entry(escape_path(raw), raw, status, old_mode, new_mode, old_blob))
    return tuple(entries)


def _patches(root: Path, base: str, raws: list[str], *, as_text: bool = False) -> dict[str, str]:
    """Each named path's part of ``git diff -p`` after its ``diff --git`` line, by its shown path."""
    found: dict[str, str] = {}
    for start in range(0, len(raws), _PATHS_PER_CALL):
        chunk = raws[start : start + _PATHS_PER_CALL]
        mode = ("--text",) if as_text else ()
        out = run(root, "diff", "-U3", *mode, *_DIFF_OPTIONS, base, "--", *(f":(literal){p}" for p in chunk))
        for raw, text in _sections(out):
            found[escape_path(raw)] = text
    return found


def blobs(root: Path, ids: Sequence[str], limit: int) -> dict[str, bytes | int]:
    """The bytes of each blob of at most ``limit`` bytes, and the size of each larger one
    (absent: not in the repository). Two ``git cat-file`` calls, whatever the number of blobs."""
    wanted = list(dict.fromkeys(i for i in ids if re.fullmatch(r"[0-9a-f]{40,64}", i)))
    if not wanted:
        return {}
    sizes: dict[str, int] = {}
    check = run(root, "cat-file", "--batch-check", stdin="".join(f"{i}\n" for i in wanted).encode())
    for line in check.decode("ascii", "replace").splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[1] == "blob" and parts[2].isdigit():
            sizes[parts[0]] = int(parts[2])
    found: dict[str, bytes | int] = {i: n for i, n in sizes.items() if n > limit}
    small = [i for i, n in sizes.items() if n <= limit]
    if small:
        out = run(root, "cat-file", "--batch", stdin="".join(f"{i}\n" for i in small).encode())
        at = 0
        for blob_id in small:
            end = out.index(b"\n", at)
            size = int(out[at:end].split(b" ")[2])
            found[blob_id] = out[end + 1 : end + 1 + size]
            at = end + 1 + size + 1
    return found


# Where a file's part starts. A combined diff (``diff --cc``, an unmerged path) starts one too,
# so that it is never taken for the end of the part before it; it is not shown.
_HEADER = re.compile(rb"^diff --(?:git|cc|combined) ", re.MULTILINE)


def _sections(out: bytes) -> list[tuple[str, str]]:
    """Split a ``git diff -p`` into files: (raw path, the file's part after its first line)."""
    starts = [m.start() for m in _HEADER.finditer(out)]
    sections = []
    for i, start in enumerate(starts):
        chunk = out[start : starts[i + 1] if i + 1 < len(starts) else len(out)]
        header, _, body = chunk.partition(b"\n")
        if not header.startswith(b"diff --git "):
            continue
        raw = _header_path(header[len(b"diff --git ") :].decode("utf-8", "surrogateescape"))
        if raw is None:
            continue  # not a header git writes: never shown rather than shown under a wrong name
        sections.append((raw, body.decode("utf-8", "replace")))
    return sections


def _header_path(rest: str) -> str | None:
    """The path of a ``diff --git a/P b/P`` line (renames are off, so both sides name P)."""
    if rest.startswith('"'):
        first, _ = _unquote(rest, 0)
        if first is None or not first.startswith("a/"):
            return None
        return first[2:]
    half = (len(rest) - 5) // 2
    path = rest[2 : 2 + half]
    return path if rest == f"a/{path} b/{path}" else None


_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def _unquote(text: str, at: int) -> tuple[str | None, int]:
    """A C-quoted string as git writes it, starting at ``text[at] == '"'``: (its text, end)."""
    out = bytearray()
    i = at + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return out.decode("utf-8", "surrogateescape"), i + 1
        if c != "\\":
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt in _C_ESCAPES:
            out.append(_C_ESCAPES[nxt])
            i += 2
        elif re.fullmatch(r"[0-7]{3}", text[i + 1 : i + 4]):
            out.append(int(text[i + 1 : i + 4], 8) & 0xFF)
            i += 4
        else:
            return None, i
    return None, i


def _rewrite(shown: str, body: str) -> str:
    """A file's part of the diff, every line that names it naming it ``shown``."""
    lines = [f"diff --git a/{shown} b/{shown}"]
    in_hunk = False
    for line in body.split("\n"):
        if not in_hunk:
            if line.startswith("@@"):
                in_hunk = True
            elif line.startswith("--- "):
                line = "--- /dev/null" if line.startswith("--- /dev/null") else f"--- a/{shown}"
            elif line.startswith("+++ "):
                line = "+++ /dev/null" if line.startswith("+++ /dev/null") else f"+++ b/{shown}"
            elif line.startswith("Binary files "):
                old = "/dev/null" if line.startswith("Binary files /dev/null ") else f"a/{shown}"
                new = "/dev/null" if line.endswith(" and /dev/null differ") else f"b/{shown}"
                line = f"Binary files {old} and {new} differ"
        lines.append(line)
    return "\n".join(lines)


def changed_lines(diff_text: str) -> dict[str, frozenset[int]]:
    """For each file in a unified diff, the new-side line numbers that were added or changed."""
    return {f.path: f.added for f in parse(diff_text) if f.path}


def parse(diff_text: str) -> tuple[FileChange, ...]:
    """Every file of a unified diff (``git diff`` output), with its added lines and hunks."""
    from unidiff.errors import UnidiffParseError
    from unidiff.patch import PatchSet

    try:
        patch = PatchSet(diff_text)
    except UnidiffParseError as exc:
        raise UsageError(f"the diff could not be read: {exc}") from exc
    files = []
    for pf in patch:
        new = "" if pf.is_removed_file else _strip(pf.target_file)
        old = "" if pf.is_added_file else _strip(pf.source_file)
        added = frozenset(
            line.target_line_no for hunk in pf for line in hunk if line.is_added and line.target_line_no
        )
        hunks = tuple(Hunk(h.target_start, h.target_start + h.target_length - 1) for h in pf)
        status = "added" if pf.is_added_file else "deleted" if pf.is_removed_file else "modified"
        files.append(FileChange(new, old, added, hunks, binary=bool(pf.is_binary_file), status=status))
    return tuple(files)


def _strip(name: str) -> str:
    """``b/path`` or ``a/path`` as git writes it, without the prefix."""
    if name.startswith(('"a/', '"b/')) and name.endswith('"'):  # a quoted name (quotePath is off)
        name = name[1:-1]
    return name[2:] if name[:2] in ("a/", "b/") else name
