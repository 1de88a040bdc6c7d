"""The mission's path end to end: a bundle trained at other settings segments a cohort as it is.

Training records the network it used in ``models/model.json``; ``lsmseg segment`` builds the
network from that record, so a bundle trained with ``--ngf 8 --image_size 64`` is used with no
file edited (the first round needed inference.json patched by hand).
"""

from __future__ import annotations

import csv
import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.bundles import REPO, copy_bundle

pytestmark = pytest.mark.slow


def _run(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_a_bundle_trained_at_ngf_8_and_64_px_segments_a_cohort_with_no_file_edited(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    made = _run(
        [sys.executable, "-m", "lsmseg.cli.main", "phantom", str(cohort), "--n", "12", "--format", "dicom"]
    )
    assert made.returncode == 0, made.stderr
    bundle = copy_bundle("lsm_sss", tmp_path)
    shipped = tmp_path / "shipped"
    copy_bundle("lsm_sss", shipped)

    trained = _run(
        [sys.executable, "-m", "monai.bundle", "run", "training",
         "--config_file", str(bundle / "configs" / "train.json"),
         "--dataset_dir", str(cohort), "--max_epochs", "2", "--ngf", "8", "--ndf", "8",
         "--image_size", "64", "--batch_size", "4"]
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-4000:]
    record = json.loads((bundle / "models" / "model.json").read_text())
    assert record["network"]["args"]["ngf"] == 8 and record["preprocessing"]["image_size"] == 64
    # no config file of the bundle was edited by training or by hand
    configs = sorted(p.name for p in (bundle / "configs").iterdir())
    _, mismatch, errors = filecmp.cmpfiles(bundle / "configs", shipped / "lsm_sss" / "configs", configs)
    assert mismatch == [] and errors == []

    out = tmp_path / "out"
    seg = _run(
        [sys.executable, "-m", "lsmseg.cli.main", "segment", str(cohort / "images"), "--out", str(out),
         "--bundle", str(bundle), "--patients", str(cohort / "patients.csv"), "--device", "cpu",
         "--no-progress", "--allow-weak-model"]  # two epochs: below the quality floor, on purpose
    )  # fmt: skip
    assert seg.returncode == 0, seg.stderr[-4000:]
    with open(out / "results.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and {r["status"] for r in rows} == {"ok"}
    assert all(float(r["muscle_area_cm2"]) > 0 for r in rows)
    assert all((out / "cases" / r["case_id"] / "mask.nii.gz").is_file() for r in rows)
