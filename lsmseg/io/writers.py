"""What a segmentation run writes: NIfTI mask, overlay PNG, DICOM SEG and the results table.

Every file is written atomically (:func:`atomic_write`): a half-written file never replaces a good
one, so an interrupted run can be resumed and a viewer never opens a truncated mask. Masks are
written with the geometry of their source so they overlay it in 3D Slicer, ITK-SNAP and OHIF,
where a user can correct them by hand.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from lsmseg.io.atomic import atomic_write
from lsmseg.io.ctslice import CTSlice
from lsmseg.keys import Tissue
from lsmseg.readout.cutoffs import CUTOFF_SETS, CutoffSet

PathLike = str | os.PathLike[str]

# Read once at import: os.umask can only be read by setting it.

# results.csv column order (DESIGN.md "Command line"); cut-off columns go between HEAD and TAIL,
# any further keys after TAIL.
RESULT_COLUMNS_HEAD: tuple[str, ...] = (
    "case_id",
    "status",
    "error",
    "source",
    "pixel_spacing_mm",
    "muscle_area_cm2",
    "muscle_mean_hu",
    "muscle_sd_hu",
    "imat_area_cm2",
    "sat_area_cm2",
    "vat_area_cm2",
    "vat_hu_range",
    "height_m",
    "height_source",
    "weight_kg",
    "sex",
    "bmi",
    "smi_cm2_m2",
)
RESULT_COLUMNS_TAIL: tuple[str, ...] = ("runtime_s", "model")

# Display colours (RGB 0..1), the Slice-O-Matic convention: muscle red, IMAT green, VAT yellow,
# SAT cyan.
TISSUE_COLOURS: dict[str, tuple[float, float, float]] = {
    "muscle": (0.90, 0.10, 0.10),
    "imat": (0.10, 0.80, 0.10),
    "vat": (1.00, 0.85, 0.00),
    "sat": (0.00, 0.80, 0.90),
}
OVERLAY_HU_WINDOW = (-250.0, 250.0)  # soft-tissue window, HU


def _check_mask(mask: np.ndarray, ct: CTSlice) -> np.ndarray:
    """An (H, W) uint8 label mask on the grid of ``ct.hu``."""
    mask = np.asarray(mask)
    if mask.shape != ct.hu.shape:
        raise ValueError(
            f"case {ct.case_id}: mask shape {mask.shape} does not match the CT slice {ct.hu.shape}"
        )
    if mask.dtype != np.uint8:
        if mask.dtype != bool and not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(f"case {ct.case_id}: mask must hold integer labels, got dtype {mask.dtype}")
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise ValueError(f"case {ct.case_id}: mask labels must be in 0..255")
        mask = mask.astype(np.uint8)
    return mask


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
    data = _check_mask(mask, ct)[:, :, np.newaxis]  # (H, W) -> (H, W, 1): row, column, slice
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


def _format_value(value: Any, fmt: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    try:
        return f"{float(value):{fmt}}{unit}"
    except (TypeError, ValueError):
        return str(value)


def write_overlay_png(
    ct: CTSlice,
    mask: np.ndarray,
    path: PathLike,
    measurements: Mapping[str, Any] | None = None,
    *,
    imat: np.ndarray | None = None,
    hu_window: tuple[float, float] = OVERLAY_HU_WINDOW,
    max_side_px: int = 640,
) -> Path:
    """Write a quality-control picture: windowed CT with the tissues in colour and the key numbers.

    The CT is shown in a soft-tissue window (-250..250 HU) with semi-transparent SAT, VAT and
    muscle (and IMAT where ``imat`` is given, e.g. ``tissue_pixels(...).imat``), a legend, and a
    text box with muscle area (cm^2), SMI (cm^2/m^2), muscle mean HU, IMAT, SAT and VAT (cm^2)
    taken from ``measurements`` (a results row; missing values read "n/a"). Pixels are drawn
    with their physical aspect ratio; the longer side is ``max_side_px`` pixels. Rendered with
    matplotlib's Agg canvas (no display, no pyplot state) and saved as an RGB PNG.

    Args:
        ct: the slice; ``ct.hu`` is (H, W) HU in radiological display orientation.
        mask: (H, W) Tissue labels on the same grid.
        path: output ``.png`` file.
        measurements: results-row keys such as muscle_area_cm2, smi_cm2_m2, muscle_mean_hu,
            imat_area_cm2, sat_area_cm2, vat_area_cm2.
        imat: optional (H, W) boolean IMAT pixels, drawn over the muscle colour.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from PIL import Image

    labels = _check_mask(mask, ct)
    height_px, width_px = labels.shape
    layers = {
        "sat": labels == Tissue.SAT,
        "vat": labels == Tissue.VAT,
        "muscle": labels == Tissue.MUSCLE,
    }
    if imat is not None:
        imat = np.asarray(imat, dtype=bool)
        if imat.shape != labels.shape:
            raise ValueError(f"IMAT mask shape {imat.shape} does not match the CT slice {labels.shape}")
        layers["imat"] = imat

    overlay = np.zeros((height_px, width_px, 4), dtype=np.float32)  # RGBA
    for name, pixels in layers.items():
        overlay[pixels, :3] = TISSUE_COLOURS[name]
        overlay[pixels, 3] = 0.45

    row_mm, col_mm = (float(s) for s in ct.spacing_mm)
    extent_h, extent_w = height_px * row_mm, width_px * col_mm
    scale = max_side_px / max(extent_h, extent_w)
    fig = Figure(figsize=(extent_w * scale / 100, extent_h * scale / 100), dpi=100, facecolor="black")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    aspect = row_mm / col_mm
    ax.imshow(
        ct.hu, cmap="gray", vmin=hu_window[0], vmax=hu_window[1], aspect=aspect, interpolation="nearest"
    )
    ax.imshow(overlay, aspect=aspect, interpolation="nearest")

    names = {"muscle": "Muscle", "imat": "IMAT", "sat": "SAT", "vat": "VAT"}
    handles = [Patch(color=TISSUE_COLOURS[k], alpha=0.8, label=names[k]) for k in names if k in layers]
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.6)

    m = dict(measurements or {})
    lines = [
        str(m.get("case_id", ct.case_id)),
        f"Muscle {_format_value(m.get('muscle_area_cm2'), '.1f', ' cm²')}",
        f"SMI {_format_value(m.get('smi_cm2_m2'), '.1f', ' cm²/m²')}",
        f"Muscle HU {_format_value(m.get('muscle_mean_hu'), '.1f')}",
        f"IMAT {_format_value(m.get('imat_area_cm2'), '.1f', ' cm²')}",
        f"SAT {_format_value(m.get('sat_area_cm2'), '.1f', ' cm²')}",
        f"VAT {_format_value(m.get('vat_area_cm2'), '.1f', ' cm²')}",
    ]
    if m.get("vat_hu_range"):
        lines.append(f"VAT HU {m['vat_hu_range']}")
    ax.text(
        0.02,
        0.02,
        "\n".join(lines),
        transform=ax.transAxes,
        fontsize=8,
        color="white",
        va="bottom",
        ha="left",
        family="monospace",
        bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"},
    )

    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]  # drop alpha: smaller file
    with atomic_write(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", optimize=True)
    return Path(path)


def _segment_codes() -> dict[Tissue, dict[str, Any]]:
    """Coded concepts of the segments (SNOMED CT, as in pydicom's DICOM code dictionary).

    Category "Tissue" (SCT 85756007, CID 7150) for the two fat compartments: type "Fat"
    (SCT 55603005, CID 7166 Common Tissue Segmentation Type) qualified by the anatomic region
    "Subcutaneous tissue" (SCT 71966008) or "Abdominal cavity structure" (SCT 52731004).
    Muscle: category "Anatomical Structure" (SCT 91723000), type "Skeletal muscle"
    (SCT 127954009), the code TotalSegmentator also uses for skeletal_muscle.
    """
    from pydicom.sr.codedict import codes

    return {
        Tissue.SAT: {
            "label": "Subcutaneous adipose tissue",
            "category": codes.SCT.Tissue,
            "type": codes.SCT.AdiposeTissue,
            "regions": [codes.SCT.SubcutaneousTissue],
            "colour": "sat",
        },
        Tissue.VAT: {
            "label": "Visceral adipose tissue",
            "category": codes.SCT.Tissue,
            "type": codes.SCT.AdiposeTissue,
            "regions": [codes.SCT.AbdominalCavityStructure],
            "colour": "vat",
        },
        Tissue.MUSCLE: {
            "label": "Skeletal muscle",
            "category": codes.SCT.AnatomicalStructure,
            "type": codes.SCT.SkeletalMuscle,
            "regions": None,
            "colour": "muscle",
        },
    }


# Type 2 attributes (patient and study modules) that highdicom copies from the source image
# without a fallback.
_SEG_TYPE2_FROM_SOURCE = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)


def write_dicom_seg(
    mask: np.ndarray,
    ct: CTSlice,
    path: PathLike,
    *,
    algorithm_name: str,
    algorithm_version: str,
    software_version: str,
    series_number: int | None = None,
    manufacturer: str = "lsmseg",
) -> Path:
    """Write the mask as a binary DICOM Segmentation that references its source image.

    One segment per tissue present (SAT, VAT, skeletal muscle; codes in :func:`_segment_codes`),
    algorithm type AUTOMATIC with the given algorithm identification. The mask is put back on
    the stored pixel grid of the source with ``ct.to_source_grid`` so the SEG frame lines up
    with the referenced SOP instance (same Rows / Columns, plane position and orientation taken
    from the source). Built with highdicom (``hd.seg.Segmentation``).

    Args:
        mask: (H, W) Tissue labels on the normalised grid of ``ct``.
        ct: the slice; ``ct.dicom.dataset`` is the source image (pixel data not needed).
        path: output file (``seg.dcm``).
        algorithm_name / algorithm_version: the model (e.g. bundle name and weights version).
        software_version: the lsmseg version.
        series_number: SEG series number (default: source SeriesNumber + 1000).
        manufacturer: Manufacturer of the SEG instance.

    Raises:
        ValueError: no DICOM source, the mask does not fit the source grid, or it is empty.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if ct.dicom is None or ct.dicom.dataset is None:
        raise ValueError(
            f"case {ct.case_id}: a DICOM SEG needs a DICOM source image, and {ct.source} is not DICOM "
            "(use the NIfTI mask instead)"
        )
    source = ct.dicom.dataset
    missing = [k for k in _SEG_TYPE2_FROM_SOURCE if k not in source]
    if missing:  # anonymised images often lack them; Type 2 allows them empty
        source = source.copy()
        for keyword in missing:
            setattr(source, keyword, "")
    labels = ct.to_source_grid(_check_mask(mask, ct))
    rows, columns = int(source.Rows), int(source.Columns)
    if labels.shape != (rows, columns):
        raise ValueError(
            f"case {ct.case_id}: mask on the source grid is {labels.shape} but the source image is "
            f"{rows}x{columns}"
        )
    if int(source.get("NumberOfFrames", 1) or 1) > 1:
        raise ValueError(f"case {ct.case_id}: multi-frame source images are not supported for DICOM SEG")

    specs = _segment_codes()
    present = [t for t in (Tissue.SAT, Tissue.VAT, Tissue.MUSCLE) if np.any(labels == t)]
    if not present:
        raise ValueError(f"case {ct.case_id}: the mask has no SAT, VAT or muscle pixel: no DICOM SEG written")

    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, family=codes.cid7162.ArtificialIntelligence, version=algorithm_version
    )
    descriptions = []
    for number, tissue in enumerate(present, start=1):
        spec = specs[tissue]
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=spec["label"],
                segmented_property_category=spec["category"],
                segmented_property_type=spec["type"],
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_uid=hd.UID(),
                tracking_id=spec["label"],
                anatomic_regions=spec["regions"],
                display_color=hd.color.CIELabColor.from_rgb(
                    *(round(255 * c) for c in TISSUE_COLOURS[spec["colour"]])
                ),
            )
        )
    # (frames, rows, columns, segments): one frame, segment s is the pixels of present[s]
    pixel_array = np.stack([labels == t for t in present], axis=-1)[np.newaxis]
    if series_number is None:
        series_number = int(source.get("SeriesNumber", 0) or 0) + 1000
    seg = hd.seg.Segmentation(
        source_images=[source],
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=manufacturer,
        manufacturer_model_name=algorithm_name,
        software_versions=software_version,
        device_serial_number="0",
        content_label="L3_BODY_COMP",
        content_description="L3 body composition (SAT, VAT, skeletal muscle)",
        series_description=f"{algorithm_name} L3 body composition",
    )
    with atomic_write(path) as tmp:
        seg.save_as(tmp)
    return Path(path)


def _json_safe(value: Any) -> Any:
    """Plain JSON types: NaN/inf -> null, numpy -> Python, tuples -> lists, paths -> str."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Enum):
        return _json_safe(value.value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _csv_cell(value: Any) -> str:
    """One CSV cell: missing (None / NaN) is empty, floats keep full precision."""
    value = _json_safe(value)
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)


def result_columns(
    rows: Sequence[Mapping[str, Any]], cutoff_sets: Sequence[CutoffSet] | None = None
) -> list[str]:
    """results.csv columns: the fixed head, the cut-off columns, runtime_s and model, then extras.

    The cut-off columns are those of ``cutoff_sets`` (always present, even when every case
    failed) or, when None, the registered sets' columns that occur in ``rows``. Keys no column
    names are appended after ``model`` in first-seen order, so nothing is dropped.
    """
    if cutoff_sets is not None:
        cutoff_cols = [c for s in cutoff_sets for c in s.columns]
    else:
        seen = {key for row in rows for key in row}
        cutoff_cols = [c for s in CUTOFF_SETS.values() for c in s.columns if c in seen]
    columns = [*RESULT_COLUMNS_HEAD, *cutoff_cols, *RESULT_COLUMNS_TAIL]
    known = set(columns)
    for row in rows:
        for key in row:
            if key not in known:
                columns.append(key)
                known.add(key)
    return columns


def write_results(
    rows: Sequence[Mapping[str, Any]],
    csv_path: PathLike,
    json_path: PathLike,
    provenance: Mapping[str, Any],
    *,
    cutoff_sets: Sequence[CutoffSet] | None = None,
) -> tuple[Path, Path]:
    """Write results.csv (one row per case) and results.json, each atomically.

    results.csv columns are :func:`result_columns` (stable order: case_id, status, error,
    source, pixel_spacing_mm, areas and HU statistics, vat_hu_range, height_m, height_source,
    weight_kg, sex, bmi, smi_cm2_m2, one sarcopenia_<set> column per cut-off set plus
    myosteatosis_<set> / low_*_<set> where the set defines them, runtime_s, model, extras).
    Missing values (None, NaN) are empty cells. results.json is
    ``{"provenance": provenance, "cases": rows}`` with NaN written as null.

    Args:
        rows: one dict per case (e.g. ``Readout.to_row()`` plus case_id, status, ...).
        csv_path / json_path: output files.
        provenance: how the numbers were made (versions, model, HU ranges, cut-off sets, ...).
        cutoff_sets: the sets the run evaluated, so their columns exist even with no success.
    """
    columns = result_columns(rows, cutoff_sets)
    document = {"provenance": _json_safe(provenance), "cases": _json_safe(list(rows))}
    json_text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    # Both files are complete before either replaces its old version, so a failure leaves the
    # previous pair intact and consistent.
    with atomic_write(csv_path) as tmp_csv, atomic_write(json_path) as tmp_json:
        with open(tmp_csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_csv_cell(row.get(col)) for col in columns])
        tmp_json.write_text(json_text, encoding="utf-8")
    return Path(csv_path), Path(json_path)
