"""Writing CT images: an axial slice as a DICOM CT Image Storage file or a one-slice NIfTI volume.

The counterpart of the readers in :mod:`lsmseg.io.dicom` and :mod:`lsmseg.io.nifti`, for tools
that make CT data (the synthetic phantom). Both write through :func:`lsmseg.io.atomic.atomic_write`,
so a reader never sees a half-written file. Geometry follows the DICOM patient frame (LPS, mm):
rows run +y (posterior), columns +x (patient left), i.e. ImageOrientationPatient [1, 0, 0, 0, 1, 0].
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lsmseg.io.atomic import atomic_write

PathLike = str | os.PathLike[str]

STORED_HU_RANGE = (-1024, 3071)  # 12 bits stored, RescaleIntercept -1024: stored value = HU + 1024
AXIAL_ORIENTATION = [1, 0, 0, 0, 1, 0]  # ImageOrientationPatient: rows +x (left), columns +y (posterior)


def decimal_string(value: float) -> str:
    """A DICOM decimal string (DS, at most 16 characters) as close to ``value`` as fits."""
    for digits in range(15, 5, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.6g}"


def axial_affine_ras(
    position_mm: Sequence[float], spacing_mm: Sequence[float], thickness_mm: float
) -> np.ndarray:
    """(4, 4) RAS affine of an axial slice stored as a NIfTI array indexed (column, row, 0).

    Args:
        position_mm: ImagePositionPatient (LPS mm) of the centre of pixel (0, 0).
        spacing_mm: (row, column) pixel spacing in mm.
        thickness_mm: slice thickness, the third voxel size.

    With ImageOrientationPatient [1, 0, 0, 0, 1, 0], LPS +x and +y are RAS -x and -y, so the
    affine is diag(-column spacing, -row spacing, thickness) with the LPS origin negated in x and
    y, and ``nibabel.aff2axcodes`` reads ('L', 'P', 'S').
    """
    x0, y0, z0 = (float(v) for v in position_mm)
    return np.array(
        [
            [-float(spacing_mm[1]), 0.0, 0.0, -x0],
            [0.0, -float(spacing_mm[0]), 0.0, -y0],
            [0.0, 0.0, thickness_mm, z0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def stored_ct_pixels(hu: np.ndarray) -> np.ndarray:
    """(H, W) HU -> (H, W) uint16 stored values (HU + 1024, rounded) for a 12-bit CT file.

    Raises:
        ValueError: ``hu`` is not 2-D, or rounds outside ``STORED_HU_RANGE`` (-1024..3071).
    """
    rounded = np.rint(np.asarray(hu)).astype(np.int32)
    if rounded.ndim != 2:
        raise ValueError(f"a CT slice is a 2-D (rows, columns) array, got shape {rounded.shape}")
    lo, hi = STORED_HU_RANGE
    if rounded.size and (rounded.min() < lo or rounded.max() > hi):
        raise ValueError(f"HU values must lie in {lo}..{hi} for 12-bit storage")
    return (rounded - lo).astype(np.uint16)


def write_ct_dicom(
    path: PathLike,
    hu: np.ndarray,
    spacing_mm: Sequence[float],
    position_mm: Sequence[float],
    tags: Mapping[str, Any],
    implementation_name: str = "LSMSEG",
) -> Path:
    """Write one axial CT Image Storage file (explicit VR little endian, 12 of 16 bits, intercept -1024).

    This function sets what makes the file a CT image of ``hu``: file meta, SOP class, image
    plane (``position_mm``, axial orientation, ``spacing_mm`` as DS), image pixel and rescale
    modules. Everything that identifies the patient, study and series comes from ``tags``.

    Args:
        path: the ``.dcm`` file to write.
        hu: (H, W) Hounsfield units, rows anterior -> posterior, columns patient right -> left.
        spacing_mm: (row, column) PixelSpacing in mm.
        position_mm: ImagePositionPatient (LPS mm) of the centre of pixel (0, 0).
        tags: DICOM keyword -> value (e.g. ``PatientID``, ``StudyInstanceUID``, ``SliceThickness``);
            must hold ``SOPInstanceUID``.
        implementation_name: ImplementationVersionName of the file meta (at most 16 characters).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian

    if "SOPInstanceUID" not in tags:
        raise ValueError("write_ct_dicom needs tags['SOPInstanceUID']")
    stored = stored_ct_pixels(hu)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = tags["SOPInstanceUID"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = implementation_name

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.ImagePositionPatient = [decimal_string(float(v)) for v in position_mm]
    ds.ImageOrientationPatient = AXIAL_ORIENTATION
    ds.PixelSpacing = [decimal_string(float(spacing_mm[0])), decimal_string(float(spacing_mm[1]))]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = str(STORED_HU_RANGE[0])
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.PixelData = stored.tobytes()
    with atomic_write(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(path)


def write_slice_nifti(path: PathLike, array: np.ndarray, affine_ras: np.ndarray) -> Path:
    """Write an (H, W) array as a one-slice NIfTI-1 volume indexed (column, row, 0).

    The data type of ``array`` is kept (int16 HU, uint8 labels); ``affine_ras`` (4, 4), e.g.
    from :func:`axial_affine_ras`, goes to both qform and sform (code 1, scanner), units mm.
    """
    import nibabel as nib

    image = nib.Nifti1Image(np.ascontiguousarray(np.asarray(array).T[:, :, None]), affine_ras)
    image.set_qform(affine_ras, code=1)
    image.set_sform(affine_ras, code=1)
    image.header.set_xyzt_units("mm")
    image.header.set_data_dtype(array.dtype)
    with atomic_write(path) as tmp:
        nib.save(image, str(tmp))
    return Path(path)
