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


def _normalised_from_stored(ct: CTSlice) -> np.ndarray:
    """(4, 4) matrix taking a stored voxel index (a, b, k, 1) to the normalised (row, column, k, 1).

    Mirrors :meth:`CTSlice.from_source_grid`: transpose first, then the row and column flips.
    """
    height, width = ct.hu.shape
    flip_rows, flip_cols, transpose = ct.flips
    m = np.eye(4)
    if transpose:
        m = m[[1, 0, 2, 3]]
    if flip_rows:
        m = np.array([[-1.0, 0, 0, height - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]) @ m
    if flip_cols:
        m = np.array([[1.0, 0, 0, 0], [0, -1, 0, width - 1], [0, 0, 1, 0], [0, 0, 0, 1]]) @ m
    return m


def nifti_layout(labels: np.ndarray, ct: CTSlice) -> tuple[np.ndarray, np.ndarray]:
    """The one array convention of lsmseg's NIfTI masks: (X, Y, 1) data and its RAS affine.

    A mask is stored in its source image's own voxel order: for NIfTI input the plane as the
    image file holds it (the mask overlays the image voxel for voxel, array to array); for
    DICOM input (column, row, 0) of the DICOM pixel data, the order dcm2niix, ITK and the
    phantom's truth masks (:mod:`lsmseg.data.phantom.cohort`) use. Readers that follow the
    affine (3D Slicer, ITK-SNAP, :func:`lsmseg.io.nifti.read_nifti_slice`) see the same geometry
    either way; the convention makes plain array comparisons with truth masks valid too.

    Args:
        labels: (H, W) labels on the normalised grid of ``ct``.

    Returns:
        (X, Y, 1) array and the (4, 4) RAS affine of its voxel indices.
    """
    affine = np.asarray(ct.affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"case {ct.case_id}: affine must be a finite 4x4 matrix, got shape {affine.shape}")
    stored = ct.to_source_grid(labels)  # (a, b): the source's own pixel order
    affine = affine @ _normalised_from_stored(ct)
    if ct.dicom is not None:  # DICOM (row, column) -> NIfTI (column, row)
        stored = stored.T
        affine = affine[:, [1, 0, 2, 3]]
    if np.linalg.norm(affine[:3, 2]) < 1e-6:
        # A single slice may carry no slice step; NIfTI needs an invertible matrix, so use the
        # unit normal of the image plane (1 mm) - it does not move any in-plane pixel.
        normal = np.cross(affine[:3, 0], affine[:3, 1])
        affine[:3, 2] = normal / np.linalg.norm(normal)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    return np.ascontiguousarray(stored)[:, :, np.newaxis], lps_to_ras @ affine


def write_mask_nifti(mask: np.ndarray, ct: CTSlice, path: PathLike, description: str = "") -> Path:
    """Write a label mask as NIfTI with the geometry of its source slice.

    The (H, W) mask on the normalised grid of ``ct`` is stored as a one-slice uint8 volume in
    the array order of :func:`nifti_layout`, with qform and sform code 1 (scanner), units mm and
    intent "label", so it overlays the source CT in 3D Slicer or ITK-SNAP and the voxel sizes are
    ``ct.spacing_mm``. Label values, names and colours: :mod:`lsmseg.io.labels`.

    Args:
        mask: (H, W) integer labels (:class:`lsmseg.keys.Measured` values), same shape as ``ct.hu``.
        ct: the slice the mask was predicted on.
        path: output file ending in ``.nii`` or ``.nii.gz``.
        description: header ``descrip`` (at most 80 characters), e.g. what the labels are.
    """
    import nibabel as nib

    path = Path(path)
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise ValueError(f"NIfTI mask path must end with .nii or .nii.gz, got {path.name}")
    data, affine = nifti_layout(ct.label_mask(mask), ct)
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_data_dtype(np.uint8)
    image.header.set_xyzt_units("mm")
    image.header.set_intent("label")
    image.header["descrip"] = description[:80].encode("ascii", "replace")
    with atomic_write(path) as tmp:
        nib.save(image, tmp)
    return path
