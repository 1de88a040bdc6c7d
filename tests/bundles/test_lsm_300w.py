"""The 300-W landmark bundle: configs load, train / evaluate / infer from the command line, torchrun,
both data layouts, bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from monai.bundle import ConfigWorkflow

from lsmseg.data.w300 import read_pts, square_crop_box
from tests.conftest import PYTHON, REPO

BUNDLE = REPO / "bundles" / "lsm_300w"
CONFIGS = BUNDLE / "configs"
TINY = ["--ngf", "4", "--ndf", "4"]
SMOKE = ["--max_epochs", "1", "--batch_size", "4", *TINY]


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 synthetic faces in the 300-W layout: 12 train, 4 valid, 4 test."""
    from lsmseg.data.faces import write_300w_layout

    return write_300w_layout(tmp_path_factory.mktemp("faces"), 20, seed=1)


def _cmd(run_id: str, configs: list[str], *args: str) -> list[str]:
    files = str([str(CONFIGS / c) for c in configs]) if len(configs) > 1 else str(CONFIGS / configs[0])
    return [PYTHON, "-m", "monai.bundle", "run", run_id, "--config_file", files, *args]


def _run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def test_train_json_has_the_contract_ids_and_the_paper_settings() -> None:
    config = json.loads((CONFIGS / "train.json").read_text())
    ids = "bundle_root dataset_dir output_dir ckpt_dir device method max_epochs batch_size learning_rate"
    ids += " proportion image_size ngf seed patience val_interval lambdas num_workers amp initialize run finalize training"
    assert set(ids.split()) <= set(config)
    assert (config["image_size"], config["ngf"], config["batch_size"], config["learning_rate"]) == (
        64,
        64,
        32,
        1e-4,
    )
    assert list(config["validate"]["key_metric"]) == ["val_nrmse"]
    assert config["validate"]["early_stop"]["mode"] == "min"


@pytest.mark.slow
def test_train_evaluate_and_infer_from_the_command_line(faces_dir: Path, tmp_path: Path) -> None:
    out = [
        "--dataset_dir",
        str(faces_dir),
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--output_dir",
        str(tmp_path / "eval"),
    ]
    # proportion 0.5: paired, image-only and landmarks-only rows, so every loss term runs.
    r = _run(_cmd("training", ["train.json"], *SMOKE, "--proportion", "0.5", *out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "models" / "model.pt").is_file()
    assert "val_nrmse" in r.stdout + r.stderr and "train_adv_landmarks" in r.stdout + r.stderr

    # the model card goes to <bundle_root>/docs: a scratch root keeps the shipped card intact
    card_root = ["--bundle_root", str(tmp_path)]
    r = _run(_cmd("run", ["train.json", "evaluate.json"], *SMOKE, *out, *card_root))
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"nrmse", "n", "floor"} and metrics["n"] == 4 and 0.0 < metrics["nrmse"] < 10.0
    assert 0.0 < metrics["floor"] < 10.0

    pred_dir = tmp_path / "pred"
    models = ["--ckpt_dir", str(tmp_path / "models")]
    r = _run(
        _cmd(
            "run",
            ["inference.json"],
            "--dataset_dir",
            str(faces_dir),
            "--output_dir",
            str(pred_dir),
            *models,
        )
    )
    assert r.returncode == 0, r.stderr[-3000:]
    written = sorted(p.stem for p in pred_dir.glob("*.pts"))
    assert len(written) == 20 and written[0] == "indoor_001"
    predicted, truth = (
        read_pts(pred_dir / "indoor_001.pts"),
        read_pts(faces_dir / "01_Indoor" / "indoor_001.pts"),
    )
    x0, y0, side = square_crop_box(truth)
    # A sigmoid keeps every point inside the crop: in the photograph's pixels, the annotated face box.
    assert np.all(predicted >= [x0 - 0.5, y0 - 0.5]) and np.all(
        predicted <= [x0 + side - 0.5, y0 + side - 0.5]
    )
    assert (x0, y0) != (0, 0)  # so 64x64-crop coordinates would fail the check above

    crops = tmp_path / "crops"
    crops.mkdir()
    from skimage.io import imsave

    imsave(crops / "face_a.png", np.full((80, 60, 3), 120, np.uint8), check_contrast=False)
    r = _run(
        _cmd(
            "run",
            ["inference.json"],
            "--dataset_dir",
            str(crops),
            "--output_dir",
            str(tmp_path / "p2"),
            *models,
        )
    )
    assert r.returncode == 0, r.stderr[-3000:]
    points = read_pts(tmp_path / "p2" / "face_a.pts")
    assert points.shape == (68, 2) and np.all(points >= -0.5) and np.all(points <= [59.5, 79.5])


@pytest.mark.slow
def test_prepared_arrays_train_like_the_300w_layout(faces_dir: Path, tmp_path: Path) -> None:
    prepared = tmp_path / "prepared"
    r = _run(
        [PYTHON, str(REPO / "data_prep" / "prepare_300w.py"), "--src", str(faces_dir), "--out", str(prepared)]
    )
    assert r.returncode == 0, r.stderr
    out = ["--dataset_dir", str(prepared), "--ckpt_dir", str(tmp_path), "--output_dir", str(tmp_path)]
    r = _run(_cmd("training", ["train.json"], *SMOKE, "--method", "basic", *out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "model.pt").is_file()


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu_with_gloo(faces_dir: Path, tmp_path: Path) -> None:
    files = str([str(CONFIGS / "train.json"), str(CONFIGS / "multi_gpu_train.json")])
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]
    cmd += ["-m", "monai.bundle", "run", "--config_file", files, *SMOKE, "--proportion", "0.5"]
    cmd += ["--dataset_dir", str(faces_dir), "--ckpt_dir", str(tmp_path), "--output_dir", str(tmp_path)]
    r = _run(cmd, timeout=400)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert (tmp_path / "model.pt").is_file()
    assert "val_nrmse" in r.stdout + r.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"dataset_dir": "/nonexistent/300w"}, "dataset_dir /nonexistent/300w does not exist"),
        ({"proportion": 0}, "proportion must be in (0, 1]"),
        ({"method": "unetr"}, "valid: basic, sop, ioda, lsm"),
        # the U-Net methods segment images: named with the methods a landmark bundle trains
        (
            {"method": "unet"},
            "domains are (image, landmarks); methods for it: basic, sop, ioda, lsm, pix2pix",
        ),
        ({"method": "meanteacher"}, "trains a U-Net that segments an image into a mask"),
        ({"dataset_dir": "JUNK"}, "neither a 300-W layout"),
    ],
)
def test_bad_input_stops_before_any_work_naming_the_valid_choices(
    override: dict, message: str, faces_dir: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not a data set")
    settings = {
        "dataset_dir": str(faces_dir),
        "ckpt_dir": str(tmp_path),
        "output_dir": str(tmp_path),
        **override,
    }
    if settings["dataset_dir"] == "JUNK":
        settings["dataset_dir"] = str(junk)
    wf = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", **settings)
    with pytest.raises(SystemExit, match=r"^lsmseg: error: ") as stop:
        wf.initialize()
    assert message in str(stop.value)


@pytest.mark.slow
def test_a_folder_without_faces_is_refused_in_one_line_from_the_command_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not a data set")
    out = ["--dataset_dir", str(junk), "--ckpt_dir", str(tmp_path), "--output_dir", str(tmp_path)]
    r = _run(_cmd("training", ["train.json"], *out, *SMOKE), timeout=120)
    assert r.returncode != 0 and "neither a 300-W layout" in r.stderr and "Traceback" not in r.stderr


def test_evaluation_without_a_checkpoint_says_to_train_first(faces_dir: Path, tmp_path: Path) -> None:
    wf = ConfigWorkflow(
        config_file=[str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")],
        workflow_type="train",
        dataset_dir=str(faces_dir),
        ckpt_dir=str(tmp_path / "none"),
    )
    with pytest.raises(SystemExit, match="run the bundle's training first"):
        wf.initialize()
