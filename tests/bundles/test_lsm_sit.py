"""The SIT bundle: configs load, train / evaluate / infer from the command line, torchrun, bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, REPO

BUNDLE = REPO / "bundles" / "lsm_sit"
CONFIGS = BUNDLE / "configs"
SMOKE = ["--max_epochs", "1", "--ngf", "4", "--ndf", "4", "--image_size", "64", "--batch_size", "8"]


def _cmd(run_id: str, configs: list[str], *args: str) -> list[str]:
    files = str([str(CONFIGS / c) for c in configs]) if len(configs) > 1 else str(CONFIGS / configs[0])
    return [PYTHON, "-m", "monai.bundle", "run", run_id, "--config_file", files, *args]


def _run(cmd: list[str], timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=e)


def test_train_json_has_the_contract_ids() -> None:
    config = json.loads((CONFIGS / "train.json").read_text())
    ids = "bundle_root dataset_dir output_dir ckpt_dir device method max_epochs batch_size learning_rate"
    ids += " proportion image_size ngf seed patience val_interval lambdas num_workers amp initialize run finalize training"
    assert set(ids.split()) <= set(config)


@pytest.mark.slow
def test_train_evaluate_and_infer_from_the_command_line(sit_dir: Path, tmp_path: Path) -> None:
    out = [
        "--dataset_dir",
        str(sit_dir),
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        str(tmp_path / "eval"),
    ]
    r = _run(_cmd("training", ["train.json"], *SMOKE, *out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "models" / "model.pt").is_file()
    # the model card goes to <bundle_root>/docs: a scratch root keeps the shipped card intact
    card_root = ["--bundle_root", str(tmp_path)]
    r = _run(_cmd("run", ["train.json", "evaluate.json"], *SMOKE, *out, *card_root))
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0 and metrics["n"] == 12 and set(metrics["iou"]) == {"ring"}
    assert 0.0 < metrics["floor"] < 1.0 and 0.0 <= metrics["floor_threshold"] <= 1.0
    pred_dir = tmp_path / "pred"
    infer = ["--output_dir", str(pred_dir)]  # the network comes from models/model.json
    r = _run(
        _cmd(
            "run",
            ["inference.json"],
            *infer,
            "--dataset_dir",
            str(sit_dir),
            "--ckpt_dir",
            str(tmp_path / "models"),
        )
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list(pred_dir.glob("*.png"))) == 60


@pytest.mark.slow
def test_ioda_method_override_trains_its_three_stages(sit_dir: Path, tmp_path: Path) -> None:
    out = ["--dataset_dir", str(sit_dir), "--ckpt_dir", str(tmp_path), "--output_dir", str(tmp_path)]
    r = _run(_cmd("training", ["train.json"], *SMOKE, "--method", "ioda", "--proportion", "0.3", *out))
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert "stage pretrain_y" in log and "stage finetune" in log
    assert (tmp_path / "model.pt").is_file()


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu_with_gloo(sit_dir: Path, tmp_path: Path) -> None:
    files = str([str(CONFIGS / "train.json"), str(CONFIGS / "multi_gpu_train.json")])
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", files, *SMOKE]
    cmd += ["--dataset_dir", str(sit_dir), "--ckpt_dir", str(tmp_path), "--output_dir", str(tmp_path)]
    r = _run(cmd, timeout=400)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert (tmp_path / "model.pt").is_file()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--dataset_dir", "/nonexistent/sit"], "dataset_dir /nonexistent/sit does not exist"),
        (["--proportion", "1.5"], "proportion must be in (0, 1]"),
        (["--method", "unetr"], "valid: basic, sop, ioda, lsm"),
        (["--adversarial", "wgan"], "valid: confusion, bce"),
    ],
)
def test_bad_input_gives_one_line_naming_the_valid_choices(
    override: list[str], message: str, sit_dir: Path, tmp_path: Path
) -> None:
    args = ["--dataset_dir", str(sit_dir), "--ckpt_dir", str(tmp_path), *SMOKE, *override]
    r = _run(_cmd("training", ["train.json"], *args), timeout=120)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_empty_dataset_dir_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _run(_cmd("training", ["train.json"], "--dataset_dir", str(empty), *SMOKE), timeout=120)
    assert r.returncode != 0 and f"dataset_dir {empty} is empty" in r.stderr and "Traceback" not in r.stderr
