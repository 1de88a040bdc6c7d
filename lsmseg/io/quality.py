"""Quality gate: reject slices whose areas and HU statistics could not be trusted.

The checks follow the series gate of the MGH/DFCI body-composition tool (see
shared/reference/sarcopenia.md). Each is a small function ``check_x(ct, dataset)`` that raises
:class:`IngestError` with the reason in the user's terms; :func:`check_slice` runs them all.
``dataset`` is the pydicom Dataset of a DICOM source, None for NIfTI (DICOM-only checks pass).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from lsmseg.io.body import body_mask
from lsmseg.io.ctslice import CTSlice, IngestError
from lsmseg.keys import ADIPOSE_HU, MUSCLE_HU

# Values outside this range come from decompression errors or images not in HU (MGH/DFCI gate).
PLAUSIBLE_HU = (-11000.0, 12000.0)
# Gantry tilt stays well under this; reformatted sagittal/coronal images are far above it.
MAX_TILT_DEG = 10.0
# A body slice is mostly fat and muscle (-190..150 HU); fewer such pixels means no patient.
MIN_TISSUE_FRACTION = 0.005
# Body pixels allowed on the outer image border before the field of view is judged to cut the
# body off (a few pixels of an arm or of skin folds are tolerated).
MAX_BORDER_FRACTION = 0.02
# Matrix sizes of diagnostic axial CT (usually 512); anything outside is not a CT slice as exported
# by a scanner (a thumbnail, a secondary capture, a stitched image).
MATRIX_PX_RANGE = (128, 2048)
# CT stores -1024..3071 HU in 12 bits (DICOM CT Image module); fewer bits mean an 8-bit export.
MIN_BITS_STORED = 12
# A label map has a handful of small integer values (labels 0..255); a CT slice has hundreds of
# distinct values over more than 1000 HU even when drawn without noise.
MAX_LABEL_VALUES = 32
MAX_LABEL_SPREAD = 255.0

SliceCheck = Callable[[CTSlice, "Dataset | None"], None]


def _what(ct: CTSlice) -> str:
    """How messages name the slice: its file and, for DICOM, its series UID."""
    name = Path(ct.source).name
    series = ct.dicom.series_uid if ct.dicom is not None else ""
    return f"{name} (series {series})" if series else name


def check_modality(ct: CTSlice, dataset: Dataset | None) -> None:
    """DICOM Modality must be CT: only CT pixels are Hounsfield units."""
    if dataset is None:
        return
    modality = str(dataset.get("Modality", "") or "").upper()
    if modality != "CT":
        raise IngestError(
            f"{_what(ct)} has Modality {modality or 'missing'}, not CT: only CT gives Hounsfield units"
        )


def image_type(dataset: Dataset) -> list[str]:
    """ImageType values, upper case and stripped (``'DERIVED '`` with its padding space is DERIVED)."""
    raw = dataset.get("ImageType")
    if raw is None:
        return []
    items = raw if isinstance(raw, Sequence) and not isinstance(raw, str) else str(raw).split("\\")
    return [str(v).strip().upper() for v in items]


def check_image_type(ct: CTSlice, dataset: Dataset | None) -> None:
    """Reject DERIVED or SECONDARY images (screenshots, reformats, material maps) and localizers."""
    if dataset is None:
        return
    values = image_type(dataset)
    shown = "\\".join(values)  # as DICOM writes a multi-valued string
    if "LOCALIZER" in values:
        raise IngestError(
            f"{_what(ct)} has ImageType {shown}: a localizer (scout) image, not an axial CT slice"
        )
    flagged = sorted({"DERIVED", "SECONDARY"} & set(values))
    if flagged:
        raise IngestError(
            f"{_what(ct)} has ImageType {shown} ({', '.join(flagged)}): use the original "
            "reconstructed CT slice, not a derived or secondary image"
        )


def check_rescale(ct: CTSlice, dataset: Dataset | None) -> None:
    """A CT image must carry RescaleSlope and RescaleIntercept (type 1 in the DICOM CT Image
    module): without them the stored values are not Hounsfield units."""
    if dataset is None:
        return
    missing = [k for k in ("RescaleSlope", "RescaleIntercept") if k not in dataset]
    if missing:
        raise IngestError(
            f"{_what(ct)} has no {' or '.join(missing)}: the stored pixel values cannot be "
            "converted to Hounsfield units (an export that dropped the CT tags?)"
        )


def check_bit_depth(ct: CTSlice, dataset: Dataset | None) -> None:
    """CT needs at least ``MIN_BITS_STORED`` bits: -1024..3071 HU do not fit in 8 bits."""
    if dataset is None:
        return
    try:
        bits = int(dataset.get("BitsStored") or 0)
    except (TypeError, ValueError):
        return
    if 0 < bits < MIN_BITS_STORED:
        raise IngestError(
            f"{_what(ct)} has BitsStored {bits}: an {bits}-bit image (a screenshot or an 8-bit JPEG "
            f"export) cannot hold CT Hounsfield units, which need {MIN_BITS_STORED} bits"
        )


def check_not_label_map(ct: CTSlice, dataset: Dataset | None) -> None:
    """A label map (2 to ``MAX_LABEL_VALUES`` integer values within 255 of each other) given as
    the image is not a CT slice in HU. One value is an empty image, left to the tissue check."""
    values = np.unique(ct.hu)
    spread = float(values[-1] - values[0]) if values.size else 0.0
    if (
        2 <= values.size <= MAX_LABEL_VALUES
        and spread <= MAX_LABEL_SPREAD
        and np.all(values == np.round(values))
    ):
        shown = ", ".join(f"{v:g}" for v in values[:8]) + (", ..." if values.size > 8 else "")
        raise IngestError(
            f"{_what(ct)} holds only {values.size} distinct values ({shown}): a label map or mask, "
            "not a CT image in Hounsfield units (was the mask given instead of the image?)"
        )


def lossy_compression_note(dataset: Dataset | None) -> str | None:
    """A note when the pixels went through lossy compression (HU may be altered), else None."""
    if dataset is None:
        return None
    flag = str(dataset.get("LossyImageCompression", "") or "").strip()
    raw = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    syntax = UID(str(raw)) if raw else None
    lossy_syntax = syntax is not None and syntax.is_compressed and not _is_lossless(syntax)
    if flag != "01" and not lossy_syntax:
        return None
    ratio = str(dataset.get("LossyImageCompressionRatio", "") or "").strip()
    detail = f"LossyImageCompression {flag or '?'}" + (f", ratio {ratio}" if ratio else "")
    if lossy_syntax and syntax is not None:
        detail += f", {syntax.name}"
    return f"lossy compressed pixels ({detail}): HU statistics may be altered"


def _is_lossless(syntax: UID) -> bool:
    return "lossless" in syntax.name.lower() or syntax.name.lower().startswith("rle")


def check_matrix_size(ct: CTSlice, dataset: Dataset | None) -> None:
    """Rows and columns must each be within ``MATRIX_PX_RANGE`` (a scanner's axial CT matrix)."""
    lo, hi = MATRIX_PX_RANGE
    rows, columns = ct.hu.shape
    if not (lo <= rows <= hi and lo <= columns <= hi):
        raise IngestError(
            f"{_what(ct)}: the image is {rows}x{columns} pixels; an axial CT slice has "
            f"{lo} to {hi} pixels per side (usually 512x512): a thumbnail or secondary capture?"
        )


def check_pixel_spacing(ct: CTSlice, dataset: Dataset | None) -> None:
    """PixelSpacing must be present (DICOM) and positive: areas in cm2 are built on it."""
    if dataset is not None and not dataset.get("PixelSpacing"):
        raise IngestError(f"{_what(ct)} has no PixelSpacing: cannot compute muscle area in cm2")
    row_mm, col_mm = ct.spacing_mm
    if not (row_mm > 0 and col_mm > 0 and math.isfinite(row_mm * col_mm)):
        raise IngestError(
            f"{_what(ct)} has pixel spacing {ct.spacing_mm} mm: cannot compute muscle area in cm2"
        )


def check_position_tags(ct: CTSlice, dataset: Dataset | None) -> None:
    """DICOM ImagePositionPatient and ImageOrientationPatient must be present."""
    if dataset is None:
        return
    missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient") if not dataset.get(k)]
    if missing:
        raise IngestError(
            f"{_what(ct)} has no {' or '.join(missing)}: cannot tell the slice's position and orientation"
        )


def tilt_deg(ct: CTSlice) -> float:
    """Angle in degrees between the slice normal and the patient's head-foot (z) axis."""
    normal = np.cross(ct.affine[:3, 0], ct.affine[:3, 1])
    norm = float(np.linalg.norm(normal))
    if norm == 0:
        return 90.0
    return math.degrees(math.acos(min(1.0, abs(float(normal[2])) / norm)))


def check_axial(ct: CTSlice, dataset: Dataset | None) -> None:
    """The slice must be axial: its normal within ``MAX_TILT_DEG`` of the z axis."""
    tilt = tilt_deg(ct)
    if tilt > MAX_TILT_DEG:
        raise IngestError(
            f"{_what(ct)} is not axial (its normal is {tilt:.0f} degrees from the head-foot axis, "
            f"more than {MAX_TILT_DEG:.0f}): give an axial L3 slice"
        )


def check_hu_range(ct: CTSlice, dataset: Dataset | None) -> None:
    """HU values must lie within ``PLAUSIBLE_HU``."""
    low, high = float(np.min(ct.hu)), float(np.max(ct.hu))
    if low < PLAUSIBLE_HU[0] or high > PLAUSIBLE_HU[1]:
        raise IngestError(
            f"{_what(ct)} has implausible HU values ({low:.0f} to {high:.0f}, allowed "
            f"{PLAUSIBLE_HU[0]:.0f} to {PLAUSIBLE_HU[1]:.0f}): a decompression error or an image not in HU"
        )


def check_has_tissue(ct: CTSlice, dataset: Dataset | None) -> None:
    """At least ``MIN_TISSUE_FRACTION`` of the pixels must be fat or muscle (-190..150 HU)."""
    tissue = (ct.hu >= ADIPOSE_HU[0]) & (ct.hu <= MUSCLE_HU[1])
    fraction = float(tissue.mean())
    if fraction < MIN_TISSUE_FRACTION:
        raise IngestError(
            f"{_what(ct)} shows no body tissue ({100 * fraction:.2f}% of pixels between "
            f"{ADIPOSE_HU[0]:.0f} and {MUSCLE_HU[1]:.0f} HU): not a body CT slice in HU"
        )


def border_fraction(mask: np.ndarray) -> float:
    """Fraction of the outer border pixels of an (H, W) mask that are set."""
    border = np.concatenate([mask[0, :], mask[-1, :], mask[1:-1, 0], mask[1:-1, -1]])
    return float(border.mean())


def check_body_inside(ct: CTSlice, dataset: Dataset | None) -> None:
    """The body must not touch the image border: a cut-off body gives too-small areas."""
    fraction = border_fraction(body_mask(ct.hu))
    if fraction > MAX_BORDER_FRACTION:
        raise IngestError(
            f"{_what(ct)}: the body touches the image border ({100 * fraction:.0f}% of the border "
            "pixels): the field of view cuts part of the body off, so areas would be too small"
        )


DEFAULT_CHECKS: tuple[SliceCheck, ...] = (
    check_modality,
    check_image_type,
    check_rescale,
    check_bit_depth,
    check_matrix_size,
    check_pixel_spacing,
    check_position_tags,
    check_axial,
    check_hu_range,
    check_not_label_map,
    check_has_tissue,
    check_body_inside,
)


def check_slice(
    ct: CTSlice, dataset: Dataset | None = None, checks: Sequence[SliceCheck] = DEFAULT_CHECKS
) -> None:
    """Run the quality gate; raise :class:`IngestError` with the first reason to reject.

    Args:
        ct: the slice as ingested.
        dataset: its DICOM dataset; defaults to ``ct.dicom.dataset`` (None for NIfTI).
        checks: the checks to run, all of ``DEFAULT_CHECKS`` by default.
    """
    if dataset is None and ct.dicom is not None:
        dataset = ct.dicom.dataset
    for check in checks:
        check(ct, dataset)
