"""`wholerepo pack` through click: outputs, manifest, summary, and every error path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result
from tokenizers import Tokenizer as HFTokenizer

import wholerepo
from conftest import MakeRepo, git
from wholerepo.cli import main

MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["tokenizer", "budget", "prompt_tokens", "files"],
    "properties": {
        "tokenizer": {"type": "string"},
        "budget": {"type": "integer"},
        "prompt_tokens": {"type": "integer"},
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "status", "reason", "tokens", "bytes", "lines"],
                "properties": {
                    "path": {"type": "string"},
                    "status": {"enum": ["included", "compressed", "truncated", "skipped"]},
                    "reason": {"type": ["string", "null"]},
                    "tokens": {"type": "integer", "minimum": 0},
                    "bytes": {"type": "integer", "minimum": 0},
                    "lines": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    # Never a traceback: any exception other than a clean exit is a bug.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    return result


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""


FILES = {
    "README.md": "# Demo\n",
    "src/app.py": "def main():\n    return 42\n",
    "src/data.bin.py": b"\x00\x01\x02binary",
    "package-lock.json": "{}\n",
    "dir with space/ünï.py": "u = 1\n",
    "-dash.py": "d = 1\n",
}


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    return make_repo(FILES, name="clirepo")


def test_pack_to_stdout_with_summary_on_stderr(repo: Path, hf: HFTokenizer) -> None:
    result = run("pack", str(repo))
    assert result.exit_code == 0, result.stderr
    api = wholerepo.pack(repo, cache=False)
    assert result.stdout == api.text
    assert result.stdout.startswith("<repository>")
    summary = result.stderr
    assert "packed 4 of 6 files" in summary
    assert f"{api.prompt_tokens:,}" in summary and "deepseek-v4" in summary
    assert "binary" in summary and "lockfile" in summary
    assert "largest files" in summary and "src/app.py" in summary
    assert len(hf.encode(result.stdout, add_special_tokens=False).ids) == api.prompt_tokens


def test_quiet_and_output_file(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.md"
    result = run("pack", str(repo), "-o", str(out), "--style", "markdown", "-q")
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""
    assert out.read_text(encoding="utf-8") == wholerepo.pack(repo, style="markdown", cache=False).text


def test_default_path_is_the_current_directory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo / "src")
    result = run("pack", "-q", "--no-line-numbers")
    assert result.exit_code == 0
    assert '<file path="app.py">\ndef main():\n    return 42\n</file>' in result.stdout
    assert "README" not in result.stdout


def test_a_dash_output_is_standard_output(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    result = run("pack", "-o", "-", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == run("pack", "-q").stdout and result.stdout.startswith("<repository>")
    assert not (repo / "-").exists()


def test_manifest_lists_every_git_file(repo: Path, tmp_path: Path, hf: HFTokenizer) -> None:
    (repo / "untracked.py").write_text("new = 1\n")
    (repo / "src" / "app.py").unlink()
    manifest = tmp_path / "m.json"
    out = tmp_path / "out.xml"
    result = run("pack", str(repo), "--manifest", str(manifest), "-o", str(out), "--budget", "5000")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    jsonschema.validate(doc, MANIFEST_SCHEMA)
    assert doc["tokenizer"] == "deepseek-v4" and doc["budget"] == 5000
    git_out = git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    listed = sorted(p for p in git_out.split("\0") if p)
    assert [f["path"] for f in doc["files"]] == listed
    by_path = {f["path"]: f for f in doc["files"]}
    assert by_path["src/app.py"]["reason"] == "deleted"
    assert by_path["src/data.bin.py"]["reason"] == "binary"
    assert by_path["package-lock.json"]["reason"] == "lockfile"
    assert by_path["untracked.py"] == {
        "path": "untracked.py",
        "status": "included",
        "reason": None,
        "tokens": by_path["untracked.py"]["tokens"],
        "bytes": 8,
        "lines": 1,
    }
    assert by_path["dir with space/ünï.py"]["status"] == "included"
    assert "\\u" not in manifest.read_text(encoding="utf-8")  # unicode paths unescaped
    text = out.read_text(encoding="utf-8")
    assert doc["prompt_tokens"] == len(hf.encode(text, add_special_tokens=False).ids)
    included = [f for f in doc["files"] if f["status"] == "included"]
    assert sum(f["tokens"] for f in included) < doc["prompt_tokens"]


def test_packing_into_the_repository_twice_gives_the_same_output(repo: Path) -> None:
    # The README's own set-up command: the output and manifest must not pack themselves.
    out, manifest = repo / "repo.xml", repo / "manifest.json"
    first = run("pack", str(repo), "-o", str(out), "--manifest", str(manifest), "-q")
    assert first.exit_code == 0
    text, listing = out.read_bytes(), manifest.read_bytes()
    second = run("pack", str(repo), "-o", str(out), "--manifest", str(manifest))
    assert second.exit_code == 0
    assert out.read_bytes() == text and manifest.read_bytes() == listing
    paths = [f["path"] for f in json.loads(listing)["files"]]
    assert "repo.xml" not in paths and "manifest.json" not in paths
    assert "packed 4 of 6 files" in second.stderr


def test_flags_reach_the_pack(repo: Path) -> None:
    result = run(
        "pack",
        str(repo),
        "-q",
        "--style",
        "json",
        "--no-line-numbers",
        "-i",
        "*.py",
        "-e",
        "dir with space/",
        "--max-file-size",
        "1000",
        "--tracked-only",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [f["path"] for f in doc["files"]] == ["-dash.py", "src/app.py"]
    assert doc["files"][1]["content"] == FILES["src/app.py"]


def test_line_number_modes(repo: Path) -> None:
    every = run("pack", str(repo), "-q", "--line-numbers", "all", "-i", "src/app.py").stdout
    assert "1|def main():\n2|    return 42\n" in every
    none = run("pack", str(repo), "-q", "--line-numbers", "none", "-i", "src/app.py").stdout
    assert "\ndef main():\n    return 42\n" in none and "1|def" not in none


def test_budget_too_small_is_a_one_line_error(repo: Path) -> None:
    assert_one_line_error(run("pack", str(repo), "--budget", "20"), "budget", "20")


def test_budget_is_held_through_the_cli(make_repo: MakeRepo, hf: HFTokenizer, tmp_path: Path) -> None:
    root = make_repo({f"src/m{i:02d}.py": f"value_{i} = {i}\n" * (10 + 7 * i) for i in range(30)})
    manifest = tmp_path / "m.json"
    result = run("pack", str(root), "--budget", "3000", "--manifest", str(manifest), "-q")
    assert result.exit_code == 0
    n = len(hf.encode(result.stdout, add_special_tokens=False).ids)
    assert 2400 <= n <= 3000
    doc = json.loads(manifest.read_text())
    assert doc["prompt_tokens"] == n
    assert any(f["reason"] == "over-budget" and f["status"] == "skipped" for f in doc["files"])


def test_missing_path(tmp_path: Path) -> None:
    assert_one_line_error(run("pack", str(tmp_path / "nowhere")), "does not exist", "nowhere")


def test_path_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert_one_line_error(run("pack", str(f)), "not a directory")


def test_empty_repository(make_repo: MakeRepo) -> None:
    root = make_repo({}, commit=False)
    assert_one_line_error(run("pack", str(root)), "no files")


def test_repository_without_commits_works(make_repo: MakeRepo) -> None:
    root = make_repo({"a.py": "a = 1\n"}, commit=False)
    result = run("pack", str(root))
    assert result.exit_code == 0 and '<file path="a.py">' in result.stdout


def test_non_git_directory_works_and_says_so(make_repo: MakeRepo) -> None:
    root = make_repo(
        {
            ".gitignore": "*.log\n",
            "a.py": "a = 1\n",
            "x.log": "LOGGED\n",
            "sub/.gitignore": "secret/\n!keep.log\n",
            "sub/keep.log": "KEPT\n",
            "sub/secret/s.py": "NESTED_IGNORED\n",
        },
        git_init=False,
    )
    result = run("pack", str(root))
    assert result.exit_code == 0
    assert "not a git repository" in result.stderr and ".gitignore" in result.stderr
    assert "LOGGED" not in result.stdout and "NESTED_IGNORED" not in result.stdout
    assert "KEPT" in result.stdout


def test_unreadable_file_is_skipped_not_fatal(make_repo: MakeRepo, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop reads")
    root = make_repo({"a.py": "a = 1\n", "locked.py": "l = 1\n"})
    (root / "locked.py").chmod(0)
    manifest = tmp_path / "m.json"
    try:
        result = run("pack", str(root), "--manifest", str(manifest))
    finally:
        (root / "locked.py").chmod(0o644)
    assert result.exit_code == 0
    reasons = {f["path"]: f["reason"] for f in json.loads(manifest.read_text())["files"]}
    assert reasons == {"a.py": None, "locked.py": "unreadable"}


def test_output_into_missing_directory_creates_it(repo: Path, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "out.xml"
    result = run("pack", str(repo), "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert target.read_text(encoding="utf-8").startswith("<repository>")
    assert f"wrote {target}" in result.stderr


def test_output_where_a_file_blocks_the_directory(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory\n")
    result = run("pack", str(repo), "-o", str(tmp_path / "blocker" / "out.xml"))
    assert_one_line_error(result, "cannot write")


def test_bad_flag_values_exit_2_without_traceback(repo: Path) -> None:
    for args in (["--style", "html"], ["--budget", "0"], ["--budget", "lots"], ["--tokenizer", "gpt2"]):
        result = run("pack", str(repo), *args)
        assert result.exit_code == 2, args
        assert "Error" in result.stderr and result.stdout == ""


def test_unavailable_tokenizer_is_a_one_line_error(repo: Path, tmp_path: Path) -> None:
    import tiktoken

    if "o200k_base_offline" in tiktoken.list_encoding_names():
        pytest.skip("o200k_base is bundled on this machine")
    result = run("pack", str(repo), "--tokenizer", "o200k_base", env={"TIKTOKEN_CACHE_DIR": str(tmp_path)})
    assert_one_line_error(result, "o200k_base")


def test_cl100k_counts_differ_and_are_exact(repo: Path) -> None:
    result = run("pack", str(repo), "--tokenizer", "cl100k_base", "--no-cache")
    assert result.exit_code == 0, result.stderr
    from wholerepo.tokens import get_tokenizer

    n = len(get_tokenizer("cl100k_base").encode(result.stdout))
    assert f"{n:,} exact (cl100k_base)" in result.stderr


def test_no_cache_flag(repo: Path, isolated_env: Path) -> None:
    assert run("pack", str(repo), "--no-cache", "-q").exit_code == 0
    assert not (isolated_env / "cache").exists()
    assert run("pack", str(repo), "-q").exit_code == 0
    assert list((isolated_env / "cache").glob("*.sqlite"))


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert "wholerepo" in result.stdout and version("wholerepo") in result.stdout


def test_help_shows_examples() -> None:
    result = run("pack", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and "wholerepo pack " in result.stdout
    for flag in ("--style", "--budget", "--manifest", "--tracked-only", "--no-cache", "--max-file-size"):
        assert flag in result.stdout
    top = run("--help")
    assert "wholerepo pack" in top.stdout


def test_console_entry_point_exit_codes_and_a_reader_that_leaves(make_repo: MakeRepo) -> None:
    # The real process (python -m wholerepo runs cli.run, as the console script does).
    root = make_repo({f"m{i}.py": f"value_{i} = {i}\n" * 400 for i in range(30)})
    cmd = [sys.executable, "-m", "wholerepo"]
    ok = subprocess.run([*cmd, "pack", str(root), "-q"], capture_output=True, check=False)
    assert ok.returncode == 0 and ok.stdout.endswith(b"</repository>\n") and ok.stderr == b""
    bad = subprocess.run([*cmd, "pack", str(root / "missing")], capture_output=True, check=False)
    assert bad.returncode == 2 and bad.stderr.decode().startswith("Error: ")
    assert bad.stderr.decode().count("\n") == 1
    # `wholerepo pack | head -c 100`: the reader leaves early; no traceback, no noise.
    proc = subprocess.Popen([*cmd, "pack", str(root), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert len(head) == 100 and err == b""


def test_a_profile_prints_its_table(repo: Path, tmp_path: Path) -> None:
    # The console script ends the normal way (no os._exit), so profilers get to report.
    out = tmp_path / "o.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cProfile",
            "-s",
            "cumtime",
            "-m",
            "wholerepo",
            "pack",
            str(repo),
            "-q",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "function calls" in proc.stdout and "cumtime" in proc.stdout
    assert out.read_text(encoding="utf-8").startswith("<repository>")
