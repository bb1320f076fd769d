"""The one way wholerepo runs git: gitpython's ``Repo`` and ``Git.execute``, errors made plain.

Every git command of the project goes through ``run()`` (bytes in, bytes out), so that quoting,
``core.quotePath``, environment and errors are decided once.

The repository under review may carry its own git configuration (a copied checkout, a tarball
with ``.git``): ``core.fsmonitor``, hooks, filter drivers, ``gpg.program`` and the like name
programs that even a listing or a diff would run. ``safe_env()`` turns every one of them off
for each git command wholerepo runs, so that a repository can never run code through git.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

import git

from ..errors import UsageError

# Paths come out as UTF-8 bytes, not C-quoted; no pager, no colour, no external diff drivers.
_CONFIG = ("-c", "core.quotePath=false", "-c", "color.ui=false", "-c", "diff.external=")

# Settings through which git configuration makes a read-only command run a program: a file
# system monitor (run by ls-files, check-attr and diff), hooks, signature checks in git log
# (gpg.program), external diffs, pagers and the ext:: transport.
_SAFE = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("core.pager", "cat"),
    ("diff.external", ""),
    ("log.showSignature", "false"),
    ("protocol.ext.allow", "never"),
)
# A filter driver's commands (run on every file whose .gitattributes names the driver, by diff
# against the work tree and by checkouts) are found by name and blanked, which disables them.
_FILTER_KEY = re.compile(r"^filter\.(.+)\.(?:clean|smudge|process)$", re.DOTALL)


def safe_env(cwd: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a git command in ``cwd``: ``env`` (or ours) plus configuration, given
    through ``GIT_CONFIG_COUNT`` (no quoting to get wrong), that no repository can override."""
    out = dict(os.environ if env is None else env)
    pairs = list(_SAFE)
    for name in sorted(_filter_drivers(cwd, out)):
        pairs += [(f"filter.{name}.{k}", "") for k in ("clean", "smudge", "process")]
        pairs.append((f"filter.{name}.required", "false"))
    try:
        count = int(out.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    for key, value in pairs:  # after the caller's own entries: later ones win
        out[f"GIT_CONFIG_KEY_{count}"] = key
        out[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    out["GIT_CONFIG_COUNT"] = str(count)
    return out


def _filter_drivers(cwd: Path, env: Mapping[str, str]) -> set[str]:
    """The names of the filter drivers git's configuration (every scope, includes too) defines
    in ``cwd``. Reading configuration runs nothing."""
    try:
        proc = subprocess.run(
            ["git", "config", "-z", "--get-regexp", r"^filter\."],
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        return set()
    names = set()
    for item in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
        key = _FILTER_KEY.match(item.partition("\n")[0])
        if key is not None:
            names.add(key.group(1))
    return names


def open_repo(path: Path) -> git.Repo | None:
    """The repository that holds ``path`` (searching parent directories), or None outside git.

    A work tree whose ``.git`` file names a git directory that is not its own (a copied
    directory with ``gitdir: ../other/.git``), or a repository whose ``core.worktree`` puts
    git's work tree where ``path`` is not, is refused: git would list, and a diff would show,
    files from elsewhere on this machine."""
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    except git.GitCommandNotFound as exc:  # pragma: no cover - git missing entirely
        raise UsageError("the git binary was not found", "install git") from exc
    top = repo.working_tree_dir
    if top is not None and "GIT_DIR" not in os.environ:
        # git's own answer, which honours core.worktree (gitpython's does not): the repository's
        # config must not move the work tree git lists and diffs to where ``path`` is not.
        git_top = _git_top(path)
        if git_top is not None and not path.resolve().is_relative_to(git_top):
            repo.close()
            raise UsageError(
                f"git's work tree for {path} is {git_top} (core.worktree), which does not hold it: not read",
                "review a clone of the repository",
            )
    if top is not None and "GIT_DIR" not in os.environ and not _owns(Path(top), Path(repo.git_dir)):
        repo.close()
        raise UsageError(
            f"the git directory {repo.git_dir} of {top} belongs to another work tree (a .git file"
            " or a commondir naming another repository): not read",
            "review a clone, or remove that .git file to pack the directory as plain files",
        )
    return repo


def _git_top(path: Path) -> Path | None:
    """The top of the work tree as git itself sees it from ``path``."""
    where = path if path.is_dir() else path.parent
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=where,
            env=safe_env(where),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        return None
    out = proc.stdout.decode("utf-8", "surrogateescape").strip()
    return Path(out).resolve() if proc.returncode == 0 and out else None


def _owns(top: Path, git_dir: Path) -> bool:
    """Whether ``git_dir`` is the git directory of the work tree ``top``: inside it (a clone),
    or pointing back at it (``git worktree``'s ``gitdir`` file, a submodule's core.worktree)."""
    top, git_dir = top.resolve(), git_dir.resolve()
    if git_dir.is_relative_to(top):
        # Inside the tree, so possibly written by whoever wrote the tree: its ``commondir``
        # (where refs, objects and config live) must not lead to another repository either.
        try:
            common = (git_dir / "commondir").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return True
        return (git_dir / common).resolve().is_relative_to(top)
    try:  # a linked worktree: <common>/worktrees/<name>/gitdir holds the path of <top>/.git
        back = (git_dir / "gitdir").read_text(encoding="utf-8", errors="replace").strip()
        if back and (git_dir / back).resolve() == (top / ".git").resolve():
            return True
    except OSError:
        pass
    try:  # a submodule: <super>/.git/modules/<name> with core.worktree pointing back
        with git.GitConfigParser(str(git_dir / "config"), read_only=True) as config:
            worktree = str(config.get_value("core", "worktree", ""))
    except (OSError, ValueError, configparser.Error):  # unreadable: not a pointer back
        return False
    return bool(worktree) and (git_dir / worktree).resolve() == top


def work_tree(path: Path) -> Path | None:
    """The top of the work tree that holds ``path``, or None (not in git, or a bare repository)."""
    repo = open_repo(path)
    if repo is None:
        return None
    with repo:
        top = repo.working_tree_dir
    return Path(top).resolve() if top is not None else None


def run(
    cwd: Path,
    *args: str,
    stdin: bytes | None = None,
    what: str | None = None,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """``git -C cwd args...`` and its standard output; a failure is a one-line UsageError.

    ``env`` adds variables to the environment (a commit's fixed author and dates, for one).
    """
    command = ["git", "-C", str(cwd), *_CONFIG, *args]
    g = git.Git(str(cwd))
    extra = safe_env(cwd, {**os.environ, **(env or {})})
    try:
        if stdin is None:
            out = g.execute(command, stdout_as_string=False, strip_newline_in_stdout=False, env=extra)
            return out if isinstance(out, bytes) else str(out).encode()
        handle = g.execute(command, istream=subprocess.PIPE, as_process=True, env=extra)
        proc = handle.proc
        assert proc is not None
        stdout, stderr = proc.communicate(stdin)
        if proc.returncode != 0:
            raise git.GitCommandError(command, proc.returncode, stderr)
        return bytes(stdout)
    except git.GitCommandNotFound as exc:
        raise UsageError("the git binary was not found", "install git") from exc
    except git.GitCommandError as exc:
        stderr = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else str(exc.stderr)
        detail = " ".join(stderr.replace("stderr:", "").strip(" '\n").split())[:300]
        raise UsageError(f"git {what or args[0]} failed: {detail or exc.status}") from exc
