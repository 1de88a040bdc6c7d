"""The object ingest returns: one axial CT slice with its geometry and identifiers.

Geometry travels with the pixels (STYLE.md 7): areas are computed from ``spacing_mm`` of the same
object, and masks are written back onto the source grid with ``to_source_grid``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PatientInfo:
    """Patient attributes found in the source (DICOM patient module), or None when absent."""

    patient_id: str | None = None
    sex: str | None = None  # "M", "F" or "O" as in DICOM PatientSex
    height_m: float | None = None  # DICOM PatientSize, metres
    weight_kg: float | None = None  # DICOM PatientWeight, kilograms
    age: str | None = None  # DICOM PatientAge, e.g. "063Y"


@dataclass
class DicomRef:
    """What a DICOM SEG needs to reference its source image."""

    dataset: Any  # the pydicom Dataset of the source slice (pixel data may be dropped)
    study_uid: str = ""
    series_uid: str = ""
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    series_number: int | None = None
    instance_number: int | None = None


@dataclass
class CTSlice:
    """One axial CT slice in Hounsfield units on its native pixel grid.

    Attributes:
        hu: (H, W) float32 Hounsfield units, in the normalised orientation: rows run from
            anterior to posterior, columns from the patient's right to left (the radiological
            display of an axial slice). ``to_source_grid`` undoes the normalisation.
        spacing_mm: (row, column) pixel spacing in mm, in the normalised orientation.
        case_id: identifier used for output folders and result rows.
        source: path of the file (or folder) the slice came from.
        affine: (4, 4) voxel-index (row, column, slice) to patient (LPS, mm) matrix of the
            normalised grid, so writers can put a mask back with the source geometry.
        patient: patient attributes read from the source.
        dicom: reference to the DICOM source (None for NIfTI input).
        flips: (flip_rows, flip_cols, transpose) applied to the stored pixels to normalise them;
            transpose is applied first, then the flips.
        warnings: what a reader of the results should know about the source (lossy
            compression, an unconfirmed vertebral level); the case is still measured.
    """

    hu: np.ndarray
    spacing_mm: tuple[float, float]
    case_id: str
    source: str
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    patient: PatientInfo = field(default_factory=PatientInfo)
    dicom: DicomRef | None = None
    flips: tuple[bool, bool, bool] = (False, False, False)
    warnings: list[str] = field(default_factory=list)

    @property
    def pixel_area_mm2(self) -> float:
        """Area of one pixel in mm^2."""
        return float(self.spacing_mm[0] * self.spacing_mm[1])

    def to_source_grid(self, array: np.ndarray) -> np.ndarray:
        """Map an (H, W) array on the normalised grid back to the stored pixel order."""
        flip_rows, flip_cols, transpose = self.flips
        out = array
        if flip_cols:
            out = out[:, ::-1]
        if flip_rows:
            out = out[::-1, :]
        if transpose:
            out = out.T
        return np.ascontiguousarray(out)

    def label_mask(self, mask: np.ndarray) -> np.ndarray:
        """Check an (H, W) label mask against this slice and return it as uint8.

        Raises:
            ValueError: another shape than ``hu``, non-integer labels, or labels outside 0..255.
        """
        mask = np.asarray(mask)
        if mask.shape != self.hu.shape:
            raise ValueError(
                f"case {self.case_id}: mask shape {mask.shape} does not match the CT slice {self.hu.shape}"
            )
        if mask.dtype == np.uint8:
            return mask
        if mask.dtype != bool and not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(f"case {self.case_id}: mask must hold integer labels, got dtype {mask.dtype}")
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise ValueError(f"case {self.case_id}: mask labels must be in 0..255")
        return mask.astype(np.uint8)

    def from_source_grid(self, array: np.ndarray) -> np.ndarray:
        """Map an (H, W) array in stored pixel order onto the normalised grid."""
        flip_rows, flip_cols, transpose = self.flips
        out = array.T if transpose else array
        if flip_rows:
            out = out[::-1, :]
        if flip_cols:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)


class IngestError(ValueError):
    """A source that cannot give trustworthy numbers; the message is for the user."""
