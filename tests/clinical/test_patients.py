"""The patients CSV and a case's patient values: DICOM first, implausible values explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lsmseg.clinical.patients import PatientRecord, PatientTable, patient_values
from lsmseg.errors import UsageError
from lsmseg.io import CaseSource, CTSlice, PatientInfo
from lsmseg.readout import HeightSource


def _table(tmp_path: Path, text: str) -> PatientTable:
    (tmp_path / "p.csv").write_text(text)
    return PatientTable(tmp_path / "p.csv")


def _ct(**patient: Any) -> CTSlice:
    return CTSlice(
        hu=np.zeros((2, 2)),
        spacing_mm=(1.0, 1.0),
        case_id="a",
        source="a.dcm",
        patient=PatientInfo(**patient),
    )


def test_a_table_without_an_id_column_or_with_a_case_twice_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="needs a case_id or patient_id column; it has: name, height_m"):
        _table(tmp_path, "name,height_m\nx,1.7\n")
    with pytest.raises(UsageError, match=r"lists x twice \(lines 2 and 3\)"):
        _table(tmp_path, "case_id,height_m\nx,1.7\nx,1.8\n")
    with pytest.raises(UsageError, match="does not exist"):
        PatientTable(tmp_path / "missing.csv")


def test_values_are_parsed_and_implausible_ones_become_problems(tmp_path: Path) -> None:
    table = _table(
        tmp_path, "Patient_ID,height_m,weight_kg,sex,l3_slice\nA,1.80,81,M,12\nB,175,x,,2.5\n,1,1,F,1\n"
    )
    assert len(table) == 2  # the row without an id is skipped
    assert table.records["A"] == PatientRecord("A", 2, 1.8, 81.0, "M", 12, ())
    problems = table.records["B"].problems
    assert problems == (
        "p.csv line 3: height_m 175 is not a plausible value in metres (centimetres? give metres)",
        "p.csv line 3: weight_kg 'x' is not a number of kilograms",
        "p.csv line 3: l3_slice '2.5' is not an InstanceNumber (a whole number)",
    )


def test_lookup_by_case_id_then_by_patient_id(tmp_path: Path) -> None:
    table = _table(tmp_path, "case_id,height_m\nP7,1.6\nP7_s2,1.7\n")
    series = CaseSource(case_id="P7_s2", kind="dicom", source="x", patient_id="P7")
    other = CaseSource(case_id="P7_s3", kind="dicom", source="x", patient_id="P7")
    assert table.lookup(series).height_m == 1.7  # type: ignore[union-attr]
    assert table.lookup(other).height_m == 1.6  # type: ignore[union-attr]


def test_dicom_values_come_first_and_implausible_ones_are_ignored_with_a_note() -> None:
    record = PatientRecord("a", 2, height_m=1.70, weight_kg=70.0, sex="F")
    values, notes = patient_values(_ct(height_m=1.75, weight_kg=80.0, sex="M"), record)
    assert values == {"height_m": 1.75, "height_source": HeightSource.DICOM, "weight_kg": 80.0, "sex": "M"}
    assert notes == [
        "height 1.75 m from DICOM PatientSize, patients CSV says 1.7 m",
        "weight 80 kg from DICOM PatientWeight, patients CSV says 70 kg (the BMI uses the DICOM value)",
        "sex M from DICOM PatientSex, patients CSV says F (the cut-offs use the DICOM value)",
    ]
    values, notes = patient_values(_ct(height_m=175.0, weight_kg=0.0, sex="O"), record)
    assert values == {"height_m": 1.7, "height_source": HeightSource.CSV, "weight_kg": 70.0, "sex": "F"}
    assert notes == [
        "DICOM PatientSize 175 ignored: not a height in metres",
        "DICOM PatientWeight 0 ignored: not a weight in kilograms",
    ]
    values, _ = patient_values(_ct(), None)
    assert values["height_source"] == HeightSource.MISSING and values["height_m"] is None


def test_agreeing_sex_and_weight_give_no_note() -> None:
    record = PatientRecord("a", 2, weight_kg=70.5, sex="male")
    values, notes = patient_values(_ct(weight_kg=70.0, sex="M"), record)
    assert values["weight_kg"] == 70.0 and values["sex"] == "M" and notes == []


def test_latin1_csv_is_read_with_a_note_and_utf16_gets_a_hint(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("case_id,sex,height_m\nJos\xe9,M,1.8\n".encode("latin-1"))
    table = PatientTable(latin)
    assert "José" in table.records and table.records["José"].height_m == 1.8
    assert table.note == "patients CSV latin.csv is not UTF-8: read as Latin-1 (check accented names)"
    bom = tmp_path / "bom.csv"
    bom.write_bytes("case_id,sex\nA,F\n".encode("utf-8-sig"))
    assert PatientTable(bom).note is None and "A" in PatientTable(bom).records
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("case_id,sex\nA,F\n".encode("utf-16"))
    with pytest.raises(UsageError, match=r"neither UTF-8 nor Latin-1 .* save it as 'CSV UTF-8'"):
        PatientTable(utf16)
