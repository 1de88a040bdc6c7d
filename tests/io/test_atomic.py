"""lsmseg.io.atomic: stale temporary files of interrupted writes, formula-safe CSV cells."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lsmseg.io.atomic import atomic_write, batched_commit, csv_cell, remove_stale_temps


def test_a_killed_writer_leaves_a_temp_file_that_remove_stale_temps_finds(tmp_path: Path) -> None:
    """A process killed inside atomic_write leaves ``.<name>.XXXXXXXX.tmp<ending>``; it is
    removed, the finished files and look-alike names are not."""
    script = (
        "import os, signal, sys\n"
        "from lsmseg.io.atomic import atomic_write\n"
        "with atomic_write(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    target = tmp_path / "cases" / "P1" / "mask.nii.gz"
    done = subprocess.run([sys.executable, "-c", script, str(target)], env=os.environ.copy(), check=False)
    assert done.returncode == -signal.SIGKILL
    (left,) = list(target.parent.iterdir())
    assert left.name.startswith(".mask.nii.gz.") and left.name.endswith(".tmp.nii.gz")
    (tmp_path / "results.csv").write_text("kept\n")
    (tmp_path / ".results.json.abc12_x9.tmp").write_text("{")  # interrupted results.json
    (tmp_path / ".notes.tmp").write_text("a user's hidden file")  # not an atomic_write name
    (tmp_path / ".x.abcdefgh.tmp.d").mkdir()  # a folder is never removed

    removed = remove_stale_temps(tmp_path)

    assert removed == sorted([left, tmp_path / ".results.json.abc12_x9.tmp"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".notes.tmp",
        ".x.abcdefgh.tmp.d",
        "cases",
        "results.csv",
    ]
    assert list(target.parent.iterdir()) == []
    assert remove_stale_temps(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+A1", "'+A1"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-150..-50", "-150..-50"),
        ("-1.5e3", "-1.5e3"),
        (-2.25, "-2.25"),
        (None, ""),
        (float("nan"), ""),
        ("李雷", "李雷"),
    ],
)
def test_csv_cells_neutralise_formulas_but_keep_numbers(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def test_batched_commit_renames_the_files_of_a_block_together_and_none_when_it_fails(tmp_path: Path) -> None:
    case = tmp_path / "cases" / "a"
    with batched_commit():
        with atomic_write(case / "mask.nii") as tmp:
            tmp.write_text("mask")
        with atomic_write(case / "overlay.png") as tmp:
            tmp.write_text("png")
        assert sorted(p.name for p in case.iterdir() if not p.name.startswith(".")) == []  # not yet
    assert (case / "mask.nii").read_text() == "mask" and (case / "overlay.png").read_text() == "png"
    assert [p.name for p in case.iterdir()] != [] and not list(case.glob(".*.tmp*"))

    with pytest.raises(RuntimeError), batched_commit():
        with atomic_write(case / "mask.nii") as tmp:
            tmp.write_text("new mask")
        raise RuntimeError("the SEG writer failed")
    assert (case / "mask.nii").read_text() == "mask"  # the old file stands, no temp file is left
    assert not list(case.glob(".*.tmp*"))
