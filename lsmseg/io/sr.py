"""DICOM Structured Report of a case's measurements (TID 1500 Measurement Report, highdicom).

What PACS stores instead of a CSV: one Comprehensive 3D SR per case that references the source
CT image and the case's SEG. Each measured compartment is a planar ROI group (TID 1410) whose
region is its SEG segment, with its area in cm2 (UCUM ``cm2``), and for skeletal muscle the mean
and standard deviation of its attenuation (UCUM ``[hnsf'U]``). One image-level group (TID 1501)
carries the skeletal muscle index (UCUM ``cm2/m2``) and each cut-off verdict as a coded
qualitative evaluation (SNOMED CT Yes / No). Codes that no standard terminology has (SMI, the
verdict of one published cut-off set) use the private coding scheme ``99LSMSEG``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lsmseg.io.atomic import atomic_write
from lsmseg.io.ctslice import CTSlice
from lsmseg.io.labels import LABELS, Label, code
from lsmseg.io.seg import source_dataset

PathLike = str | os.PathLike[str]

PRIVATE_SCHEME = "99LSMSEG"
SMI_CODE = ("SMI", PRIVATE_SCHEME, "Skeletal muscle index")
ATTENUATION_CODE = ("112031", "DCM", "Attenuation Coefficient")
READOUT_ID = "L3 sarcopenia readout"


def verdict_code(column: str) -> tuple[str, str, str]:
    """Coded name of a verdict column, e.g. ``sarcopenia_prado2008`` -> (that, 99LSMSEG, text)."""
    kind, _, cutoff_set = column.partition("_")
    return column, PRIVATE_SCHEME, f"{kind.capitalize()} by {cutoff_set} cut-offs"


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _roi_measurements(label: Label, row: Mapping[str, Any]) -> list[Any]:
    """Area (cm2) of a compartment; muscle adds mean and SD attenuation (HU)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    area = _number(row.get(f"{label.key}_area_cm2"))
    if area is None:
        return []
    out = [hd.sr.Measurement(name=codes.SCT.Area, value=area, unit=codes.UCUM.SquareCentimeter)]
    if label.key == "muscle":
        for key, derivation in (
            ("muscle_mean_hu", codes.SCT.Mean),
            ("muscle_sd_hu", codes.SCT.StandardDeviation),
        ):
            value = _number(row.get(key))
            if value is not None:
                out.append(
                    hd.sr.Measurement(
                        name=code(ATTENUATION_CODE),
                        value=value,
                        unit=codes.UCUM.HounsfieldUnit,
                        derivation=derivation,
                    )
                )
    return out


def _roi_groups(row: Mapping[str, Any], seg: Any, source: Any) -> list[Any]:
    """One TID 1410 group per measured compartment, its region the SEG segment of the same name."""
    import highdicom as hd

    numbers = (
        {str(s.SegmentLabel): int(s.SegmentNumber) for s in seg.SegmentSequence} if seg is not None else {}
    )
    groups: list[Any] = []
    for label in LABELS:
        measurements = _roi_measurements(label, row)
        if not measurements:
            continue
        common = {
            "tracking_identifier": hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label.name),
            "finding_type": code(label.type),
            "finding_category": code(label.category),
            "finding_sites": [hd.sr.FindingSite(code(label.region))] if label.region else None,
            "measurements": measurements,
        }
        if label.name in numbers:
            segment = hd.sr.ReferencedSegmentationFrame.from_segmentation(
                seg, segment_number=numbers[label.name]
            )
            groups.append(
                hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_segment=segment, **common)
            )
        else:  # no SEG (or an empty segment): the measurement refers to the image
            image = hd.sr.SourceImageForMeasurementGroup.from_source_image(source)
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(source_images=[image], **common))
    return groups


def _readout_group(row: Mapping[str, Any], source: Any) -> Any:
    """The image-level group: SMI and the cut-off verdicts (a verdict that is None is left out)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    measurements = []
    smi = _number(row.get("smi_cm2_m2"))
    if smi is not None:
        unit = hd.sr.CodedConcept("cm2/m2", "UCUM", "square centimeter per square meter")
        measurements.append(hd.sr.Measurement(name=code(SMI_CODE), value=smi, unit=unit))
    evaluations = [
        hd.sr.QualitativeEvaluation(
            name=code(verdict_code(key)), value=codes.SCT.Yes if value else codes.SCT.No
        )
        for key, value in row.items()
        if key.startswith(("sarcopenia_", "myosteatosis_")) and isinstance(value, bool)
    ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=READOUT_ID),
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
        measurements=measurements or None,
        qualitative_evaluations=evaluations or None,
    )


def write_dicom_sr(
    row: Mapping[str, Any],
    ct: CTSlice,
    path: PathLike,
    *,
    seg: Any = None,
    algorithm_name: str,
    algorithm_version: str,
    series_number: int | None = None,
    manufacturer: str = "lsmseg",
) -> Path:
    """Write a case's results row as a TID 1500 Measurement Report (Comprehensive 3D SR).

    Args:
        row: the case's results row (``<key>_area_cm2`` per label, ``muscle_mean_hu``,
            ``muscle_sd_hu``, ``smi_cm2_m2``, ``sarcopenia_*`` / ``myosteatosis_*`` verdicts).
        ct: the slice; its DICOM source is the referenced image.
        path: output file (``sr.dcm``).
        seg: the case's highdicom Segmentation (``write_dicom_seg``'s return); its segments
            become the ROIs of the area measurements. None: measurements refer to the image.
        algorithm_name / algorithm_version: the model (device observer of the report).
        series_number: SR series number (default: source SeriesNumber + 2000).

    Raises:
        ValueError: no DICOM source image.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    source = source_dataset(ct, "a DICOM SR")
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=algorithm_name, model_name=f"{algorithm_name} {algorithm_version}"
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[*_roi_groups(row, seg, source), _readout_group(row, source)],
    )
    if series_number is None:
        series_number = int(source.get("SeriesNumber", 0) or 0) + 2000
    sr = hd.sr.Comprehensive3DSR(
        evidence=[source] + ([seg] if seg is not None else []),
        content=report,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=manufacturer,
        series_description=f"{algorithm_name} L3 body composition report",
    )
    with atomic_write(path) as tmp:
        sr.save_as(tmp)
    return Path(path)
