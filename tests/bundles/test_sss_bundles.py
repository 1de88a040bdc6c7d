"""The sarcopenia bundles lsm_sss, sop_sss and ioda_sss: one bundle, three methods.

Runs never write into the repository: they use a copy of the bundle folder, and the data is a
small phantom cohort written by the tests. tests/bundles/test_configs.py runs every config.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import run as bundle_run

from lsmseg.data.phantom import write_cohort
from lsmseg.data.sss import read_mask
from tests.helpers.bundles import copy_bundle, write_untrained_model

# MONAI 1.6.1 warns on every config it parses that configs run code; these are the repository's own.
pytestmark = pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning")

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BUNDLES = {"lsm_sss": "lsm", "sop_sss": "sop", "ioda_sss": "ioda"}  # bundle -> its method
CONTRACT_FILES = (
    "LICENSE",
    "configs/metadata.json",
    "configs/train.json",
    "configs/evaluate.json",
    "configs/inference.json",
    "configs/multi_gpu_train.json",
    "configs/logging.conf",
    "docs/README.md",
)
TRAIN_IDS = (
    "bundle_root dataset_dir output_dir ckpt_dir device method max_epochs batch_size learning_rate "
    "proportion image_size ngf seed patience val_interval lambdas num_workers amp "
    "initialize run finalize training hu_range class_names network_record network_def resume overwrite run_dir"
).split()
INFERENCE_IDS = (
    "model_record image_size hu_range class_names network_def device dataset_dir dataset evaluator inferer "
    "bundle_root ckpt_dir preprocessing postprocessing"
).split()
# metadata that describes the method; everything else in a sister bundle is lsm_sss's
METHOD_METADATA = ("changelog", "name", "task", "description", "eval_metrics", "references")
CLASS_NAMES = ["background", "sat", "vat", "muscle"]
TINY = {"ngf": 4, "ndf": 4, "image_size": 64, "batch_size": 4}  # a network that trains in seconds


def _configs(bundle: str) -> Path:
    return REPO / "bundles" / bundle / "configs"


def _cli(overrides: dict) -> list[str]:
    return [a for k, v in overrides.items() for a in (f"--{k}", str(v))]


def _run(cmd: list[str], timeout: float = 240) -> str:
    """Run a command from the repository root with one BLAS/OpenMP thread per process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done.stdout + done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 phantom cases at 256x256 (NIfTI): 11 train, 2 valid (one per DDP rank), 3 test."""
    folder = tmp_path_factory.mktemp("sss16")
    write_cohort(folder, 16, fmt="nifti", seed=1, size=256)
    return folder


# --- the contract -----------------------------------------------------------------------------


@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundle_has_every_contract_file(bundle: str) -> None:
    root = REPO / "bundles" / bundle
    assert [f for f in CONTRACT_FILES if not (root / f).is_file()] == []


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_describes_the_network(bundle: str) -> None:
    meta = json.loads((_configs(bundle) / "metadata.json").read_text())
    fmt = meta["network_data_format"]
    assert fmt["inputs"]["image"]["num_channels"] == 1 and fmt["inputs"]["image"]["value_range"] == [0, 1]
    assert fmt["outputs"]["pred"]["num_channels"] == 4
    assert list(fmt["outputs"]["pred"]["channel_def"].values()) == CLASS_NAMES
    assert any("2212.03361" in r for r in meta["references"])


@pytest.mark.parametrize("bundle", BUNDLES)
def test_configs_hold_the_documented_ids(bundle: str) -> None:
    train = json.loads((_configs(bundle) / "train.json").read_text())
    inference = json.loads((_configs(bundle) / "inference.json").read_text())
    assert [k for k in TRAIN_IDS if k not in train] == []
    assert [k for k in INFERENCE_IDS if k not in inference] == []
    assert train["method"] == BUNDLES[bundle]
    assert train["bundle_root"] == inference["bundle_root"] == "$lsmseg.bundle.root()"
    assert train["dataset_dir"] == inference["dataset_dir"] == "$lsmseg.data.sss.embedded_phantom()"
    # the paper's settings
    assert (train["image_size"], train["ngf"], train["batch_size"], train["learning_rate"]) == (
        128,
        64,
        16,
        1e-4,
    )
    assert train["class_names"] == CLASS_NAMES and train["hu_range"] == [-250, 250]
    # one source of truth: the network is recorded by training and read back, never repeated
    assert train["validate"]["early_stop"]["record"] == "@network_record"
    assert not {"ngf", "ndf"} & set(inference)
    assert inference["network_def"] == "$lsmseg.bundle.exportable(@model_record.build(), @model_record)"


@pytest.mark.parametrize("sister", ["sop_sss", "ioda_sss"])
def test_sister_bundles_differ_from_lsm_sss_only_where_the_method_does(sister: str) -> None:
    for name in ("train.json", "evaluate.json", "inference.json", "multi_gpu_train.json", "metadata.json"):
        lsm = json.loads((_configs("lsm_sss") / name).read_text())
        other = json.loads((_configs(sister) / name).read_text())
        if name == "train.json":
            assert (lsm.pop("method"), other.pop("method")) == ("lsm", BUNDLES[sister])
        if name == "metadata.json":
            for key in METHOD_METADATA:
                lsm.pop(key, None), other.pop(key, None)
        assert other == lsm, name
    for name in ("configs/logging.conf", "LICENSE"):
        assert (REPO / "bundles" / sister / name).read_bytes() == (
            REPO / "bundles" / "lsm_sss" / name
        ).read_bytes()


# --- runs -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundle_trains_under_torchrun_on_two_cpu_processes(bundle: str, cohort: Path, tmp_path: Path) -> None:
    configs = _configs(bundle)
    files = f"['{configs / 'train.json'}','{configs / 'multi_gpu_train.json'}']"
    overrides = {
        "dataset_dir": cohort,
        "max_epochs": 1,
        **TINY,
        "ckpt_dir": tmp_path / "models",
        "output_dir": tmp_path / "eval",
    }
    torchrun = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]
    _run([*torchrun, "-m", "monai.bundle", "run", "--config_file", files, *_cli(overrides)])
    record = json.loads((tmp_path / "models" / "model.json").read_text())
    # both ranks trained on their half of the 11 training rows; rank 0 alone wrote the record
    assert record["training"]["finished"] and record["training"]["n_train"] == 11
    assert record["training"]["method"] == BUNDLES[bundle] and record["network"]["args"]["ngf"] == TINY["ngf"]


@pytest.mark.slow
def test_inference_writes_masks_on_the_source_grid(tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    write_cohort(tmp_path / "nii", 1, fmt="nifti", seed=2, size=256)
    write_cohort(tmp_path / "dcm", 1, fmt="dicom", seed=2, size=192)
    scans.mkdir()
    (tmp_path / "nii" / "images" / "phantom_0001.nii.gz").rename(scans / "ct_nifti.nii.gz")
    (tmp_path / "dcm" / "images" / "phantom_0001.dcm").rename(scans / "ct_dicom.dcm")
    copy = copy_bundle("lsm_sss", tmp_path)
    write_untrained_model(copy, **TINY)
    bundle_run(
        config_file=str(copy / "configs" / "inference.json"), logging_file=False, dataset_dir=str(scans)
    )
    pred = copy / "eval" / "predictions"
    assert sorted(p.name for p in pred.iterdir()) == ["ct_dicom.nii.gz", "ct_nifti.nii.gz"]
    for name, size in (("ct_nifti", 256), ("ct_dicom", 192)):
        labels = np.asarray(nib.load(pred / f"{name}.nii.gz").dataobj)
        assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3}
        assert read_mask(pred / f"{name}.nii.gz").shape == (size, size)  # the CT's own grid


def test_the_visible_preprocessing_is_the_chain_of_the_library() -> None:
    """train.json / inference.json write out ct_chain as Compose entries: the same transforms."""
    from monai.bundle import ConfigParser

    from lsmseg.data.sss import sss_chain
    from lsmseg.transforms import chain_key, ct_chain
    from lsmseg.transforms.load import LoadCTd

    train = ConfigParser()
    train.read_config(str(_configs("lsm_sss") / "train.json"))
    train.update({"image_size": 64, "hu_range": [-200, 200]})
    assert chain_key(train.get_parsed_content("preprocessing")) == chain_key(sss_chain(64, (-200, 200)))
    inference = ConfigParser()
    inference.read_config(str(_configs("lsm_sss") / "inference.json"))
    inference.update({"image_size": 64, "hu_range": [-200, 200]})  # as read from models/model.json
    expected = ct_chain(64, (-200, 200))
    expected.transforms = (LoadCTd("image"), *expected.transforms)
    assert chain_key(inference.get_parsed_content("preprocessing")) == chain_key(expected)
