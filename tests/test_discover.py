"""File selection is exactly git's: the oracle is ``git ls-files`` run by the test itself."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import wholerepo
from conftest import MakeRepo, git, write_files
from wholerepo.git.listing import discover


def oracle(cwd: Path, *extra: str) -> list[str]:
    """git's own answer, computed independently of wholerepo."""
    args = extra or ("--cached", "--others", "--exclude-standard")
    out = git(cwd, "ls-files", "-z", *args)
    return sorted(p for p in out.split("\0") if p)


TRICKY = {
    ".gitignore": "*.log\n!keep.log\n/anchored.txt\n/build/\ndocs/*.tmp\n",
    "keep.log": "kept by a negation\n",
    "drop.log": "ignored\n",
    "anchored.txt": "ignored: anchored at the root\n",
    "sub/anchored.txt": "kept: the anchored pattern does not reach here\n",
    "build/out.py": "ignored: /build/ is anchored\n",
    "sub/build/kept.py": "kept: /build/ is anchored at the root\n",
    "docs/notes.tmp": "ignored\n",
    "docs/deep/notes.tmp": "kept: docs/*.tmp does not cross a slash\n",
    "sub/.gitignore": "!important.log\n*.cache\n",
    "sub/important.log": "kept: nested negation\n",
    "sub/other.log": "ignored by the root pattern\n",
    "sub/x.cache": "ignored by the nested .gitignore\n",
    "x.cache": "kept: the nested rule does not apply at the root\n",
    "info_drop.txt": "ignored by info/exclude\n",
    "info_keep.txt": "kept by a negation in info/exclude\n",
    "global.bak": "ignored by core.excludesFile\n",
    "sub/global.bak": "ignored by core.excludesFile\n",
    "forced.log": "force-added\n",
    "src/app.py": "print('app')\n",
    "src/gone.py": "deleted from the work tree after the commit\n",
}


@pytest.fixture
def tricky(make_repo: MakeRepo, isolated_env: Path) -> Path:
    root = make_repo(TRICKY, commit=False, name="tricky")
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("info_*.txt\n!info_keep.txt\n")
    excludes = isolated_env / "global-excludes"
    excludes.write_text("*.bak\n")
    git(root, "config", "--global", "core.excludesFile", str(excludes))
    git(root, "add", "-A")
    git(root, "add", "-f", "forced.log")
    git(root, "commit", "-q", "--no-gpg-sign", "-m", "initial")
    (root / "src" / "gone.py").unlink()
    write_files(root, {"untracked.py": "u = 1\n", "sub/new.md": "# new\n", "new.log": "ignored\n"})
    return root


def test_tricky_repo_oracle_is_what_we_expect(tricky: Path) -> None:
    # Guard against a vacuous oracle: each rule has to have bitten.
    listed = set(oracle(tricky))
    expected_in = {
        "keep.log",
        "sub/anchored.txt",
        "sub/build/kept.py",
        "docs/deep/notes.tmp",
        "sub/important.log",
        "x.cache",
        "info_keep.txt",
        "forced.log",
        "untracked.py",
        "sub/new.md",
        "src/gone.py",
    }
    expected_out = {
        "drop.log",
        "anchored.txt",
        "build/out.py",
        "docs/notes.tmp",
        "sub/other.log",
        "sub/x.cache",
        "info_drop.txt",
        "global.bak",
        "sub/global.bak",
        "new.log",
    }
    assert expected_in <= listed
    assert not expected_out & listed


def test_discover_equals_git_ls_files(tricky: Path) -> None:
    listing = discover(tricky)
    assert listing.in_git
    assert [c.path for c in listing.candidates] == oracle(tricky)
    kinds = {c.path: c.kind for c in listing.candidates}
    assert kinds["src/gone.py"] == "missing"
    assert kinds["forced.log"] == "file"


def test_pack_lists_every_git_file_and_packs_all_but_deleted(tricky: Path) -> None:
    result = wholerepo.pack(tricky, cache=False)
    listed = oracle(tricky)
    assert [f.path for f in result.files] == listed
    gone = result.file("src/gone.py")
    assert gone is not None and gone.status == "skipped" and gone.reason == "deleted"
    assert "deleted from the work tree" not in result.text
    packed = {f.path for f in result.files if f.status == "included"}
    assert packed == set(listed) - {"src/gone.py"}
    for path in packed:
        assert f'<file path="{path}">' in result.text
    assert "ignored by core.excludesFile" not in result.text
    assert "ignored by info/exclude" not in result.text


def test_tracked_only(tricky: Path) -> None:
    listing = discover(tricky, tracked_only=True)
    assert [c.path for c in listing.candidates] == oracle(tricky, "--cached")
    result = wholerepo.pack(tricky, tracked_only=True, cache=False)
    paths = {f.path for f in result.files}
    assert "untracked.py" not in paths and "sub/new.md" not in paths
    assert "forced.log" in paths
    assert "u = 1" not in result.text


def test_subdirectory_target_uses_repository_rules(tricky: Path) -> None:
    sub = tricky / "sub"
    listing = discover(sub)
    expected = oracle(sub)
    assert [c.path for c in listing.candidates] == expected
    assert "important.log" in expected and "anchored.txt" in expected and "other.log" not in expected
    result = wholerepo.pack(sub, cache=False)
    assert [f.path for f in result.files] == expected
    assert all(not f.path.startswith("sub/") for f in result.files)
    assert '<file path="important.log">' in result.text
    assert "print('app')" not in result.text


def test_repository_with_no_commits(make_repo: MakeRepo) -> None:
    root = make_repo({"a.py": "a = 1\n", ".gitignore": "*.pyc\n", "b.pyc": "x"}, commit=False)
    assert [c.path for c in discover(root).candidates] == oracle(root) == [".gitignore", "a.py"]
    result = wholerepo.pack(root, cache=False)
    assert [f.status for f in result.files] == ["included", "included"]


def test_paths_git_would_quote_are_listed_verbatim(make_repo: MakeRepo) -> None:
    names = ["ünïcödé/dätä.py", "with space.py", "-leading-dash.py", "tab\there.py", 'quote"d.py', "日本.md"]
    root = make_repo({n: f"# {i}\n" for i, n in enumerate(names)})
    listing = discover(root)
    assert [c.path for c in listing.candidates] == oracle(root) == sorted(names)
    result = wholerepo.pack(root, cache=False)
    assert {f.path for f in result.files if f.status == "included"} == set(names)


def test_symlinks_are_never_followed(make_repo: MakeRepo, tmp_path: Path) -> None:
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("OUTSIDE-CONTENT-7f3a9\n")
    root = make_repo({"a.py": "inside = 1\n"}, commit=False)
    os.symlink("a.py", root / "link_in.py")
    os.symlink(str(outside), root / "link_out.txt")
    os.symlink("/etc/hostname", root / "hostname.txt")
    os.symlink("loop", root / "loop")
    os.symlink("dir_loop", root / "dir_loop")
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-gpg-sign", "-m", "links")
    os.symlink(str(outside), root / "untracked_link.txt")

    listed = oracle(root)
    assert "untracked_link.txt" in listed and "loop" in listed
    result = wholerepo.pack(root, cache=False)
    assert [f.path for f in result.files] == listed
    reasons = {f.path: f.reason for f in result.files}
    for link in ("link_in.py", "link_out.txt", "hostname.txt", "loop", "dir_loop", "untracked_link.txt"):
        assert reasons[link] == "symlink", link
    assert reasons["a.py"] is None
    assert "OUTSIDE-CONTENT-7f3a9" not in result.text
    hostname = Path("/etc/hostname")
    if hostname.is_file() and len(hostname.read_text().strip()) >= 6:
        assert hostname.read_text().strip() not in result.text
    assert result.text.count("inside = 1") == 1


def test_submodule_is_skipped(make_repo: MakeRepo) -> None:
    lib = make_repo({"lib.py": "LIBRARY_CONTENT = 1\n"}, name="lib")
    root = make_repo({"main.py": "import lib\n"}, name="main")
    git(root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "sm")
    git(root, "commit", "-q", "--no-gpg-sign", "-m", "submodule")
    listed = oracle(root)
    assert "sm" in listed and "sm/lib.py" not in listed
    result = wholerepo.pack(root, cache=False)
    assert [f.path for f in result.files] == listed
    sm = result.file("sm")
    assert sm is not None and sm.status == "skipped" and sm.reason == "submodule"
    assert "LIBRARY_CONTENT" not in result.text
    assert result.file(".gitmodules") is not None


def test_untracked_nested_repository_is_not_read(make_repo: MakeRepo) -> None:
    root = make_repo({"main.py": "x = 1\n"}, name="outer")
    nested = root / "nested"
    nested.mkdir()
    git(nested, "init", "-q")
    (nested / "inner.py").write_text("NESTED_CONTENT = 1\n")
    listed = oracle(root)
    assert "nested/" in listed
    result = wholerepo.pack(root, cache=False)
    assert [f.path for f in result.files] == listed
    entry = result.file("nested/")
    assert entry is not None and entry.status == "skipped" and entry.reason == "submodule"
    assert "NESTED_CONTENT" not in result.text


WALK_TREE = {
    ".gitignore": "*.log\n!keep.log\n/top-only.txt\nbuild/\n",
    "keep.log": "k\n",
    "drop.log": "d\n",
    "top-only.txt": "t\n",
    "a/top-only.txt": "kept\n",
    "a/.gitignore": "!inner.log\n*.tmp\n/anchored-in-a.md\n",
    "a/inner.log": "i\n",
    "a/outer.log": "o\n",
    "a/x.tmp": "x\n",
    "a/anchored-in-a.md": "ignored\n",
    "a/b/anchored-in-a.md": "kept\n",
    "a/b/y.tmp": "ignored by a/.gitignore\n",
    "build/gen.py": "ignored\n",
    "a/build/gen.py": "ignored too: build/ is not anchored\n",
    "src/main.py": "print(1)\n",
}


def test_walk_outside_git_matches_what_git_would_list(make_repo: MakeRepo, tmp_path: Path) -> None:
    plain = make_repo(WALK_TREE, git_init=False, name="plain")
    listing = discover(plain)
    assert not listing.in_git
    # The oracle: the same tree under git.
    copy = tmp_path / "as-git"
    shutil.copytree(plain, copy)
    git(copy, "init", "-q")
    expected = oracle(copy, "--others", "--exclude-standard")
    assert "a/inner.log" in expected and "a/b/anchored-in-a.md" in expected
    assert [c.path for c in listing.candidates] == expected


def test_missing_and_file_paths_are_usage_errors(tmp_path: Path) -> None:
    from wholerepo.errors import UsageError

    with pytest.raises(UsageError, match="does not exist"):
        wholerepo.pack(tmp_path / "nope")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        wholerepo.pack(tmp_path / "f.txt")
