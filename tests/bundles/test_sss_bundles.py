"""The sarcopenia bundles lsm_sss, sop_sss and ioda_sss: contract, configs, and runs from the command line.

Runs never write into the repository: ``ckpt_dir`` and ``output_dir`` are overridden to temporary
folders, and the data is a small phantom cohort written by the tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jsonschema
import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.bundle import run as bundle_run

from lsmseg.data.phantom import write_cohort
from lsmseg.engines import save_state_dict
from lsmseg.methods import Domain, LatentSpaceMapping

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
    "initialize run finalize training hu_range class_names network_def"
).split()
INFERENCE_IDS = (
    "image_size hu_range class_names network_def device dataset_dir dataset evaluator inferer bundle_root ckpt_dir"
).split()
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


def _tiny_checkpoint(path: Path) -> Path:
    """Untrained weights of the TINY network, saved as training saves them (a plain state dict)."""
    torch.manual_seed(0)
    net = LatentSpaceMapping(
        [Domain("image", "image", 1), Domain("label", "mask", 4)],
        ngf=TINY["ngf"],
        ndf=TINY["ndf"],
        image_size=TINY["image_size"],
    )
    save_state_dict(net.state_dict(), path)
    return path


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
def test_metadata_is_valid_and_describes_the_network(bundle: str) -> None:
    schema = json.loads((REPO / "lsmseg" / "resources" / "meta_schema.json").read_text())
    meta = json.loads((_configs(bundle) / "metadata.json").read_text())
    jsonschema.validate(meta, schema)
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
    assert train["bundle_root"] == inference["bundle_root"] == f"$lsmseg.bundle.root('{bundle}')"
    assert train["dataset_dir"] == inference["dataset_dir"] == "$lsmseg.data.sss.embedded_phantom()"
    # the paper's settings
    assert (train["image_size"], train["ngf"], train["batch_size"], train["learning_rate"]) == (
        128,
        64,
        16,
        1e-4,
    )
    assert (train["max_epochs"], train["patience"]) == (1000, 100)
    # what `lsmseg segment` reads from inference.json must agree with what training builds
    for key in ("image_size", "hu_range", "class_names", "ngf", "ndf"):
        assert inference[key] == train[key], key
    assert inference["class_names"] == CLASS_NAMES and inference["hu_range"] == [-250, 250]
    network = {k: v for k, v in train["network_def"].items() if k != "adversarial"}  # a loss, not weights
    assert inference["network_def"] == network


@pytest.mark.parametrize("sister", ["sop_sss", "ioda_sss"])
def test_sister_bundles_differ_from_lsm_sss_only_in_name_and_method(sister: str) -> None:
    for name in ("train.json", "evaluate.json", "inference.json", "multi_gpu_train.json"):
        lsm = json.loads((_configs("lsm_sss") / name).read_text())
        other = json.loads((_configs(sister) / name).read_text())
        if "bundle_root" in lsm:
            lsm["bundle_root"] = f"$lsmseg.bundle.root('{sister}')"
        if "method" in lsm:
            lsm["method"] = BUNDLES[sister]
        assert other == lsm, name
    for name in ("configs/logging.conf", "LICENSE"):
        assert (REPO / "bundles" / sister / name).read_bytes() == (
            REPO / "bundles" / "lsm_sss" / name
        ).read_bytes()


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize(
    ("files", "workflow_type"),
    [
        (["train.json"], "train"),
        (["train.json", "evaluate.json"], "train"),
        (["train.json", "multi_gpu_train.json"], "train"),
        (["inference.json"], "infer"),
    ],
    ids=["train", "evaluate", "multi_gpu", "inference"],
)
def test_every_config_loads_with_the_properties_monai_tools_expect(
    bundle: str,
    files: list[str],
    workflow_type: str,
    cohort: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "models" / "model.pt")
    workflow = ConfigWorkflow(
        config_file=[str(_configs(bundle) / f) for f in files],
        workflow_type=workflow_type,
        logging_file=False,
        dataset_dir=str(cohort),
        ckpt_dir=str(ckpt.parent),
        output_dir=str(tmp_path / "eval"),
        **TINY,
    )
    if "multi_gpu_train.json" in files:  # its initialize joins a process group: a group of one
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("LOCAL_RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", "1")
        monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
        monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    try:
        workflow.initialize()
        assert workflow.check_properties() == []
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


# --- runs -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundle_trains_from_the_command_line_and_evaluates(bundle: str, cohort: Path, tmp_path: Path) -> None:
    configs = _configs(bundle)
    dirs = {"ckpt_dir": str(tmp_path / "models"), "output_dir": str(tmp_path / "eval")}
    overrides = {"dataset_dir": str(cohort), "max_epochs": 1, **TINY, **dirs}
    _run(
        [
            PYTHON,
            "-m",
            "monai.bundle",
            "run",
            "training",
            "--config_file",
            str(configs / "train.json"),
            *_cli(overrides),
        ]
    )

    # model.pt is a plain state dict that the network of inference.json (what `lsmseg segment` builds) loads
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    parser = ConfigParser()
    parser.read_config(str(configs / "inference.json"))
    parser.update(TINY)
    parser.get_parsed_content("network_def").load_state_dict(state)

    bundle_run(
        config_file=[str(configs / "train.json"), str(configs / "evaluate.json")],
        logging_file=False,
        **overrides,
    )
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"miou", "iou", "n"} and metrics["n"] == 3
    assert list(metrics["iou"]) == CLASS_NAMES[1:] and 0.0 <= metrics["miou"] <= 1.0


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
    assert (tmp_path / "models" / "model.pt").is_file()


@pytest.mark.slow
def test_inference_writes_masks_on_the_source_grid(tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    write_cohort(tmp_path / "nii", 1, fmt="nifti", seed=2, size=256)
    write_cohort(tmp_path / "dcm", 1, fmt="dicom", seed=2, size=192)
    scans.mkdir()
    (tmp_path / "nii" / "images" / "phantom_0001.nii.gz").rename(scans / "ct_nifti.nii.gz")
    (tmp_path / "dcm" / "images" / "phantom_0001.dcm").rename(scans / "ct_dicom.dcm")
    ckpt = _tiny_checkpoint(tmp_path / "models" / "model.pt")
    bundle_run(
        config_file=str(_configs("lsm_sss") / "inference.json"),
        logging_file=False,
        dataset_dir=str(scans),
        ckpt_dir=str(ckpt.parent),
        output_dir=str(tmp_path / "pred"),
        **TINY,
    )
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["ct_dicom.nii.gz", "ct_nifti.nii.gz"]
    source = nib.load(scans / "ct_nifti.nii.gz")
    mask = nib.load(tmp_path / "pred" / "ct_nifti.nii.gz")
    assert mask.shape == source.shape and np.allclose(mask.affine, source.affine)
    assert nib.load(tmp_path / "pred" / "ct_dicom.nii.gz").shape == (192, 192, 1)
    for name in ("ct_nifti", "ct_dicom"):
        labels = np.asarray(nib.load(tmp_path / "pred" / f"{name}.nii.gz").dataobj)
        assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3}
