"""Read one axial CT slice from DICOM into a :class:`CTSlice` (HU, spacing, geometry, patient).

Orientation is normalised so that rows run anterior -> posterior and columns from the patient's
right to left, whatever order the scanner stored the pixels in; ``CTSlice.flips`` records how to
go back. Compressed transfer syntaxes decode through pydicom's pixel handlers (pylibjpeg plugins).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import ArrayLike
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from lsmseg.io.ctslice import CTSlice, DicomRef, IngestError, PatientInfo
from lsmseg.io.quality import check_slice, lossy_compression_note

# Standard axial orientation, assumed (and flagged by the quality gate) when the tag is missing.
AXIAL_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def safe_case_id(text: str) -> str:
    """``text`` made a safe, readable folder name: letters and digits of any script (NFC), ``.``,
    ``-`` and ``_`` kept, everything else (path separators, spaces, control characters) -> ``_``.

    A PatientID such as ``"12/34 AB"`` must not create nested folders, ``".."`` must not name the
    parent folder and a leading dot must not hide the folder, while ``"李雷"`` stays ``"李雷"``.
    """
    cleaned = re.sub(r"[^\w.-]", "_", unicodedata.normalize("NFC", text.strip()))
    if cleaned.startswith("."):  # ".", "..", ".hidden": never a path component of their own
        cleaned = "_" + cleaned
    return cleaned or "case"


def describe(ds: Dataset, source: str | Path) -> str:
    """How messages name a DICOM source: the file and, when known, its series UID."""
    series = str(ds.get("SeriesInstanceUID", "") or "")
    name = Path(source).name
    return f"{name} (series {series})" if series else name


def orientation_flips(row_axis: ArrayLike, col_axis: ArrayLike) -> tuple[bool, bool, bool]:
    """How to normalise a stored pixel grid: ``(flip_rows, flip_cols, transpose)`` of CTSlice.

    Args:
        row_axis: LPS unit vector along which the stored row index grows (DICOM
            ImageOrientationPatient[3:6]).
        col_axis: LPS unit vector along which the stored column index grows
            (ImageOrientationPatient[0:3]).

    The normalised grid has rows growing towards posterior (+y in LPS) and columns towards the
    patient's left (+x). Any plane gets an answer, so a non-axial slice reaches the quality gate
    and its clear message instead of failing here.
    """
    row, col = np.asarray(row_axis, dtype=float), np.asarray(col_axis, dtype=float)
    # the stored axis that is more anterior-posterior becomes the row axis
    transpose = abs(col[1]) + abs(row[0]) > abs(row[1]) + abs(col[0])
    if transpose:
        row, col = col, row
    return bool(row[1] < 0), bool(col[0] < 0), bool(transpose)


def normalised_geometry(
    origin_lps: ArrayLike,
    row_axis: ArrayLike,
    col_axis: ArrayLike,
    spacing_mm: tuple[float, float],
    shape: tuple[int, int],
    flips: tuple[bool, bool, bool],
    slice_step_mm: float = 1.0,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Affine and spacing of the normalised grid from the geometry of the stored grid.

    Args:
        origin_lps: LPS position (mm) of the centre of stored pixel (0, 0).
        row_axis, col_axis: LPS unit vectors along the stored row / column index.
        spacing_mm: stored (row, column) spacing in mm (DICOM PixelSpacing order).
        shape: stored (H, W).
        flips: from :func:`orientation_flips`.
        slice_step_mm: length of the affine's slice axis (slice thickness; one slice only).

    Returns:
        (4, 4) index (row, column, slice) -> LPS mm affine of the normalised grid, whose slice
        axis is column axis x row axis (superior for an axial slice); and the normalised (row,
        column) spacing in mm.
    """
    flip_rows, flip_cols, transpose = flips
    origin = np.asarray(origin_lps, dtype=float)
    row, col = np.asarray(row_axis, dtype=float), np.asarray(col_axis, dtype=float)
    (row_mm, col_mm), (height, width) = spacing_mm, shape
    if transpose:
        row, col, row_mm, col_mm, height, width = col, row, col_mm, row_mm, width, height
    # a flipped axis starts from the old last pixel and runs the other way
    if flip_rows:
        origin, row = origin + (height - 1) * row_mm * row, -row
    if flip_cols:
        origin, col = origin + (width - 1) * col_mm * col, -col
    normal = np.cross(col, row)
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2], affine[:3, 3] = (
        row * row_mm,
        col * col_mm,
        normal * slice_step_mm,
        origin,
    )
    return affine, (float(row_mm), float(col_mm))


def read_dataset(path: str | Path, stop_before_pixels: bool = False) -> Dataset:
    """Read a DICOM file, with or without its 128-byte preamble; IngestError when unreadable."""
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=stop_before_pixels)
    except Exception as err:  # pydicom raises many types for corrupt files; the user needs one
        raise IngestError(f"{Path(path).name} cannot be read as DICOM: {err}") from err
    if "TransferSyntaxUID" not in ds.file_meta:
        # a file without preamble and meta header: decoding needs the encoding pydicom read it with
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit is not False
            else (ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian)
        )
    return ds


def _number(ds: Dataset, keyword: str) -> float | None:
    """A numeric tag as float, None when absent, empty, unparsable or not positive."""
    try:
        value = float(ds.get(keyword))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def _text(ds: Dataset, keyword: str) -> str | None:
    value = str(ds.get(keyword, "") or "").strip()
    return value or None


def patient_info(ds: Dataset) -> PatientInfo:
    """Patient attributes of a dataset; zero or empty values (common placeholders) become None."""
    sex = _text(ds, "PatientSex")
    return PatientInfo(
        patient_id=_text(ds, "PatientID"),
        sex=sex.upper() if sex else None,
        height_m=_number(ds, "PatientSize"),
        weight_kg=_number(ds, "PatientWeight"),
        age=_text(ds, "PatientAge"),
    )


def dicom_ref(ds: Dataset) -> DicomRef:
    """The identifiers a DICOM SEG needs, with the full dataset kept for highdicom."""
    return DicomRef(
        dataset=ds,
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or ""),
        sop_class_uid=str(ds.get("SOPClassUID", "") or ""),
        series_number=_int(ds, "SeriesNumber"),
        instance_number=_int(ds, "InstanceNumber"),
    )


def _rescale(ds: Dataset, what: str) -> tuple[float, float]:
    """(slope, intercept); DICOM allows the defaults 1 and 0 only when the tags are absent."""
    values = []
    for keyword, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        if keyword not in ds:
            values.append(default)
            continue
        try:
            value = float(ds[keyword].value)
        except (TypeError, ValueError) as err:
            raise IngestError(f"{what} has an empty or invalid {keyword}: cannot compute HU") from err
        values.append(value)
    if values[0] == 0 or not all(map(math.isfinite, values)):
        raise IngestError(f"{what} has RescaleSlope {values[0]}, intercept {values[1]}: cannot compute HU")
    return values[0], values[1]


def _pixel_spacing(ds: Dataset, what: str) -> tuple[float, float]:
    spacing = ds.get("PixelSpacing")
    if not spacing or len(spacing) != 2:
        raise IngestError(f"{what} has no PixelSpacing: cannot compute muscle area in cm2")
    row_mm, col_mm = float(spacing[0]), float(spacing[1])
    if not (row_mm > 0 and col_mm > 0 and math.isfinite(row_mm * col_mm)):
        raise IngestError(f"{what} has PixelSpacing {list(spacing)}: cannot compute muscle area in cm2")
    return row_mm, col_mm


def _stored_pixels(ds: Dataset, what: str) -> np.ndarray:
    if "PixelData" not in ds:
        raise IngestError(
            f"{what} has no pixel data (a truncated file, or a DICOM object that is not an image)"
        )
    if (_int(ds, "NumberOfFrames") or 1) > 1:
        raise IngestError(f"{what} is a multi-frame object: export the L3 slice as a single-frame CT image")
    if (_int(ds, "SamplesPerPixel") or 1) != 1:
        raise IngestError(f"{what} is a colour image, not a CT slice in HU")
    try:
        pixels = ds.pixel_array
    except Exception as err:  # handlers raise assorted errors for truncated or unsupported data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", "unknown transfer syntax")
        raise IngestError(f"{what}: pixel data cannot be decoded ({name}): {err}") from err
    if pixels.ndim != 2:
        raise IngestError(f"{what} has pixel data of shape {pixels.shape}, not one 2D slice")
    return pixels


def _unit(vector: Sequence[Any]) -> np.ndarray:
    v = np.asarray([float(x) for x in vector])
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def slice_from_dataset(
    ds: Dataset, source: str | Path, case_id: str | None = None, *, check: bool = True
) -> CTSlice:
    """Build a :class:`CTSlice` from a DICOM dataset (see :func:`read_dicom_slice`)."""
    what = describe(ds, source)
    spacing = _pixel_spacing(ds, what)
    slope, intercept = _rescale(ds, what)
    stored = _stored_pixels(ds, what)
    hu = (stored.astype(np.float64) * slope + intercept).astype(np.float32)
    orientation = ds.get("ImageOrientationPatient") or AXIAL_ORIENTATION
    if len(orientation) != 6:
        orientation = AXIAL_ORIENTATION
    col_axis, row_axis = _unit(orientation[:3]), _unit(orientation[3:])
    position = ds.get("ImagePositionPatient") or (0.0, 0.0, 0.0)
    flips = orientation_flips(row_axis, col_axis)
    affine, spacing_mm = normalised_geometry(
        position,
        row_axis,
        col_axis,
        spacing,
        (int(stored.shape[0]), int(stored.shape[1])),
        flips,
        slice_step_mm=_number(ds, "SliceThickness") or 1.0,
    )
    patient = patient_info(ds)
    ct = CTSlice(
        hu=hu,
        spacing_mm=spacing_mm,
        case_id=case_id or safe_case_id(patient.patient_id or Path(source).stem),
        source=str(source),
        affine=affine,
        patient=patient,
        dicom=dicom_ref(ds),
        flips=flips,
    )
    ct.hu = ct.from_source_grid(hu)  # the contract's own mapping, so to_source_grid undoes it exactly
    if check:
        check_slice(ct, ds)
    note = lossy_compression_note(ds)
    if note is not None:
        ct.warnings.append(note)
    return ct


def read_dicom_slice(path: str | Path, case_id: str | None = None, *, check: bool = True) -> CTSlice:
    """Read one single-frame DICOM CT file into a :class:`CTSlice`.

    HU = stored value * RescaleSlope + RescaleIntercept (1 and 0 only when the tags are absent).
    The slice is normalised to rows anterior -> posterior and columns right -> left; its affine
    maps (row, column, slice) indices to LPS mm.

    Args:
        path: DICOM file (a 128-byte preamble is optional); any transfer syntax pydicom can
            decode here, compressed ones included.
        case_id: defaults to the PatientID, else the file stem (made safe for folder names).
        check: run the quality gate (:func:`lsmseg.io.quality.check_slice`).

    Raises:
        IngestError: unreadable file, no PixelSpacing, undecodable pixels, or a failed check;
            the message is for the user.
    """
    return slice_from_dataset(read_dataset(path), path, case_id, check=check)
