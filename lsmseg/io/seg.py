"""DICOM Segmentation (SEG) of a case's mask, referencing its source image (highdicom)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lsmseg.io.atomic import atomic_write
from lsmseg.io.ctslice import CTSlice
from lsmseg.io.overlay import TISSUE_COLOURS
from lsmseg.keys import Tissue

PathLike = str | os.PathLike[str]


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
    with the referenced SOP instance (Rows / Columns, plane position and orientation of the
    source). Built with highdicom.

    Args:
        mask: (H, W) Tissue labels on the normalised grid of ``ct``.
        ct: the slice; ``ct.dicom.dataset`` is the source image (pixel data not needed).
        path: output file (``seg.dcm``).
        algorithm_name / algorithm_version / software_version: the model and the lsmseg version.
        series_number: SEG series number (default: source SeriesNumber + 1000).
        manufacturer: Manufacturer of the SEG instance.

    Raises:
        ValueError: no DICOM source, the mask does not fit the source grid, or it is empty.
    """
    import highdicom as hd

    source, labels = _source_and_labels(mask, ct)
    present = [t for t in (Tissue.SAT, Tissue.VAT, Tissue.MUSCLE) if np.any(labels == t)]
    if not present:
        raise ValueError(f"case {ct.case_id}: the mask has no SAT, VAT or muscle pixel: no DICOM SEG written")
    # (frames, rows, columns, segments): one frame, segment s is the pixels of present[s]
    pixel_array = np.stack([labels == t for t in present], axis=-1)[np.newaxis]
    if series_number is None:
        series_number = int(source.get("SeriesNumber", 0) or 0) + 1000
    seg = hd.seg.Segmentation(
        source_images=[source],
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_descriptions(present, algorithm_name, algorithm_version),
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


def _source_and_labels(mask: np.ndarray, ct: CTSlice) -> tuple[Any, np.ndarray]:
    """The source dataset (empty Type 2 attributes filled in) and the mask on its stored grid."""
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
    labels = ct.to_source_grid(ct.label_mask(mask))
    rows, columns = int(source.Rows), int(source.Columns)
    if labels.shape != (rows, columns):
        raise ValueError(
            f"case {ct.case_id}: mask on the source grid is {labels.shape} but the source image is "
            f"{rows}x{columns}"
        )
    if int(source.get("NumberOfFrames", 1) or 1) > 1:
        raise ValueError(f"case {ct.case_id}: multi-frame source images are not supported for DICOM SEG")
    return source, labels


def _descriptions(present: list[Tissue], algorithm_name: str, algorithm_version: str) -> list[Any]:
    """One highdicom SegmentDescription per tissue present, numbered from 1, algorithm AUTOMATIC."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, family=codes.cid7162.ArtificialIntelligence, version=algorithm_version
    )
    specs = _segment_codes()
    descriptions = []
    for number, tissue in enumerate(present, start=1):
        spec = specs[tissue]
        colour = (round(255 * c) for c in TISSUE_COLOURS[spec["colour"]])
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
                display_color=hd.color.CIELabColor.from_rgb(*colour),
            )
        )
    return descriptions
