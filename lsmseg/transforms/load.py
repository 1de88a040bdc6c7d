"""Reading a CT slice file into the dictionary the chain works on: a MetaTensor with its geometry.

Ingest is :mod:`lsmseg.io` (DICOM or NIfTI -> :class:`~lsmseg.io.CTSlice`, quality gate); this
module only wraps the slice as a (1, H, W) MetaTensor whose affine maps its normalised pixel grid
to RAS millimetres, so spacing travels with the pixels through the chain, batching and
``Invertd``, and ``SaveImaged`` writes a mask that overlays the source.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from lsmseg.io.ctslice import CTSlice
from lsmseg.io.dicom import read_dicom_slice
from lsmseg.io.nifti import is_nifti, nifti_stem, read_nifti_slice

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # CTSlice affines are LPS (DICOM); MONAI/nibabel use RAS


def case_id_of(path: str | Path) -> str:
    """A case's id: its file name without ``.nii.gz`` / ``.nii`` / ``.dcm`` (or other suffix)."""
    return nifti_stem(path) if is_nifti(path) else Path(path).stem


def read_ct(path: str | Path, case_id: str | None = None, *, check: bool = True) -> CTSlice:
    """Read one CT slice file (DICOM or NIfTI) into a :class:`CTSlice` on the normalised grid.

    ``case_id`` defaults to :func:`case_id_of` (the file name), not the DICOM PatientID, so
    images and masks pair by file name.

    Raises:
        IngestError: unreadable file, a multi-slice file, or a failed quality check (``check``).
    """
    path = Path(path)
    case_id = case_id or case_id_of(path)
    if is_nifti(path):
        return read_nifti_slice(path, case_id, check=check)
    return read_dicom_slice(path, case_id, check=check)


def slice_to_meta(ct: CTSlice, values: np.ndarray | None = None) -> MetaTensor:
    """(1, H, W) float32 MetaTensor of ``values`` (default: the HU) on the grid of ``ct``.

    The affine is ``ct.affine`` in RAS; ``filename_or_obj`` is the source file, which
    ``SaveImaged`` names its output after, and ``original_affine`` / ``spatial_shape`` the grid
    it writes on.
    """
    pixels = np.asarray(ct.hu if values is None else values, np.float32)
    affine = torch.as_tensor(LPS_TO_RAS @ np.asarray(ct.affine, np.float64))
    # original_affine / spatial_shape: the grid SaveImaged writes on (resampling to it is a no-op
    # once Invertd has restored the affine)
    meta = {
        "filename_or_obj": str(ct.source),
        "case_id": ct.case_id,
        "original_affine": affine.clone(),
        "spatial_shape": np.array(pixels.shape),
    }
    return MetaTensor(torch.as_tensor(pixels)[None], affine=affine, meta=meta)


class LoadCTd(MapTransform):
    """Replace the CT file path under each key by its (1, H, W) HU MetaTensor (see module doc).

    Args:
        keys: keys holding a DICOM or NIfTI file path of one axial slice.
        check: run the ingest quality gate (a failing file raises ``IngestError``).
    """

    def __init__(self, keys: KeysCollection, check: bool = True, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.check = check

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = slice_to_meta(read_ct(d[key], check=self.check))
        return d
