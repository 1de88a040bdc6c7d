"""``lsmseg tune``: the command is registered with an instant --help, bad options are usage
errors, and (slow) a tiny study runs, resumes to its budget and its override file trains."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from lsmseg.cli.main import main
from tests.helpers.cli import probe_cli
from tests.helpers.experiments import REPO, SIT_BUNDLE, write_tiny_sit

TINY = ["--max-epochs", "1", "--patience", "1", "--set", "image_size=32", "--set", "ngf=4", "--set", "ndf=4",
        "--set", "batch_size=8"]  # fmt: skip


def test_help_is_instant_and_bad_options_are_usage_errors(tmp_path: Path) -> None:
    out = probe_cli(
        ["tune", "--help"], ["tune", "--bundle", "x", "--method", "lsm", "--proportion", "2", "--out", "o"]
    )
    assert "--storage URL" in out and "best_overrides.json" in out
    assert out.count("exit 0") == 1 and "exit 2" in out and "heavy []" in out
    args = [
        "tune",
        "--bundle",
        str(SIT_BUNDLE),
        "--method",
        "nope",
        "--proportion",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 2


@pytest.mark.slow
def test_tiny_study_resumes_to_its_budget_and_its_best_settings_train(tmp_path: Path) -> None:
    data = write_tiny_sit(tmp_path / "sit32")
    out = tmp_path / "tune"
    args = ["tune", "--bundle", str(SIT_BUNDLE), "--method", "lsm", "--proportion", "0.5", "--out", str(out),
            *TINY, "--set", f"dataset_dir={data}"]  # fmt: skip
    assert main([*args, "--trials", "2"]) == 0
    assert main([*args, "--trials", "3"]) == 0  # continues the same study: one more trial
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["number"], r["state"]) for r in rows] == [
        ("0", "COMPLETE"),
        ("1", "COMPLETE"),
        ("2", "COMPLETE"),
    ]
    assert all(0.0 <= float(r["value"]) <= 1.0 and r["epochs"] == "1" for r in rows)
    assert len({r["learning_rate"] for r in rows}) == 3  # the resumed sampler drew a new point
    best = json.loads((out / "best_overrides.json").read_text())
    tuned = {"learning_rate", "lambdas#rec", "lambdas#sup", "lambdas#reverse", "lambdas#lat", "lambdas#adv"}
    assert tuned <= set(best) and best["method"] == "lsm" and best["proportion"] == 0.5
    assert best["learning_rate"] == float(max(rows, key=lambda r: float(r["value"]))["learning_rate"])
    assert not (out / "trials" / "0000" / "ckpt").exists()
    # The pruning handler reported each validation (1 epoch: the value itself) to the study.
    study = optuna.load_study(study_name="lsm_sit_lsm_p0.5", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.intermediate_values for t in study.trials] == [{1: t.value} for t in study.trials]

    files = str([str(SIT_BUNDLE / "configs" / "train.json"), str(out / "best_overrides.json")])
    folders = ["--ckpt_dir", str(tmp_path / "models"), "--output_dir", str(tmp_path / "eval")]
    command = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", files, *folders]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "models" / "model.json").read_text())
    assert record["network"]["args"]["ngf"] == 4 and record["training"]["method"] == "lsm"
