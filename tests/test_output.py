"""Outputs are written atomically: a full disk or an unwritable path leaves nothing half-written."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from conftest import MakeRepo


def _small_file_limit() -> None:
    # A file-size limit makes every write past 4 KB fail with EFBIG, as a full disk fails them
    # with ENOSPC: the same code path (an OSError mid-write).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_full_disk_keeps_the_old_output_and_leaves_no_temp_file(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo({"big.py": "x = 1\n" * 5000, "README.md": "# r\n"})
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "pack.xml"
    target.write_text("previous pack\n")
    proc = subprocess.run(
        [sys.executable, "-m", "wholerepo", "pack", str(repo), "-o", str(target), "-q"],
        capture_output=True,
        text=True,
        preexec_fn=_small_file_limit,
        env=os.environ.copy(),
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("Error: cannot write") and "pack.xml" in line
    assert target.read_text() == "previous pack\n"  # the old file is intact
    assert sorted(p.name for p in out_dir.iterdir()) == ["pack.xml"]  # no temp file left


def test_unwritable_output_directory_is_one_line(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo({"a.py": "print(1)\n"})
    (tmp_path / "file").write_text("x\n")
    proc = subprocess.run(
        [sys.executable, "-m", "wholerepo", "pack", str(repo), "-o", str(tmp_path / "file" / "x.xml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: cannot write")
    assert "Traceback" not in proc.stderr
