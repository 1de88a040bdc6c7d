"""Every shipped config of every bundle: metadata, imports, MONAI properties, and real runs.

Runs use a copy of the bundle folder (as users copy one) and override nothing but what makes them
smoke size: a tiny data set and a tiny network for training. Evaluation and inference then run
with no settings at all: they build the network and preprocessing from ``models/model.json``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigWorkflow, verify_metadata, verify_net_in_out

from lsmseg.data.phantom import write_cohort
from lsmseg.data.sss import read_mask
from tests.conftest import single_process_group
from tests.helpers.bundles import (
    BUNDLES,
    CONFIG_SETS,
    REPO,
    SCHEMA,
    config_files,
    copy_bundle,
    write_untrained_model,
)

# MONAI warns on every config it parses that configs run code; these are the repository's own.
# The schema is the repository's offline copy, so MONAI's download check has no hash to verify.
pytestmark = [
    pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning"),
    pytest.mark.filterwarnings("ignore:No hash value provided:UserWarning"),
]
SMALL_NETWORK = {"ngf": 4, "ndf": 4}
MODULE_USE = re.compile(r"\b(lsmseg(?:\.[a-z_0-9]+)+)\.[A-Za-z_]\w*\(")  # lsmseg.pkg.mod.fn(


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory, sit_dir: Path) -> dict[str, Path]:
    """A tiny data set per bundle kind: 10 L3 phantoms at 256 px, 60 SIT pairs, 20 faces."""
    from lsmseg.data.faces import write_300w_layout

    root = tmp_path_factory.mktemp("bundle-data")
    write_cohort(root / "sss", 10, fmt="nifti", seed=3, size=256)
    write_300w_layout(root / "faces", 20, 0)
    sss = root / "sss"
    return {"lsm_sss": sss, "sop_sss": sss, "ioda_sss": sss, "lsm_sit": sit_dir, "lsm_300w": root / "faces"}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_is_valid_and_the_network_fits_it(bundle: str, tmp_path: Path) -> None:
    configs = REPO / "bundles" / bundle / "configs"
    verify_metadata(meta_file=str(configs / "metadata.json"), filepath=str(SCHEMA))
    # MONAI's own check of network_data_format: input shape and channels in, output channels out
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(configs / "metadata.json"),
        config_file=str(configs / "train.json"),
        device="cpu",
        **SMALL_NETWORK,
    )


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("name", ["train.json", "evaluate.json", "inference.json", "multi_gpu_train.json"])
def test_every_module_a_config_calls_is_imported(bundle: str, name: str) -> None:
    """``$lsmseg.data.sit.embedded_sit()`` fails in a fresh process unless the config imports it."""
    configs = REPO / "bundles" / bundle / "configs"
    text = (configs / name).read_text()
    imported = (
        set(json.loads((configs / "train.json").read_text())["imports"])
        if name != "inference.json"
        else set()
    )
    imported |= set(json.loads(text).get("imports", []))
    used = set(MODULE_USE.findall(text))
    assert not [m for m in used if f"$import {m}" not in imported], name


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("config_set", CONFIG_SETS)
def test_every_config_has_the_properties_monai_expects(
    bundle: str, config_set: str, datasets: dict[str, Path], tmp_path: Path
) -> None:
    copy = copy_bundle(bundle, tmp_path)
    write_untrained_model(copy, **SMALL_NETWORK)
    # init_id names no expression: properties are checked without starting a process group
    workflow = ConfigWorkflow(
        config_file=config_files(copy, config_set),
        workflow_type=CONFIG_SETS[config_set][1],
        init_id="no_initialize",
        logging_file=False,
        dataset_dir=str(datasets[bundle]),
        # the written model.pt stands for an earlier run: building the trainer must not refuse it
        **(SMALL_NETWORK | {"overwrite": True} if config_set != "inference" else {}),
    )
    workflow.initialize()
    assert workflow.bundle_root == str(copy)  # from the config file's folder, not a name lookup
    if config_set == "multi_gpu":
        with single_process_group():
            assert workflow.check_properties() == []
    else:
        assert workflow.check_properties() == []


def _corners_mm(image: nib.Nifti1Image) -> list[tuple[float, ...]]:
    """World positions (mm, rounded to 0.01) of the four corner pixels of a single slice."""
    height, width = image.shape[:2]
    corners = [(i, j, 0, 1) for i in (0, height - 1) for j in (0, width - 1)]
    return sorted(tuple(np.round(image.affine @ c, 2)[:3]) for c in corners)


def _monai_run(copy: Path, config_set: str, *args: str) -> str:
    files = config_files(copy, config_set)
    command = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str(files) if len(files) > 1 else files[0],
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run([*command, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{config_set}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_trained_small_then_evaluated_and_inferred_with_no_settings(
    bundle: str, datasets: dict[str, Path], tmp_path: Path
) -> None:
    """Train with --ngf 4 --image_size 64; evaluate and infer with only the data folder named."""
    copy = copy_bundle(bundle, tmp_path)
    data = ["--dataset_dir", str(datasets[bundle])]
    small = ["--max_epochs", "1", "--ngf", "4", "--ndf", "4", "--image_size", "64", "--batch_size", "4"]
    _monai_run(copy, "train", *data, *small)
    record = json.loads((copy / "models" / "model.json").read_text())
    assert record["network"]["args"]["ngf"] == 4 and record["preprocessing"]["image_size"] == 64
    assert record["training"]["finished"] and record["training"]["n_train"] > 0

    _monai_run(copy, "evaluate", *data)
    metrics = json.loads((copy / "eval" / "metrics.json").read_text())
    assert metrics["n"] > 0 and ("miou" in metrics or "nrmse" in metrics)

    _monai_run(copy, "inference", *data)
    predictions = sorted((copy / "eval" / "predictions").iterdir())
    assert predictions
    if bundle.endswith("_sss"):  # masks on each CT's own native grid, written from the batch's metadata
        assert len(predictions) == 10
        mask = read_mask(predictions[0])
        truth = read_mask(datasets[bundle] / "masks" / "phantom_0001.nii.gz")
        assert mask.shape == truth.shape and set(np.unique(mask)) <= {0, 1, 2, 3}
        # the same grid in space (the mask is stored in the normalised pixel order)
        source = nib.load(datasets[bundle] / "images" / "phantom_0001.nii.gz")
        assert _corners_mm(nib.load(predictions[0])) == _corners_mm(source)


def test_inference_without_a_model_record_says_to_retrain(tmp_path: Path) -> None:
    """Weights without models/model.json (trained before records existed) stop with one line."""
    from lsmseg.bundle import model_record

    (tmp_path / "models").mkdir()
    with pytest.raises(SystemExit, match=r"lsmseg: error: .*model\.json is missing.*retrain"):
        model_record(tmp_path / "models")
