"""Shared pieces of the clinical tests: a briefly trained tiny bundle, phantom rows, DICOM edits.

A fake trained bundle is what training leaves: ``models/model.pt`` (a state dict),
``models/model.json`` (the model record: network name + args, preprocessing, class names) and
``configs/metadata.json``; nothing in ``configs/inference.json`` is read by ``lsmseg segment``.
"""

from __future__ import annotations

import atexit
import csv
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import torch

from lsmseg.data.phantom import cohort_slice
from lsmseg.engines.record import ModelRecord, write_model_record
from lsmseg.keys import Keys, Mode
from lsmseg.methods.registry import build_network
from lsmseg.transforms import CropWindowResize, crop, resize_labels

CLASS_NAMES = ["background", "sat", "vat", "muscle"]
TINY_SIZE, TINY_NGF = 64, 4  # the shared tiny bundle: 64 px input, ngf 4
HU_RANGE = (-250.0, 250.0)


def network_args(image_size: int, ngf: int) -> dict[str, Any]:
    """Registry arguments of the SSS network: CT image (1 channel) -> 4-class tissue mask."""
    return {
        "domains": [
            {"name": Keys.IMAGE, "kind": "image", "channels": 1},
            {"name": Keys.LABEL, "kind": "mask", "channels": 4},
        ],
        "ngf": ngf,
        "ndf": ngf,
        "image_size": image_size,
    }


def lsm(image_size: int, ngf: int) -> Any:
    """The SSS LatentSpaceMapping, built through the registry as ``lsmseg segment`` builds it."""
    return build_network("LatentSpaceMapping", network_args(image_size, ngf))


def write_bundle(
    folder: Path,
    state_dict: dict[str, torch.Tensor] | None,
    image_size: int,
    ngf: int,
    version: str = "0.0.1",
    record: bool = True,
) -> Path:
    """A trained bundle folder (no model.pt when ``state_dict`` is None, no model.json unless ``record``)."""
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "configs" / "metadata.json").write_text(
        json.dumps({"name": "tiny phantom LSM", "version": version})
    )
    (folder / "models").mkdir(exist_ok=True)
    if state_dict is not None:
        torch.save(state_dict, folder / "models" / "model.pt")
    if record:
        write_model_record(
            ModelRecord(
                network={"name": "LatentSpaceMapping", "args": network_args(image_size, ngf)},
                preprocessing={"image_size": image_size, "hu_range": list(HU_RANGE)},
                class_names=list(CLASS_NAMES),
            ),
            folder / "models" / "model.pt",
        )
    return folder


def phantom_rows(seed: int, n: int, size_px: int, image_size: int) -> list[dict[str, Any]]:
    """Paired training rows of phantom slices, preprocessed exactly as segment does."""
    transform = CropWindowResize(model_size=image_size, hu_range=HU_RANGE)
    rows = []
    for i in range(n):
        sl = cohort_slice(seed, i, size=size_px)
        image, geometry = transform.forward(sl.hu)
        label = np.asarray(resize_labels(crop(sl.mask, geometry.box), (image_size, image_size)))
        rows.append(
            {Keys.IMAGE: image, Keys.LABEL: label[None].astype(np.int64), Keys.MODE: int(Mode.PAIRED)}
        )
    return rows


def _train_tiny(steps: int = 90) -> dict[str, torch.Tensor]:
    """A few seconds of supervised training: enough for masks that have every tissue."""
    torch.manual_seed(0)
    net = lsm(TINY_SIZE, TINY_NGF)
    rows = phantom_rows(seed=5, n=24, size_px=256, image_size=TINY_SIZE)
    x = torch.as_tensor(np.stack([r[Keys.IMAGE] for r in rows]))
    y = torch.as_tensor(np.stack([r[Keys.LABEL][0] for r in rows]))
    optimiser = torch.optim.Adam(net.generators.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: a second thread only adds waiting on a busy machine
    try:
        for _ in range(steps):
            idx = torch.randint(0, len(rows), (8,), generator=g)
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    return net.state_dict()


_TINY_BUNDLE: list[Path] = []


def tiny_bundle() -> Path:
    """A briefly trained ngf-4 / 64 px bundle, built once per test session (read-only for tests)."""
    if not _TINY_BUNDLE:
        root = tempfile.mkdtemp(prefix="lsmseg-tiny-bundle-")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _TINY_BUNDLE.append(write_bundle(Path(root) / "tiny_sss", _train_tiny(), TINY_SIZE, TINY_NGF))
    return _TINY_BUNDLE[0]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def nifti(path: Path) -> nib.Nifti1Image:
    image = nib.load(path)
    assert isinstance(image, nib.Nifti1Image)
    return image


def write_dicom(ds: pydicom.Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def renamed(ds: pydicom.Dataset, patient_id: str) -> pydicom.Dataset:
    """A copy of a phantom dataset as another patient (new UIDs)."""
    from pydicom.uid import generate_uid

    out = ds.copy()
    out.PatientID = patient_id
    out.SOPInstanceUID = generate_uid()
    out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    out.SeriesInstanceUID = generate_uid()
    out.StudyInstanceUID = generate_uid()
    return out
