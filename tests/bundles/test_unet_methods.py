"""``unet`` and ``meanteacher`` as ``method`` of every segmentation bundle: the network they
record, and a tiny SIT run that trains, writes ``model.json`` and is evaluated from it alone."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from tests.conftest import PYTHON, REPO
from tests.helpers.bundles import copy_bundle

SEGMENTATION_BUNDLES = ("lsm_sss", "sop_sss", "ioda_sss", "lsm_sit")
NETWORKS = {"unet": "SegmentationUNet", "meanteacher": "MeanTeacherUNet", "lsm": "LatentSpaceMapping"}
SMOKE = ["--max_epochs", "1", "--ngf", "4", "--ndf", "4", "--image_size", "64", "--batch_size", "8"]


@pytest.mark.parametrize("bundle", SEGMENTATION_BUNDLES)
@pytest.mark.parametrize("method", list(NETWORKS))
def test_the_method_picks_the_network_the_bundle_builds_and_records(bundle: str, method: str) -> None:
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / bundle / "configs" / "train.json"))
    parser.update({"method": method, "ngf": 4, "network_record#training": {}})
    record = parser.get_parsed_content("network_record")
    network = parser.get_parsed_content("network_def")
    assert record["network"]["name"] == type(network).__name__ == NETWORKS[method]
    assert record["network"]["args"]["ngf"] == 4
    json.dumps(record["network"])  # model.json holds it as data


def _run(bundle: Path, run_id: str, configs: list[str], *args: str) -> subprocess.CompletedProcess:
    at = bundle / "configs"
    files = str([str(at / c) for c in configs]) if len(configs) > 1 else str(at / configs[0])
    cmd = [PYTHON, "-m", "monai.bundle", "run", run_id, "--config_file", files, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["unet", "meanteacher"])
def test_sit_trains_records_and_evaluates_from_the_record(method: str, sit_dir: Path, tmp_path: Path) -> None:
    bundle = copy_bundle("lsm_sit", tmp_path)  # evaluation writes a model card into the bundle
    models, out = tmp_path / "models", tmp_path / "eval"
    where = ["--dataset_dir", str(sit_dir), "--ckpt_dir", str(models), "--output_dir", str(out)]
    r = _run(bundle, "training", ["train.json"], *SMOKE, "--method", method, "--proportion", "0.5", *where)
    assert r.returncode == 0, r.stderr[-3000:]
    record = json.loads((models / "model.json").read_text())
    assert record["network"]["name"] == NETWORKS[method] and record["training"]["method"] == method
    assert record["training"]["finished"] is True
    # evaluation and inference get no method and no ngf: the record says what to build
    r = _run(bundle, "run", ["train.json", "evaluate.json"], *where)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0 and metrics["n"] == 12
    pred = tmp_path / "pred"
    r = _run(
        bundle,
        "run",
        ["inference.json"],
        "--dataset_dir",
        str(sit_dir),
        "--ckpt_dir",
        str(models),
        "--output_dir",
        str(pred),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list(pred.glob("*.png"))) == 60
