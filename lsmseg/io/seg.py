"""DICOM Segmentation (SEG) of a case's measured mask, referencing its source image (highdicom).

Segments, their labels, descriptions, codes and colours come from the label table
(:mod:`lsmseg.io.labels`), so the SEG matches the overlay and ``labels.json``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lsmseg.io.atomic import atomic_write
from lsmseg.io.ctslice import CTSlice
from lsmseg.io.labels import LABELS, Label, code, describe, rgb255

PathLike = str | os.PathLike[str]


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
    refined: bool = True,
    vat_hu: tuple[float, float] | None = None,
    algorithm_type: str = "AUTOMATIC",
) -> Any:
    """Write the mask as a binary DICOM Segmentation that references its source image.

    One segment per label present (skeletal muscle, IMAT, SAT, VAT; names, descriptions, codes
    and colours from :data:`lsmseg.io.labels.LABELS`), algorithm type AUTOMATIC with the given algorithm identification. The mask is put back on
    the stored pixel grid of the source with ``ct.to_source_grid`` so the SEG frame lines up
    with the referenced SOP instance (Rows / Columns, plane position and orientation of the
    source). Built with highdicom.

    Args:
        mask: (H, W) :class:`lsmseg.keys.Measured` labels on the normalised grid of ``ct``: the
            measured pixels, so each segment's pixel count x pixel area is the reported area.
        ct: the slice; ``ct.dicom.dataset`` is the source image (pixel data not needed).
        path: output file (``seg.dcm``).
        algorithm_name / algorithm_version / software_version: the model and the lsmseg version.
        series_number: SEG series number (default: source SeriesNumber + 1000).
        manufacturer: Manufacturer of the SEG instance.
        refined: whether ``mask`` holds the HU-refined compartments; vat_hu: the VAT HU range
            applied (both go into the segment descriptions).
        algorithm_type: "AUTOMATIC" (model output) or "SEMIAUTOMATIC" (a corrected mask).

    Returns:
        The highdicom Segmentation written (the DICOM SR references it).

    Raises:
        ValueError: no DICOM source, the mask does not fit the source grid, or it is empty.
    """
    source, labels = _source_and_labels(mask, ct)
    present = [label for label in LABELS if np.any(labels == label.value)]
    if not present:
        raise ValueError(
            f"case {ct.case_id}: the mask has no muscle, IMAT, SAT or VAT pixel: no DICOM SEG written"
        )
    # (frames, rows, columns, segments): one frame, segment s is the pixels of present[s]
    pixel_array = np.stack([labels == label.value for label in present], axis=-1)[np.newaxis]
    descriptions = _descriptions(
        present, (algorithm_name, algorithm_version, algorithm_type), refined, vat_hu
    )
    names = (algorithm_name, software_version, manufacturer)
    seg = _segmentation(source, pixel_array, descriptions, series_number, refined, names)
    with atomic_write(path) as tmp:
        seg.save_as(tmp)
    return seg


def _segmentation(
    source: Any,
    pixel_array: np.ndarray,
    descriptions: list[Any],
    series_number: int | None,
    refined: bool,
    names: tuple[str, str, str],
) -> Any:
    """The highdicom Segmentation (binary, one frame) of :func:`write_dicom_seg`; ``names`` =
    (algorithm name, software version, manufacturer)."""
    import highdicom as hd

    algorithm_name, software_version, manufacturer = names
    if series_number is None:
        series_number = int(source.get("SeriesNumber", 0) or 0) + 1000
    return hd.seg.Segmentation(
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
        content_description="L3 compartments after the Alberta HU ranges"
        if refined
        else "L3 raw model regions",
        series_description=f"{algorithm_name} L3 body composition",
    )


def source_dataset(ct: CTSlice, what: str = "a DICOM SEG") -> Any:
    """The source image dataset of ``ct`` with empty Type 2 patient/study attributes filled in
    (anonymised images often lack them; highdicom copies them into SEG and SR).

    Raises:
        ValueError: ``ct`` has no DICOM source (NIfTI input).
    """
    if ct.dicom is None or ct.dicom.dataset is None:
        raise ValueError(
            f"case {ct.case_id}: {what} needs a DICOM source image, and {ct.source} is not DICOM "
            "(use the NIfTI mask instead)"
        )
    source = ct.dicom.dataset
    missing = [k for k in _SEG_TYPE2_FROM_SOURCE if k not in source]
    if missing:
        source = source.copy()
        for keyword in missing:
            setattr(source, keyword, "")
    return source


def _source_and_labels(mask: np.ndarray, ct: CTSlice) -> tuple[Any, np.ndarray]:
    """The source dataset (empty Type 2 attributes filled in) and the mask on its stored grid."""
    source = source_dataset(ct)
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


def _descriptions(
    present: list[Label],
    algorithm: tuple[str, str, str],
    refined: bool,
    vat_hu: tuple[float, float] | None,
) -> list[Any]:
    """One highdicom SegmentDescription per label present, numbered from 1, ``algorithm`` =
    (name, version, type),
    with the label table's codes and colour and a SegmentDescription saying which pixels it holds."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    name, version, algorithm_type = algorithm
    identification = hd.AlgorithmIdentificationSequence(
        name=name, family=codes.cid7162.ArtificialIntelligence, version=version
    )
    descriptions = []
    for number, label in enumerate(present, start=1):
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label.name,
            segmented_property_category=code(label.category),
            segmented_property_type=code(label.type),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues(algorithm_type),
            algorithm_identification=identification,
            tracking_uid=hd.UID(),
            tracking_id=label.name,
            anatomic_regions=[code(label.region)] if label.region else None,
            display_color=hd.color.CIELabColor.from_rgb(*rgb255(label)),
        )
        description.SegmentDescription = describe(label, refined, vat_hu)[:64]  # LO: 64 characters
        descriptions.append(description)
    return descriptions
