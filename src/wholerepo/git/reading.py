"""Reading files of the work tree, and only of it: regular files, inside the root, within a size.

Every path is opened relative to a directory descriptor, one component at a time, each with
``O_NOFOLLOW``: a directory that the work tree replaced by a symbolic link (to ``/etc``, say) is
never entered, whatever git or an earlier ``lstat`` said, and no path whose real location is
outside the root is ever opened. A file is looked at (``lstat``) before it is opened, opened
with ``O_NONBLOCK`` (a FIFO cannot hang the open), checked again on the descriptor (``fstat``:
only a regular file is read) and read up to its limit and no further (a file that grows, or a
device, can never make a read unbounded).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from types import TracebackType

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)
# Descriptors relative to a directory need dir_fd support (every POSIX system); elsewhere each
# parent's real location is resolved and compared with the root instead.
_DIR_FD = os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd and bool(_O_DIRECTORY)
_CHUNK = 1 << 20


class FileTooLarge(Exception):
    """A file over the size limit: not read (or not read past the limit)."""

    def __init__(self, size: int, head: bytes = b"") -> None:
        super().__init__(size)
        self.size = size
        self.head = head  # the first KB, enough to recognise what the file is


class NotAFile(OSError):
    """Not something to read: a symbolic link, a FIFO, a device, a socket, a directory, or a path
    that leads through a symbolic link. ``kind`` is "symlink" for the links, else "special"."""

    def __init__(self, path: str, kind: str, what: str) -> None:
        super().__init__(errno.EINVAL, what, path)
        self.kind = kind


def kind_of(mode: int) -> str:
    """ "file", "symlink" or "special" (FIFO, device, socket, directory) for an ``lstat`` mode."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "special"


def _what(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


class Reader:
    """Opens the files under ``root`` (a real directory, resolved by the caller) safely.

    Paths are relative, "/"-separated, as the file system spells them (surrogateescape for bytes
    that are not UTF-8). Read files in sorted order and each directory is opened once: the
    descriptors of the current directory's chain are kept until a path leaves it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_fd: int | None = None
        self._chain: list[tuple[str, int]] = []  # (directory name, descriptor), from the root down

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._pop(0)
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def _pop(self, depth: int) -> None:
        while len(self._chain) > depth:
            os.close(self._chain.pop()[1])

    def _directory(self, rel: str, parts: list[str]) -> int:
        """The descriptor of the directory holding ``rel``; every component entered without
        following a link."""
        if self._root_fd is None:
            self._root_fd = os.open(self.root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        common = 0
        while common < min(len(parts), len(self._chain)) and self._chain[common][0] == parts[common]:
            common += 1
        self._pop(common)
        for name in parts[common:]:
            parent = self._chain[-1][1] if self._chain else self._root_fd
            try:
                fd = os.open(name, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=parent)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    # A symbolic link (ELOOP; some systems say ENOTDIR or EMLINK) or a file.
                    info = os.stat(name, dir_fd=parent, follow_symlinks=False)
                    if stat.S_ISLNK(info.st_mode):
                        raise NotAFile(rel, "symlink", "a parent directory is a symbolic link") from None
                raise
            self._chain.append((name, fd))
        return self._chain[-1][1] if self._chain else self._root_fd

    def lstat(self, rel: str) -> os.stat_result:
        """``lstat`` of ``rel``; NotAFile (kind "symlink") when a parent directory is a link."""
        if not _DIR_FD:
            return _lstat_resolving(self.root, rel)
        *parts, name = rel.split("/")
        return os.stat(name, dir_fd=self._directory(rel, parts), follow_symlinks=False)

    def read(self, rel: str, limit: int | None = None) -> bytes:
        """The bytes of the regular file ``rel``.

        Raises NotAFile for anything but a regular file inside the root, FileTooLarge for a file
        of more than ``limit`` bytes (never reading past the limit), OSError when it cannot be read.
        """
        if not _DIR_FD:
            info = _lstat_resolving(self.root, rel)
            if not stat.S_ISREG(info.st_mode):
                raise NotAFile(rel, kind_of(info.st_mode), _what(info.st_mode))
            fd = os.open(
                os.path.join(self.root, rel), os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_NOCTTY | _O_CLOEXEC
            )
        else:
            *parts, name = rel.split("/")
            parent = self._directory(rel, parts)
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)  # look before opening
            if not stat.S_ISREG(info.st_mode):
                raise NotAFile(rel, kind_of(info.st_mode), _what(info.st_mode))
            try:
                fd = os.open(
                    name, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_NOCTTY | _O_CLOEXEC, dir_fd=parent
                )
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # replaced by a link since the lstat
                    raise NotAFile(rel, "symlink", "a symbolic link") from None
                raise
        try:
            info = os.fstat(fd)  # what was opened, not what was there a moment ago
            if not stat.S_ISREG(info.st_mode):
                raise NotAFile(rel, kind_of(info.st_mode), _what(info.st_mode))
            if limit is not None and info.st_size > limit:
                raise FileTooLarge(info.st_size, os.pread(fd, _HEAD, 0))
            return _read_upto(fd, info.st_size, limit)
        finally:
            os.close(fd)


_HEAD = 1024


def _read_upto(fd: int, expected: int, limit: int | None) -> bytes:
    """At most ``limit`` bytes of ``fd``, or FileTooLarge once it gives more."""
    parts: list[bytes] = []
    total = 0
    want = expected + 1  # one more than the size says: a file that grew is noticed
    while True:
        if limit is not None:
            want = min(want, limit + 1 - total)
        asked = max(1, want)
        chunk = os.read(fd, asked)
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
        if limit is not None and total > limit:
            raise FileTooLarge(total, b"".join(parts)[:_HEAD])
        if len(chunk) < asked:  # a regular file reads short only at its end
            break
        want = _CHUNK
    return b"".join(parts)


def _lstat_resolving(root: Path, rel: str) -> os.stat_result:
    """``lstat`` where descriptors relative to a directory are not available: no parent may be
    a symbolic link (``root`` is resolved, so the parent's real location is then inside it)."""
    path = os.path.join(root, rel)
    parent = os.path.dirname(path)
    if os.path.realpath(parent) != os.path.normpath(parent):
        raise NotAFile(rel, "symlink", "a parent directory is a symbolic link")
    return os.lstat(path)


def read_bytes(root: Path, rel: str, limit: int | None = None) -> bytes:
    """Read one regular file under ``root`` (see Reader.read)."""
    with Reader(root) as reader:
        return reader.read(rel, limit)
