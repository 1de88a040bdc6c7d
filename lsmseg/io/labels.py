"""The label table: one place for the value, name, colour and coded concepts of every label.

The overlay PNG, the DICOM SEG, the DICOM SR and ``labels.json`` (written beside each case's
NIfTI masks) all read this table, so a compartment has the same colour and the same SNOMED CT
codes wherever a reader meets it. Values are those of :class:`lsmseg.keys.Measured` (the measured
mask); the raw model mask (``mask_model.nii.gz``) uses the same values without IMAT.

Codes are SNOMED CT as in pydicom's DICOM code dictionary: category "Tissue" (SCT 85756007) with
type "Fat" (SCT 55603005, CID 7166) for the fat compartments, qualified by the anatomic region
(subcutaneous tissue SCT 71966008, abdominal cavity SCT 52731004, skeletal muscle SCT 127954009
for the fat between muscle fibres); muscle is category "Anatomical Structure" (SCT 91723000),
type "Skeletal muscle" (SCT 127954009), the code TotalSegmentator also uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsmseg.io.atomic import write_json_atomic
from lsmseg.keys import ADIPOSE_HU, MUSCLE_HU, Measured

PathLike = str | os.PathLike[str]
CodeTuple = tuple[str, str, str]  # (value, scheme designator, meaning)

LABELS_FILE = "labels.json"

_TISSUE: CodeTuple = ("85756007", "SCT", "Tissue")
_ANATOMY: CodeTuple = ("91723000", "SCT", "Anatomical Structure")
_FAT: CodeTuple = ("55603005", "SCT", "Fat")
_SKELETAL_MUSCLE: CodeTuple = ("127954009", "SCT", "Skeletal muscle")


@dataclass(frozen=True)
class Label:
    """One compartment of the measured mask.

    Attributes:
        value: voxel value (:class:`Measured`).
        key: short name used in results columns (``<key>_area_cm2``) and legends.
        name: full name (SEG segment label, SR finding, legend of ``labels.json``).
        description: what the pixels are, with the HU range of the Alberta protocol.
        rgb: display colour, 0..1 (Slice-O-Matic convention: muscle red, IMAT green, VAT
            yellow, SAT cyan).
        category / type / region: coded concepts (value, scheme, meaning); region may be None.
    """

    value: int
    key: str
    name: str
    description: str
    rgb: tuple[float, float, float]
    category: CodeTuple
    type: CodeTuple
    region: CodeTuple | None


def _hu(hu_range: tuple[float, float]) -> str:
    return f"{hu_range[0]:g}..{hu_range[1]:g} HU"


LABELS: tuple[Label, ...] = (
    Label(
        Measured.MUSCLE, "muscle", "Skeletal muscle",
        f"skeletal muscle compartment with {_hu(MUSCLE_HU)}",
        (0.90, 0.10, 0.10), _ANATOMY, _SKELETAL_MUSCLE, None,
    ),
    Label(
        Measured.IMAT, "imat", "Intermuscular adipose tissue",
        f"fat inside the muscle compartment, {_hu(ADIPOSE_HU)}",
        (0.10, 0.80, 0.10), _TISSUE, _FAT, _SKELETAL_MUSCLE,
    ),
    Label(
        Measured.SAT, "sat", "Subcutaneous adipose tissue",
        f"subcutaneous compartment with {_hu(ADIPOSE_HU)}",
        (0.00, 0.80, 0.90), _TISSUE, _FAT, ("71966008", "SCT", "Subcutaneous tissue"),
    ),
    Label(
        Measured.VAT, "vat", "Visceral adipose tissue",
        "visceral compartment within the run's VAT HU range",
        (1.00, 0.85, 0.00), _TISSUE, _FAT, ("52731004", "SCT", "Abdominal cavity structure"),
    ),
)  # fmt: skip
LABEL_BY_KEY: dict[str, Label] = {label.key: label for label in LABELS}
LABEL_BY_VALUE: dict[int, Label] = {int(label.value): label for label in LABELS}


def rgb255(label: Label) -> tuple[int, int, int]:
    """The display colour as 0..255 integers (SEG CIELab colour, ITK-SNAP label files)."""
    r, g, b = (round(255 * c) for c in label.rgb)
    return r, g, b


def code(concept: CodeTuple) -> Any:
    """A pydicom ``Code`` of a (value, scheme, meaning) tuple."""
    from pydicom.sr.coding import Code

    return Code(*concept)


def describe(label: Label, refined: bool, vat_hu: tuple[float, float] | None = None) -> str:
    """Which pixels a label of the measured mask holds (``labels.json``, SEG SegmentDescription)."""
    if not refined:
        return f"{label.name}: model region, no HU range applied"
    if label.value == Measured.VAT and vat_hu is not None:
        return f"visceral compartment with {_hu(vat_hu)}"
    return label.description


def label_table(refined: bool, vat_hu: tuple[float, float] | None) -> dict[str, Any]:
    """What ``labels.json`` says about a case's two masks (JSON-ready).

    Args:
        refined: whether ``mask.nii.gz`` holds the HU-refined compartments (False: ``--no-refine``,
            the measured mask is the raw model mask and has no IMAT).
        vat_hu: the VAT HU range applied (None when not refined).
    """
    measured = [label for label in LABELS if refined or label.value != Measured.IMAT]

    def entry(label: Label, description: str) -> dict[str, Any]:
        return {
            "value": int(label.value),
            "key": label.key,
            "name": label.name,
            "description": description,
            "rgb": list(rgb255(label)),
            "category": list(label.category),
            "type": list(label.type),
            "region": list(label.region) if label.region else None,
        }

    return {
        "mask.nii.gz": {
            "what": "measured compartments: the pixels whose areas are reported"
            + (" (HU-refined, Alberta protocol)" if refined else " (raw model regions: --no-refine)"),
            "refined": refined,
            "labels": [entry(lb, describe(lb, refined, vat_hu)) for lb in measured],
        },
        "mask_model.nii.gz": {
            "what": "raw model regions before the HU ranges (not what was measured when refined)",
            "labels": [entry(lb, describe(lb, False)) for lb in LABELS if lb.value != Measured.IMAT],
        },
        "array_order": "NIfTI voxel (i, j, k): the source image's own voxel order (NIfTI input) or "
        "(column, row, 0) of the DICOM pixel data (DICOM input), as the phantom masks",
    }


def write_label_table(path: PathLike, refined: bool, vat_hu: tuple[float, float] | None) -> Path:
    """Write :func:`label_table` as JSON (atomically)."""
    write_json_atomic(path, label_table(refined, vat_hu))
    return Path(path)
