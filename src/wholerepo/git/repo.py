"""The one way wholerepo runs git: gitpython's ``Repo`` and ``Git.execute``, errors made plain.

Every git command of the project goes through ``run()`` (bytes in, bytes out), so that quoting,
``core.quotePath``, environment and errors are decided once.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

import git

from ..errors import UsageError

# Paths come out as UTF-8 bytes, not C-quoted; no pager, no colour, no external diff drivers.
_CONFIG = ("-c", "core.quotePath=false", "-c", "color.ui=false", "-c", "diff.external=")


def open_repo(path: Path) -> git.Repo | None:
    """The repository that holds ``path`` (searching parent directories), or None outside git."""
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    except git.GitCommandNotFound as exc:  # pragma: no cover - git missing entirely
        raise UsageError("the git binary was not found", "install git") from exc


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
    extra = dict(env) if env is not None else None
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
