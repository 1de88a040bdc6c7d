"""``segment --shard K/N`` + ``lsmseg merge``, and ``segment`` under torchrun (2 CPU processes,
gloo), give the results of a single-process run: the same rows, order, provenance and masks."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lsmseg.cli.main import main
from lsmseg.data.phantom import write_cohort
from tests.helpers.cli import probe_cli
from tests.helpers.clinical import nifti, tiny_bundle

REPO = Path(__file__).resolve().parents[2]
TIMING = ("runtime_s",)  # the only columns that may differ between runs
PER_RUN = ("date",)  # provenance: when the run started


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    write_cohort(folder, 5, fmt="dicom", seed=3, size=256)
    return folder


def segment_args(cohort: Path, out: Path) -> list[str]:
    return [
        "segment",
        str(cohort / "images"),
        "--out",
        str(out),
        "--bundle",
        str(tiny_bundle()),
        "--patients",
        str(cohort / "patients.csv"),
        "--device",
        "cpu",
        "--batch-size",
        "2",
        "--no-progress",
    ]


@pytest.fixture(scope="module")
def single(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single")
    assert main(segment_args(cohort, out)) == 0
    return out


def csv_without_timing(path: Path) -> str:
    """results.csv as text with the timing columns taken out."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    keep = [i for i, name in enumerate(rows[0]) if name not in TIMING]
    return "\n".join(",".join(row[i] for i in keep) for row in rows)


def json_without_timing(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    for key in PER_RUN:
        document["provenance"].pop(key)
    for row in document["cases"]:
        for key in TIMING:
            row.pop(key)
    return document


def assert_same_results(out: Path, single: Path) -> None:
    assert csv_without_timing(out / "results.csv") == csv_without_timing(single / "results.csv")
    assert json_without_timing(out / "results.json") == json_without_timing(single / "results.json")
    masks = sorted(p.relative_to(single) for p in single.glob("cases/*/mask*.nii.gz"))
    assert masks and masks == sorted(p.relative_to(out) for p in out.glob("cases/*/mask*.nii.gz"))
    for mask in masks:
        a, b = nifti(single / mask), nifti(out / mask)
        assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj)) and np.array_equal(
            a.affine, b.affine
        )
    assert not list(out.glob("results.shard-*"))  # merged: no shard file left over ...
    assert not list(out.rglob(".*.tmp*"))  # ... and no temporary file


@pytest.mark.slow
def test_two_shards_and_merge_give_the_single_runs_results(
    cohort: Path, single: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert main([*segment_args(cohort, out), "--shard", "0/2"]) == 0
    assert main([*segment_args(cohort, out), "--shard", "1/2"]) == 0
    assert {p.name for p in out.glob("results*")} == {
        f"results.shard-{k}-of-2.{ext}" for k in range(2) for ext in ("csv", "json")
    }
    assert main(["merge", str(out)]) == 0
    for shard in out.glob("results.shard-*"):
        shard.unlink()
    assert_same_results(out, single)
    # a shard resumes from its own results file: nothing is done again
    assert main([*segment_args(cohort, out), "--shard", "1/2", "--resume"]) == 0
    again = json.loads((out / "results.shard-1-of-2.json").read_text())["cases"]
    assert [r["case_id"] for r in again] == ["phantom_0002", "phantom_0004"]


@pytest.mark.slow
def test_torchrun_on_two_cpu_processes_gives_the_single_runs_results(
    cohort: Path, single: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [*torchrun, "-m", "lsmseg.cli.main", *segment_args(cohort, out)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert done.stdout.count("5 of 5 cases measured") == 1  # rank 0 reports the whole cohort
    assert_same_results(out, single)
    # --resume under torchrun keeps every finished case: no case file is written again
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("cases/*/*")}
    done = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    assert_same_results(out, single)


def test_a_bad_shard_or_nothing_to_merge_is_a_usage_error(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main([*segment_args(cohort, out), "--shard", "2/2"]) == 2
    assert "--shard 2/2: K counts from 0 and must be below N (0/2 ... 1/2)" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "empty").mkdir()
    assert main(["merge", str(tmp_path / "empty")]) == 2
    assert "no shard results (results.shard-K-of-N.json)" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "empty"), str(tmp_path)]) == 2
    assert "name the merged folder with --out DIR" in capsys.readouterr().err


def test_merge_help_answers_without_importing_torch() -> None:
    out = probe_cli(["merge", "--help"], ["segment", "--help"])
    assert "heavy []" in out and "Traceback" not in out, out
    assert "results.shard-K-of-N.json" in out and "--out DIR" in out
    assert "--shard K/N" in out and "--workers N" in out
