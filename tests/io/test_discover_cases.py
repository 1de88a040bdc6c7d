"""Discovery of cases in a mixed folder, and loading them."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from lsmseg.io import CaseSource, IngestError, discover_cases, load_case
from lsmseg.io.discover import format_ranges
from tests.helpers.ct_dicom import make_ct_dataset, phantom_hu, write_ct


def _mixed_cohort(root: Path) -> None:
    write_ct(root / "p1" / "slice.dcm", patient_id="P1", series_number=2)
    write_ct(root / "p1" / "other_series.dcm", patient_id="P1", series_number=5)
    write_ct(root / "p2.dcm", patient_id="P2")
    good = write_ct(root / "p3" / "l3.dcm", patient_id="P3").read_bytes()
    (root / "p3" / "l3.dcm").write_bytes(good[: len(good) // 2])  # truncated in the pixel data
    (root / "p5").mkdir()
    (root / "p5" / "junk.dcm").write_bytes(b"\0" * 200)  # named like DICOM, but garbage
    series_uid = pydicom.uid.generate_uid()
    for k in range(5):
        write_ct(
            root / "p4" / "series" / f"{k:03d}", patient_id="P4", series_uid=series_uid, instance_number=k + 1
        )
    (root / "notes.txt").write_text("case list, not DICOM\n")
    nib.save(
        nib.Nifti1Image(phantom_hu().T.copy(), np.diag([-0.8, -0.7, 2.5, 1.0])), root / "nifti_case.nii.gz"
    )


def test_mixed_folder(tmp_path: Path) -> None:
    _mixed_cohort(tmp_path)
    cases = {c.case_id: c for c in discover_cases([tmp_path])}
    assert sorted(cases) == ["P1_s2", "P1_s5", "P2", "P3", "P4", "junk", "nifti_case"]
    assert cases["P3"].error is not None and "is truncated" in cases["P3"].error
    assert cases["junk"].error is not None
    assert cases["nifti_case"].kind == "nifti" and not cases["nifti_case"].needs_l3_slice
    series = cases["P4"]
    assert series.error is None and series.needs_l3_slice
    assert series.instance_numbers == [1, 2, 3, 4, 5] and series.n_slices == 5
    for case_id in ("P1_s2", "P1_s5", "P2"):
        assert cases[case_id].error is None and not cases[case_id].needs_l3_slice

    assert load_case(cases["P2"]).case_id == "P2"
    assert load_case(cases["nifti_case"]).hu.shape == phantom_hu().shape
    ct = load_case(series, l3_slice=4)
    assert ct.case_id == "P4" and ct.dicom is not None and ct.dicom.instance_number == 4
    with pytest.raises(IngestError, match=r"has 5 slices \(InstanceNumber 1-5\): name its L3 slice"):
        load_case(series)
    with pytest.raises(IngestError, match=r"InstanceNumber 8 is not in series .* \(available: 1-5\)"):
        load_case(series, l3_slice=8)
    with pytest.raises(IngestError, match="is truncated"):
        load_case(cases["P3"])


def test_single_files_and_missing_inputs(tmp_path: Path) -> None:
    path = write_ct(tmp_path / "a.dcm", patient_id="")
    cases = discover_cases([path, path, tmp_path / "nope.dcm"])
    assert [c.case_id for c in cases] == ["a", "nope"]
    assert cases[1].error is not None and "does not exist" in cases[1].error
    assert load_case(cases[0]).case_id == "a"


def test_repeated_instance_numbers_are_an_error(tmp_path: Path) -> None:
    uid = pydicom.uid.generate_uid()
    for name in ("a", "b", "c"):
        write_ct(tmp_path / name, patient_id="P9", series_uid=uid, instance_number=1 if name != "c" else 2)
    (case,) = discover_cases([tmp_path])
    assert case.error is not None and "repeats InstanceNumber 1" in case.error


def test_same_instance_copied_twice_is_one_slice(tmp_path: Path) -> None:
    ds = make_ct_dataset(patient_id="P8")
    write_ct(tmp_path / "a.dcm", ds)
    write_ct(tmp_path / "copy" / "a.dcm", ds)
    (case,) = discover_cases([tmp_path])
    assert case.error is None and case.n_slices == 1


def test_error_case_loads_as_ingest_error() -> None:
    case = CaseSource(case_id="x", kind="dicom", source="x.dcm", error="x.dcm is broken")
    with pytest.raises(IngestError, match=r"x\.dcm is broken"):
        load_case(case)


def test_format_ranges() -> None:
    assert format_ranges([3, 1, 2, 7, 9, 10]) == "1-3, 7, 9-10"
    assert format_ranges([]) == "none"


def test_same_uid_with_different_pixels_fails_both_files(tmp_path: Path) -> None:
    ds = make_ct_dataset(patient_id="P9")
    write_ct(tmp_path / "a.dcm", ds)
    other = make_ct_dataset(phantom_hu() + 10.0, patient_id="P9")
    other.SOPInstanceUID, other.SeriesInstanceUID = ds.SOPInstanceUID, ds.SeriesInstanceUID
    write_ct(tmp_path / "b.dcm", other)
    cases = discover_cases([tmp_path])
    assert [c.case_id for c in cases] == ["P9", "P9_2"]
    for case in cases:
        assert case.error is not None
        assert (
            f"SOPInstanceUID {ds.SOPInstanceUID} is shared by files with different content (a.dcm, b.dcm)"
            in case.error
        )


@pytest.mark.parametrize(
    ("patient_id", "case_id"), [("李雷", "李雷"), ("..", "_.."), ("a/b", "a_b"), (".hidden", "_.hidden")]
)
def test_case_ids_keep_letters_and_never_name_a_path(tmp_path: Path, patient_id: str, case_id: str) -> None:
    ds = make_ct_dataset(patient_id=patient_id)
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, so 李雷 is stored as it is
    write_ct(tmp_path / "x.dcm", ds)
    assert [c.case_id for c in discover_cases([tmp_path])] == [case_id]


def test_ids_differing_only_in_letter_case_stay_apart(tmp_path: Path) -> None:
    write_ct(tmp_path / "a.dcm", patient_id="ab")
    write_ct(tmp_path / "b.dcm", patient_id="AB")
    assert [c.case_id for c in discover_cases([tmp_path])] == ["ab", "AB_2"]


def test_output_folder_inside_the_input_is_never_discovered(tmp_path: Path) -> None:
    write_ct(tmp_path / "p.dcm", patient_id="P1")
    write_ct(tmp_path / "out" / "cases" / "P1" / "seg.dcm", patient_id="OLD")
    assert [c.case_id for c in discover_cases([tmp_path], exclude=[tmp_path / "out"])] == ["P1"]
    assert len(discover_cases([tmp_path])) == 2
