"""DICOM SR (TID 1500) of a results row: read back with highdicom and pydicom."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest

from lsmseg.io.sr import write_dicom_sr
from lsmseg.io.writers import write_dicom_seg
from tests.helpers.writers import ct_small, measured_labels

ROW: dict[str, Any] = {
    "muscle_area_cm2": 142.37,
    "muscle_mean_hu": 38.4,
    "muscle_sd_hu": 11.2,
    "imat_area_cm2": 6.05,
    "sat_area_cm2": 180.5,
    "vat_area_cm2": 95.25,
    "smi_cm2_m2": 49.26,
    "sarcopenia_prado2008": False,
    "sarcopenia_martin2013": True,
    "sarcopenia_derstine2018": None,  # not judged: left out of the report
}
YES, NO = "373066001", "373067005"  # SNOMED CT Yes / No
AREA, ATTENUATION, MEAN, SD = "42798000", "112031", "373098007", "386136009"


def write_pair(folder: Path, with_seg: bool = True) -> tuple[Path, Any, Any]:
    ct = ct_small()
    seg = None
    if with_seg:
        seg = write_dicom_seg(
            measured_labels(),
            ct,
            folder / "seg.dcm",
            algorithm_name="lsm_sss",
            algorithm_version="1",
            software_version="0.1",
        )
    path = write_dicom_sr(
        ROW, ct, folder / "sr.dcm", seg=seg, algorithm_name="lsm_sss", algorithm_version="1"
    )
    return path, ct, seg


def roi_measurements(sr: Any) -> dict[tuple[str, str, str | None], tuple[float, str]]:
    """{(finding, measurement code, derivation code): (value, unit code)} of the ROI groups."""
    found = {}
    for g in sr.content.get_planar_roi_measurement_groups():
        for m in g.get_measurements():
            key = (g.tracking_identifier, m.name.value, m.derivation.value if m.derivation else None)
            found[key] = (m.value, m.unit.value)
    return found


def test_sr_header_references_image_and_seg(tmp_path: Path) -> None:
    path, ct, seg = write_pair(tmp_path)
    raw = pydicom.dcmread(path)
    assert raw.Modality == "SR" and raw.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D
    assert raw.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert raw.StudyInstanceUID == ct.dicom.study_uid and raw.PatientID == ct.dicom.dataset.PatientID
    evidence = {
        i.ReferencedSOPInstanceUID
        for s in raw.CurrentRequestedProcedureEvidenceSequence
        for r in s.ReferencedSeriesSequence
        for i in r.ReferencedSOPSequence
    }
    assert evidence == {seg.SOPInstanceUID, ct.dicom.sop_instance_uid}


def test_sr_codes_values_units(tmp_path: Path) -> None:
    import highdicom as hd

    path, _, seg = write_pair(tmp_path)
    sr = hd.sr.srread(path)
    groups = sr.content.get_planar_roi_measurement_groups()
    assert {g.tracking_identifier for g in groups} == {
        "Skeletal muscle",
        "Intermuscular adipose tissue",
        "Subcutaneous adipose tissue",
        "Visceral adipose tissue",
    }
    for g in groups:  # each area's region is its SEG segment
        assert g.referenced_segmentation_frame.referenced_sop_instance_uid == seg.SOPInstanceUID
    found = roi_measurements(sr)
    assert found[("Skeletal muscle", AREA, None)] == (pytest.approx(142.37), "cm2")
    assert found[("Intermuscular adipose tissue", AREA, None)] == (pytest.approx(6.05), "cm2")
    assert found[("Subcutaneous adipose tissue", AREA, None)] == (pytest.approx(180.5), "cm2")
    assert found[("Visceral adipose tissue", AREA, None)] == (pytest.approx(95.25), "cm2")
    assert found[("Skeletal muscle", ATTENUATION, MEAN)] == (pytest.approx(38.4), "[hnsf'U]")
    assert found[("Skeletal muscle", ATTENUATION, SD)] == (pytest.approx(11.2), "[hnsf'U]")
    (image_group,) = sr.content.get_image_measurement_groups()
    assert image_group.tracking_identifier == "L3 sarcopenia readout"
    (smi,) = image_group.get_measurements()
    assert (smi.name.value, smi.name.scheme_designator, smi.unit.value) == ("SMI", "99LSMSEG", "cm2/m2")
    assert smi.value == pytest.approx(49.26)
    verdicts = {q.name.value: q.value.value for q in image_group.get_qualitative_evaluations()}
    assert verdicts == {"sarcopenia_prado2008": NO, "sarcopenia_martin2013": YES}


def test_sr_without_seg_refers_to_the_image(tmp_path: Path) -> None:
    import highdicom as hd

    path, ct, _ = write_pair(tmp_path, with_seg=False)
    sr = hd.sr.srread(path)
    assert sr.content.get_planar_roi_measurement_groups() == []
    groups = {g.tracking_identifier: g for g in sr.content.get_image_measurement_groups()}
    muscle = groups["Skeletal muscle"]
    (source,) = muscle.source_images
    assert source.referenced_sop_instance_uid == ct.dicom.sop_instance_uid
    assert muscle.get_measurements()[0].value == pytest.approx(142.37)


def test_missing_values_are_left_out(tmp_path: Path) -> None:
    import highdicom as hd

    ct = ct_small()
    row = {"muscle_area_cm2": 100.0, "muscle_mean_hu": float("nan"), "smi_cm2_m2": None}
    sr = hd.sr.srread(write_dicom_sr(row, ct, tmp_path / "sr.dcm", algorithm_name="x", algorithm_version="1"))
    groups = {g.tracking_identifier: g for g in sr.content.get_image_measurement_groups()}
    assert set(groups) == {"Skeletal muscle", "L3 sarcopenia readout"}
    assert [m.name.value for m in groups["Skeletal muscle"].get_measurements()] == [AREA]
    assert groups["L3 sarcopenia readout"].get_measurements() == []


def test_sr_needs_a_dicom_source(tmp_path: Path) -> None:
    ct = ct_small()
    ct.dicom = None
    with pytest.raises(ValueError, match="DICOM"):
        write_dicom_sr(ROW, ct, tmp_path / "sr.dcm", algorithm_name="x", algorithm_version="1")
    assert not (tmp_path / "sr.dcm").exists()
