"""Read one axial CT slice from a 2D or 3D NIfTI file into a :class:`CTSlice`.

NIfTI voxels are taken as HU (after the header's scl_slope / scl_inter). nibabel affines map to
RAS; the slice is normalised like DICOM (rows anterior -> posterior, columns right -> left) and
``CTSlice.affine`` is given in LPS, as for DICOM input, so downstream code sees one convention.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from lsmseg.io.ctslice import CTSlice, IngestError
from lsmseg.io.dicom import normalised_geometry, orientation_flips, safe_case_id
from lsmseg.io.quality import check_slice

NIFTI_SUFFIXES = (".nii.gz", ".nii")
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_nifti(path: str | Path) -> bool:
    """Whether the file name ends in .nii or .nii.gz."""
    return Path(path).name.lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: str | Path) -> str:
    """File name without .nii / .nii.gz (``Path.stem`` would keep ``.nii`` of ``.nii.gz``)."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def open_nifti(path: Path, what: str = "") -> nib.Nifti1Image:
    """The NIfTI image at ``path`` (header read, pixels not yet loaded).

    Raises:
        IngestError: unreadable or not NIfTI; the message starts with ``what`` (e.g. ``"mask "``).
    """
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises assorted errors for corrupt headers
        raise IngestError(f"{what}{path.name} cannot be read as NIfTI: {err}") from err
    if not isinstance(img, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise IngestError(f"{what}{path.name} is not a NIfTI image")
    return img


def _load(path: Path) -> nib.Nifti1Image:
    img = open_nifti(path)
    if len(img.shape) < 2 or any(n != 1 for n in img.shape[3:]):
        raise IngestError(f"{path.name} has shape {img.shape}: expected a 2D slice or a 3D volume")
    return img


def _directions(affine: np.ndarray) -> np.ndarray:
    """(3, 3) unit voxel-axis directions (columns) of an affine; a zero axis (2D files) stays 0."""
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    return affine[:3, :3] / np.where(norms > 0, norms, 1.0)


def slice_axis(img: nib.Nifti1Image) -> int:
    """The voxel axis slices are taken along: a single-sample axis, else the one closest to z.

    2D images give 2 (the implicit third axis).
    """
    shape = img.shape[:3]
    if len(shape) == 2:
        return 2
    singletons = [k for k, n in enumerate(shape) if n == 1]
    if len(singletons) == 1:
        return singletons[0]
    return int(np.abs(_directions(img.affine)[2]).argmax())


def nifti_slice_count(path: str | Path) -> int:
    """Number of slices along :func:`slice_axis` (1 for a 2D file); reads the header only."""
    img = _load(Path(path))
    axis = slice_axis(img)
    return 1 if axis >= len(img.shape) else int(img.shape[axis])


def read_nifti_slice(
    path: str | Path,
    case_id: str | None = None,
    slice_index: int | None = None,
    *,
    check: bool = True,
) -> CTSlice:
    """Read an axial HU slice from a 2D or 3D NIfTI file.

    Args:
        path: .nii or .nii.gz file.
        case_id: defaults to the file name stem.
        slice_index: 0-based index along the slice axis (see :func:`slice_axis`), needed for a
            3D file with more than one slice.
        check: run the quality gate (:func:`lsmseg.io.quality.check_slice`).

    Returns:
        A CTSlice with spacing from the header zooms (mm) and an LPS affine of the normalised grid.

    Raises:
        IngestError: unreadable file, missing or out-of-range ``slice_index``, non-finite pixels,
            non-positive spacing, or a failed check.
    """
    path = Path(path)
    img = _load(path)
    _check_affine(path, img)
    axis = slice_axis(img)
    ndim = min(len(img.shape), 3)
    slice_index = _check_slice_index(path, 1 if axis >= ndim else int(img.shape[axis]), slice_index)
    plane = _read_plane(path, img, axis, slice_index)
    in_plane = [k for k in range(3) if k != axis]
    zooms = [float(z) for z in img.header.get_zooms()[:3]] + [1.0]
    spacing = (zooms[in_plane[0]], zooms[in_plane[1]])
    if not all(np.isfinite(spacing)) or min(spacing) <= 0:
        raise IngestError(f"{path.name} has pixel spacing {spacing} mm: cannot compute muscle area in cm2")
    affine, spacing_mm, flips = _geometry(img, axis, slice_index, spacing, plane.shape)
    ct = CTSlice(
        hu=plane,
        spacing_mm=spacing_mm,
        case_id=case_id or safe_case_id(nifti_stem(path)),
        source=str(path),
        affine=affine,
        flips=flips,
    )
    ct.hu = ct.from_source_grid(plane)  # the contract's own mapping, so to_source_grid undoes it
    if check:
        check_slice(ct)
    return ct


def _check_affine(path: Path, img: nib.Nifti1Image) -> None:
    """The affine must map voxels to space: a singular one (all zero, a zero or repeated axis)
    gives no orientation and no trustworthy geometry."""
    matrix = np.asarray(img.affine, dtype=float)[:3, :3]
    if not np.all(np.isfinite(matrix)) or abs(float(np.linalg.det(matrix))) < 1e-9:
        raise IngestError(
            f"{path.name} has a degenerate affine (sform/qform with determinant 0): the slice's "
            "orientation and position are unknown; fix the NIfTI header (e.g. re-export from DICOM)"
        )


def _check_slice_index(path: Path, n_slices: int, slice_index: int | None) -> int:
    """The slice to read: ``slice_index``, or 0 for a single-slice file."""
    if slice_index is None:
        if n_slices > 1:
            raise IngestError(
                f"{path.name} has {n_slices} slices: give the L3 slice index (0 to {n_slices - 1})"
            )
        return 0
    if not 0 <= slice_index < n_slices:
        raise IngestError(f"{path.name}: slice index {slice_index} is outside 0 to {n_slices - 1}")
    return slice_index


def _read_plane(path: Path, img: nib.Nifti1Image, axis: int, slice_index: int) -> np.ndarray:
    """The (stored-order) float32 plane ``slice_index`` along ``axis``, finite values only."""
    ndim = min(len(img.shape), 3)
    index: list[int | slice] = [slice(None)] * ndim + [0] * (len(img.shape) - ndim)
    if axis < ndim:
        index[axis] = slice_index
    try:  # the proxy reads (and scales) only the one slice
        plane = np.asarray(img.dataobj[tuple(index)], dtype=np.float32)
    except Exception as err:
        raise IngestError(f"{path.name}: image data cannot be read: {err}") from err
    bad = int(np.size(plane) - np.count_nonzero(np.isfinite(plane)))
    if bad:
        raise IngestError(f"{path.name} has {bad} non-finite (NaN or inf) pixels: not a valid HU image")
    return plane


def _geometry(
    img: nib.Nifti1Image, axis: int, slice_index: int, spacing: tuple[float, float], shape: tuple[int, ...]
) -> tuple[np.ndarray, tuple[float, float], tuple[bool, bool, bool]]:
    """LPS affine and (row, column) spacing of the normalised grid of plane ``slice_index``,
    and the flips that normalise the stored plane (see :func:`orientation_flips`)."""
    ndim = min(len(img.shape), 3)
    in_plane = [k for k in range(3) if k != axis]
    lps = RAS_TO_LPS @ img.affine
    voxel = np.zeros(4)
    voxel[3] = 1.0
    if axis < ndim:
        voxel[axis] = slice_index
    directions = _directions(lps)
    row_axis, col_axis = directions[:, in_plane[0]], directions[:, in_plane[1]]
    flips = orientation_flips(row_axis, col_axis)
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    affine, spacing_mm = normalised_geometry(
        (lps @ voxel)[:3],
        row_axis,
        col_axis,
        spacing,
        (int(shape[0]), int(shape[1])),
        flips,
        slice_step_mm=zooms[axis] if axis < ndim else 1.0,
    )
    return affine, spacing_mm, flips
