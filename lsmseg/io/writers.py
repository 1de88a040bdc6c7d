"""What a segmentation run writes per case: the NIfTI mask (here), the overlay PNG
(:mod:`lsmseg.io.overlay`) and the DICOM SEG (:mod:`lsmseg.io.seg`).

Every file is written atomically (:func:`atomic_write`): a half-written file never replaces a good
one, so an interrupted run can be resumed and a viewer never opens a truncated mask. Masks are
written with the geometry of their source so they overlay it in 3D Slicer, ITK-SNAP and OHIF,
where a user can correct them by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lsmseg.io.atomic import atomic_write
from lsmseg.io.ctslice import CTSlice
from lsmseg.io.overlay import TISSUE_COLOURS, write_overlay_png
from lsmseg.io.seg import write_dicom_seg

PathLike = str | os.PathLike[str]

__all__ = ["TISSUE_COLOURS", "atomic_write", "write_dicom_seg", "write_mask_nifti", "write_overlay_png"]


def _ras_affine(ct: CTSlice) -> np.ndarray:
    """NIfTI (RAS) affine of the normalised grid, from the CTSlice LPS affine."""
    affine = np.asarray(ct.affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"case {ct.case_id}: affine must be a finite 4x4 matrix, got shape {affine.shape}")
    affine = affine.copy()
    if np.linalg.norm(affine[:3, 2]) < 1e-6:
        # A single slice may carry no slice step; NIfTI needs an invertible matrix, so use the
        # unit normal of the image plane (1 mm) - it does not move any in-plane pixel.
        normal = np.cross(affine[:3, 0], affine[:3, 1])
        affine[:3, 2] = normal / np.linalg.norm(normal)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    return lps_to_ras @ affine


def write_mask_nifti(mask: np.ndarray, ct: CTSlice, path: PathLike) -> Path:
    """Write a label mask as NIfTI with the geometry of its source slice.

    The (H, W) mask on the normalised grid of ``ct`` is stored as an (H, W, 1) uint8 volume whose
    affine is ``ct.affine`` converted from LPS to RAS (NIfTI's convention), with qform and sform
    code 1 (scanner), units mm and intent "label", so it overlays the source CT in 3D Slicer or
    ITK-SNAP and the voxel sizes are ``ct.spacing_mm``.

    Args:
        mask: (H, W) integer labels (Tissue values), same shape as ``ct.hu``.
        ct: the slice the mask was predicted on.
        path: output file ending in ``.nii`` or ``.nii.gz``.
    """
    import nibabel as nib

    path = Path(path)
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise ValueError(f"NIfTI mask path must end with .nii or .nii.gz, got {path.name}")
    data = ct.label_mask(mask)[:, :, np.newaxis]  # (H, W) -> (H, W, 1): row, column, slice
    affine = _ras_affine(ct)
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_data_dtype(np.uint8)
    image.header.set_xyzt_units("mm")
    image.header.set_intent("label")
    with atomic_write(path) as tmp:
        nib.save(image, tmp)
    return path
