"""Shared test helpers of the preprocessing chain and the bundles: a synthetic L3 slice with known tissues."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lsmseg.keys import Tissue

TISSUE_HU = {Tissue.BACKGROUND: -1000.0, Tissue.SAT: -100.0, Tissue.VAT: -80.0, Tissue.MUSCLE: 40.0}


def synthetic_l3(shape: tuple[int, int] = (512, 512), table: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) HU and 4-class mask: an elliptic body with a fat rim, a muscle ring, visceral fat.

    A scanner table (a 3-pixel, +200 HU shell) runs under the back and touches it.
    """
    height, width = shape
    rr, cc = np.mgrid[0:height, 0:width]
    centre_r, centre_c = 0.47 * height, 0.52 * width
    radius_r, radius_c = 0.3 * height, 0.4 * width
    ellipse = ((rr - centre_r) / radius_r) ** 2 + ((cc - centre_c) / radius_c) ** 2
    mask = np.zeros(shape, dtype=np.uint8)
    mask[ellipse <= 1.0] = Tissue.SAT
    mask[ellipse <= 0.75] = Tissue.MUSCLE
    mask[ellipse <= 0.5] = Tissue.VAT
    hu = np.vectorize(TISSUE_HU.__getitem__, otypes=[np.float32])(mask)
    if table:
        back = int(centre_r + radius_r)
        hu[back : back + 3, int(0.1 * width) : int(0.9 * width)] = 200.0
    return hu, mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks."""
    return float((a & b).sum() / (a | b).sum())


# --- bundles ----------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
BUNDLES = ("lsm_sss", "sop_sss", "ioda_sss", "lsm_sit", "lsm_300w")
SCHEMA = REPO / "lsmseg" / "resources" / "meta_schema.json"  # MONAI's bundle metadata schema, offline
# Config sets MONAI runs, with the workflow type whose properties they must have.
CONFIG_SETS = {
    "train": (["train.json"], "train"),
    "evaluate": (["train.json", "evaluate.json"], "train"),
    "multi_gpu": (["train.json", "multi_gpu_train.json"], "train"),
    "inference": (["inference.json"], "infer"),
}


def copy_bundle(name: str, where: Path) -> Path:
    """A copy of a shipped bundle folder (what users do), without trained weights or outputs."""
    return Path(
        shutil.copytree(
            REPO / "bundles" / name, where / name, ignore=shutil.ignore_patterns("models", "eval")
        )
    )


def config_files(bundle: Path, config_set: str) -> list[str]:
    """Paths of the configs of ``config_set`` (a key of CONFIG_SETS) in ``bundle``."""
    return [str(bundle / "configs" / f) for f in CONFIG_SETS[config_set][0]]


def write_untrained_model(bundle: Path, **settings: Any) -> Path:
    """``models/model.pt`` and ``model.json`` as training writes them, for an untrained network.

    The network is the bundle's own ``network_record`` of train.json with ``settings`` (e.g. ngf)
    overriding its ids, so inference and evaluation can be run without a training run.
    """
    from monai.bundle import ConfigParser

    from lsmseg.engines import save_state_dict
    from lsmseg.engines.record import ModelRecord, write_model_record

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "train.json"))
    parser.update({**settings, "network_record#training": {}})
    record = parser.get_parsed_content("network_record")
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    ckpt = bundle / "models" / "model.pt"
    save_state_dict(network.state_dict(), ckpt)
    write_model_record(ModelRecord(**record), ckpt)
    return ckpt
