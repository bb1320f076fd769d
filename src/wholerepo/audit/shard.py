"""The cut: a repository's files into shards, each one request, along the code's structure.

1. **Where a file belongs.** A file sits in its directory, except a test outside the package it
   tests (``tests/test_x.py`` of ``src/pkg/x.py``): for the cut it sits right after the file its
   name names (``x.py``), else after the file it imports most in the directory holding most of
   its imports, so a package and its tests land together (and a test joins its module's atom
   when they are small enough).
2. **Atoms.** Within a directory, tightly coupled files (an import either way, a header and its
   implementation: graph.py edges of weight >= ``TIGHT``) are joined, strongest edges first, up to
   ``ATOM_SHARE`` of a shard; an atom is never split.
3. **Hierarchical next-fit.** The directory tree is walked in path order. A directory (or an
   atom) goes into the current shard whole when it fits; when a directory does not and the shard
   is filled less than ``FILL``, it is opened and its parts fill the shard (an atom that does not
   fit waits for the next shard while the ones after it in the same directory fill this one; an
   atom is opened only when no shard can hold it); otherwise the shard is closed and the
   directory starts the next one. So directories and atoms stay whole
   where the budget allows, and shards are filled to ``FILL`` where the files' sizes allow.
4. **Exact.** Sizes are estimates while walking (a file's exact section tokens plus its line in
   the shard's tree); a shard is closed by ``fits``, the exact count of its assembled text, and
   gives its last atoms to the next shard until it fits.

A file that cannot fit a shard on its own is left out, listed with its reason. Everything is
sorted: the same files, counts and graph always give the same shards.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from ..fit.graph import Graph
from ..fit.plan import tree_line
from ..fit.rank import role

TIGHT = 0.5  # graph.py: 1.0 an import, 0.5 header -> implementation, <= 0.25 shared names
ATOM_SHARE = 1 / 3  # the largest atom, as a share of a shard
FILL = 0.9  # a shard filled less than this opens the next directory to fill itself
TESTS_DIR = "\uffff"  # joins a moved test's name to its module's: sorted right after it
JOIN_TRIES = 4  # earlier shards the last one tries to join (each an exact count)
SUBJECT = 10.0  # the weight of a moved test's edge to its module: above any import cluster's


@dataclass(frozen=True)
class Cut:
    """The shards (each a sorted tuple of paths, in walking order) and the files too large."""

    shards: tuple[tuple[str, ...], ...]
    too_large: tuple[str, ...]


@dataclass
class _Atom:
    paths: list[str]
    size: int

    def atoms(self) -> Iterator[_Atom]:
        yield self


@dataclass
class _Dir:
    dirs: dict[str, _Dir] = field(default_factory=dict)
    files: list[tuple[str, str]] = field(default_factory=list)  # (name for ordering, path)
    children: list[_Atom | _Dir] = field(default_factory=list)
    size: int = 0

    def atoms(self) -> Iterator[_Atom]:
        for child in self.children:
            yield from child.atoms()


def placement(path: str, graph: Graph | None, by_name: Mapping[str, list[str]] | None = None) -> list[str]:
    """Where ``path`` sits for the cut: its own path, or a test's path beside what it tests.

    What a test tests: the file its name names (``test_x.py``, ``x_test.go``, ``x.test.ts``,
    ``XTest.java`` test ``x.py``...) among what it imports, or the one source file of the
    repository with that name (``by_name``: non-test files by file name) when it imports it only
    through a fixture or a public package; else the file it imports most, in the directory
    holding most of its imports."""
    parts = path.split("/")
    if graph is None or role(path)[0] != "test":
        return parts
    targets = [t for t in graph.imports.get(path, ()) if role(t)[0] != "test"]
    subject = _subject(parts[-1], targets, by_name or {})
    if subject is not None:
        home, _, name = subject.rpartition("/")
        if not home:
            return parts
        return _beside(parts, home.split("/"), name, path)
    if not targets:
        return parts
    counts = Counter(posixpath.dirname(t) for t in targets)
    home = min(counts, key=lambda d: (-counts[d], d))
    if not home:
        return parts
    # Beside the file it imports most there.
    near = [t for t in targets if posixpath.dirname(t) == home]
    target = min(near, key=lambda t: (-near.count(t), t)).rsplit("/", 1)[-1]
    return _beside(parts, home.split("/"), target, path)


def _beside(parts: list[str], there: list[str], target: str, path: str) -> list[str]:
    """A test's place right after ``target`` in the directory ``there`` (joined with it in one
    atom when they are small enough), or its own place when already inside that package."""
    here = parts[:-1]
    common = 0
    while common < min(len(here), len(there)) and here[common] == there[common]:
        common += 1
    if common >= len(there) - 1:  # already inside (or beside) the package it tests
        return parts
    return [*there, f"{target}{TESTS_DIR}{path}"]


_TEST_AFFIXES = (
    re.compile(r"test_(?P<s>.+)(?P<e>\.\w+)"),  # test_x.py
    re.compile(r"(?P<s>.+)_test(?P<e>\.\w+)"),  # x_test.go, x_test.py
    re.compile(r"(?P<s>.+)[.-](?:test|spec)(?P<e>\.\w+)"),  # x.test.ts, x.spec.js
    re.compile(r"(?P<s>.+)Tests?(?P<e>\.\w+)"),  # XTest.java
)


def _named(name: str) -> str | None:
    """The file name a test's name names (``x.py`` for ``test_x.py``), if it names one."""
    for affix in _TEST_AFFIXES:
        m = affix.fullmatch(name)
        if m is not None:
            return m["s"] + m["e"]
    return None


def _subject(name: str, targets: Sequence[str], by_name: Mapping[str, list[str]]) -> str | None:
    """The source file a test's name names: among its imports, else the repository's only one."""
    for affix in _TEST_AFFIXES:
        m = affix.fullmatch(name)
        if m is None:
            continue
        wanted = m["s"] + m["e"]
        found = sorted(t for t in targets if t.rsplit("/", 1)[-1] == wanted)
        if found:
            return found[0]
        named = by_name.get(wanted, [])
        if len(named) == 1:
            return named[0]
    return None


def cut(
    sizes: Mapping[str, int],
    cap: int,
    fits: Callable[[Sequence[str]], bool],
    graph: Graph | None = None,
) -> Cut:
    """Cut the files of ``sizes`` (path -> estimated tokens in a shard) into shards of at most
    ``cap`` estimated tokens, each confirmed by ``fits`` (the exact count of its text)."""
    too_large = sorted(p for p, n in sizes.items() if n > cap)
    by_name: dict[str, list[str]] = {}
    for path in sorted(sizes):
        if role(path)[0] != "test":
            by_name.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    root = _Dir()
    for path in sorted(sizes):
        if sizes[path] > cap:
            continue
        parts = placement(path, graph, by_name)
        node = root
        for name in parts[:-1]:
            node = node.dirs.setdefault(name, _Dir())
        node.files.append((parts[-1], path))
    _build(root, sizes, graph, max(1, int(cap * ATOM_SHARE)))
    packer = _Packer(cap, fits, sizes)
    packer.place(root)
    packer.finish()
    return Cut(tuple(packer.shards), tuple(sorted([*too_large, *packer.too_large])))


def _build(node: _Dir, sizes: Mapping[str, int], graph: Graph | None, atom_cap: int) -> None:
    entries: list[tuple[str, _Atom | _Dir]] = []
    for name, child in node.dirs.items():
        _build(child, sizes, graph, atom_cap)
        entries.append((name + "/", child))
    for name, atom in _atoms(node.files, sizes, graph, atom_cap):
        entries.append((name, atom))
    entries.sort(key=lambda e: e[0])
    node.children = [child for _, child in entries]
    node.size = sum(child.size for child in node.children)


def _atoms(
    files: list[tuple[str, str]], sizes: Mapping[str, int], graph: Graph | None, cap: int
) -> list[tuple[str, _Atom]]:
    """The files of one directory as atoms: tightly coupled files joined, strongest edges first."""
    names = {path: name for name, path in files}
    parent = {path: path for path in names}
    size = {path: sizes[path] for path in names}

    def root(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    if graph is not None and len(files) > 1:
        edges: dict[tuple[str, str], float] = {}
        for src in names:
            for dst, weight in graph.edges.get(src, {}).items():
                if dst in names:
                    pair = (src, dst) if src < dst else (dst, src)
                    edges[pair] = edges.get(pair, 0.0) + weight
        # A test joins what it tests first (one moved here, or x_test.go beside x.go), even when
        # it reaches its module only through a fixture or the package: import clusters would
        # otherwise take the room.
        by_name = {name: path for name, path in files}
        for name, path in files:
            if TESTS_DIR in name:
                subject = by_name.get(name.partition(TESTS_DIR)[0])
            else:
                subject = by_name.get(_named(name) or "") if role(path)[0] == "test" else None
            if subject is not None and subject != path:
                pair = (subject, path) if subject < path else (path, subject)
                edges[pair] = edges.get(pair, 0.0) + SUBJECT  # joined before import clusters grow
        for (a, b), weight in sorted(edges.items(), key=lambda e: (-e[1], e[0])):
            if weight < TIGHT:
                break
            ra, rb = root(a), root(b)
            if ra != rb and size[ra] + size[rb] <= cap:
                keep, gone = (ra, rb) if names[ra] <= names[rb] else (rb, ra)
                parent[gone] = keep
                size[keep] += size[gone]
    groups: dict[str, list[str]] = {}
    for _name, path in sorted(files):
        groups.setdefault(root(path), []).append(path)
    return sorted(
        ((names[members[0]], _Atom(members, sum(sizes[p] for p in members))) for members in groups.values()),
        key=lambda e: e[0],
    )


class _Packer:
    """Hierarchical next-fit over the tree (see the module's docstring)."""

    def __init__(self, cap: int, fits: Callable[[Sequence[str]], bool], sizes: Mapping[str, int]) -> None:
        self.cap, self.fits, self.sizes = cap, fits, sizes
        self.shards: list[tuple[str, ...]] = []
        self.too_large: list[str] = []
        self.current: list[_Atom] = []
        self.used = 0

    def place(self, item: _Atom | _Dir) -> None:
        if self.used + item.size <= self.cap:
            self._add(item)
            return
        # An atom is opened only when no shard holds it: a test and its module stay together.
        splittable = isinstance(item, _Dir) or (len(item.paths) > 1 and item.size > self.cap)
        if splittable and (self.used < FILL * self.cap or item.size > self.cap):
            self._open(item)
            return
        self.close()
        if item.size <= self.cap or not splittable:
            self._add(item)
        else:
            self._open(item)

    def _open(self, item: _Atom | _Dir) -> None:
        """Place ``item``'s parts in order; while the shard is filled less than ``FILL``, a file
        that does not fit waits for the next shard and the files after it fill this one."""
        parts = item.children if isinstance(item, _Dir) else [_Atom([p], self.sizes[p]) for p in item.paths]
        waiting: list[_Atom | _Dir] = []
        for part in parts:
            if self.used + part.size <= self.cap:
                self._add(part)
                continue
            if self.used < FILL * self.cap:
                if isinstance(part, _Atom) and part.size <= self.cap:
                    waiting.append(part)
                else:
                    self.place(part)
                continue
            for w in waiting:
                self.place(w)
            waiting = []
            self.place(part)
        for w in waiting:
            self.place(w)

    def _add(self, item: _Atom | _Dir) -> None:
        for atom in item.atoms():
            self.current.append(atom)
            self.used += atom.size

    def close(self) -> None:
        """Close the current shard at what its exact count allows; the rest starts the next."""
        carry: list[_Atom] = []
        while self.current:
            paths = [p for atom in self.current for p in atom.paths]
            if self.fits(paths):
                self.shards.append(tuple(paths))
                break
            if len(self.current) > 1:
                carry.insert(0, self.current.pop())
            elif len(self.current[0].paths) > 1:  # one atom over: its files go one by one
                atom = self.current.pop()
                carry[:0] = [_Atom([p], self.sizes[p]) for p in atom.paths]
                self.current.append(carry.pop(0))
            else:
                self.too_large.extend(self.current[0].paths)
                self.current.pop()
        self.current = carry
        self.used = sum(atom.size for atom in carry)

    def finish(self) -> None:
        while self.current:
            self.close()
        self._join_remainder()

    def _join_remainder(self) -> None:
        """The walk's last shard, often a small remainder, joins an earlier shard with room for
        all of it (the tightest first, a few tried): one request fewer, each sending the map."""
        if len(self.shards) < 2:
            return
        last = self.shards[-1]
        size = sum(self.sizes[p] for p in last)
        spare = sorted((self.cap - sum(self.sizes[p] for p in s), i) for i, s in enumerate(self.shards[:-1]))
        tried = 0
        for room, i in spare:
            if room < size:
                continue
            if tried == JOIN_TRIES:
                return
            tried += 1
            joined = (*self.shards[i], *last)
            if self.fits(joined):
                self.shards[i] = joined
                self.shards.pop()
                return


def tree_cost(path: str) -> int:
    """A file's estimated share of its shard's directory tree, in tokens."""
    return tree_line(path)


def describe(paths: Sequence[str], top: int = 3) -> str:
    """A shard's name: the directories holding most of its files (``a/b/, c/ +2 more``)."""
    dirs: Counter[str] = Counter()
    for path in paths:
        parts = path.split("/")[:-1]
        dirs["/".join(parts[:3]) + "/" if parts else "(root)"] += 1
    ordered = sorted(dirs, key=lambda d: (-dirs[d], d))
    name = ", ".join(ordered[:top])
    return name + (f" +{len(ordered) - top} more" if len(ordered) > top else "")
