"""The patients CSV and the patient values of a case: height, weight and sex, DICOM first.

Columns: ``case_id`` (or ``patient_id``), ``height_m``, ``weight_kg``, ``sex``, ``l3_slice``; every
column but the identifier is optional and empty cells are missing values. The plausibility limits
for height and weight are the readout's (:mod:`lsmseg.readout.sarcopenia`).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsmseg.errors import UsageError
from lsmseg.io import CaseSource, CTSlice
from lsmseg.readout import HeightSource, normalize_sex
from lsmseg.readout.sarcopenia import MAX_HEIGHT_M, MAX_WEIGHT_KG

logger = logging.getLogger(__name__)

ID_COLUMNS = ("case_id", "patient_id")
VALUE_COLUMNS = ("height_m", "weight_kg", "sex", "l3_slice")
# A DICOM PatientSize and a CSV height further apart than this are worth a note (metres).
HEIGHT_DISAGREEMENT_M = 0.02
# Weights further apart than this are worth a note (kg): scales and days differ by a kilogram or two.
WEIGHT_DISAGREEMENT_KG = 2.0


@dataclass(frozen=True)
class PatientRecord:
    """One row of the user's patients CSV.

    Attributes:
        key: the row's case_id (or patient_id).
        line: line number in the file (1 = header), for messages.
        height_m: metres; weight_kg: kilograms; sex: as written (M / F / male / female);
        l3_slice: InstanceNumber of the L3 slice in a DICOM series (0-based slice index for a
            NIfTI volume).
        problems: values that cannot be used; a case with this row fails with them.
    """

    key: str
    line: int
    height_m: float | None = None
    weight_kg: float | None = None
    sex: str | None = None
    l3_slice: int | None = None
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The values the run used, for provenance."""
        return {
            "height_m": self.height_m,
            "weight_kg": self.weight_kg,
            "sex": self.sex,
            "l3_slice": self.l3_slice,
        }


def plausible(value: float | None, high: float) -> bool:
    """``0 < value <= high`` and finite (None is not plausible)."""
    return value is not None and math.isfinite(value) and 0 < value <= high


def _number(text: str, column: str, high: float, unit: str, where: str, problems: list[str]) -> float | None:
    """A positive number up to ``high`` from a cell; a problem noted (and None) otherwise."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{where}: {column} {text!r} is not a number of {unit}")
        return None
    if not plausible(value, high):
        hint = " (centimetres? give metres)" if column == "height_m" and value > high else ""
        problems.append(f"{where}: {column} {text} is not a plausible value in {unit}{hint}")
        return None
    return value


def _instance_number(text: str, where: str, problems: list[str]) -> int | None:
    if not text:
        return None
    try:
        value = int(float(text))
        if value != float(text):
            raise ValueError
    except ValueError:
        problems.append(f"{where}: l3_slice {text!r} is not an InstanceNumber (a whole number)")
        return None
    return value


def parse_row(key: str, line: int, row: Mapping[str, str], file_name: str) -> PatientRecord:
    """A :class:`PatientRecord` from one CSV row (lower-case column names, stripped cells)."""
    problems: list[str] = []
    where = f"{file_name} line {line}"
    height = _number(row.get("height_m", ""), "height_m", MAX_HEIGHT_M, "metres", where, problems)
    weight = _number(row.get("weight_kg", ""), "weight_kg", MAX_WEIGHT_KG, "kilograms", where, problems)
    l3_slice = _instance_number(row.get("l3_slice", ""), where, problems)
    return PatientRecord(key, line, height, weight, row.get("sex") or None, l3_slice, tuple(problems))


class PatientTable:
    """The patients CSV, read once: one :class:`PatientRecord` per case.

    Raises:
        UsageError: a missing or unreadable file, no identifier column, or a case listed twice.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.records: dict[str, PatientRecord] = {}
        if not self.path.is_file():
            raise UsageError(f"patients CSV {self.path} does not exist")
        self.note: str | None = None  # how the file was decoded, when not UTF-8
        text = self._read_text()
        if self.note:
            logger.warning("%s", self.note)
        reader = csv.DictReader(text.splitlines())
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        id_column = next((c for c in ID_COLUMNS if c in columns), None)
        if id_column is None:
            raise UsageError(
                f"patients CSV {self.path} needs a case_id or patient_id column; it has: "
                f"{', '.join(columns) or 'no header'} (expected case_id, height_m, weight_kg, sex, l3_slice)"
            )
        for line, raw in enumerate(reader, start=2):
            row = {str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
            key = row.get(id_column, "")
            if not key:
                continue
            if key in self.records:
                raise UsageError(
                    f"patients CSV {self.path} lists {key} twice (lines {self.records[key].line} and {line}): "
                    "keep one row per case"
                )
            self.records[key] = parse_row(key, line, row, self.path.name)

    def _read_text(self) -> str:
        """The file as UTF-8 (with or without BOM), else Latin-1 with a note; a hint otherwise."""
        try:
            data = self.path.read_bytes()
        except OSError as err:
            raise UsageError(f"patients CSV {self.path} cannot be read: {err}") from err
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
        text = data.decode("latin-1")  # decodes any bytes; control characters show it was wrong
        if "\x00" in text or any(0x80 <= ord(c) < 0xA0 for c in text):
            raise UsageError(
                f"patients CSV {self.path} is neither UTF-8 nor Latin-1 text (UTF-16?): save it as "
                "'CSV UTF-8' from the spreadsheet and rerun"
            )
        self.note = f"patients CSV {self.path.name} is not UTF-8: read as Latin-1 (check accented names)"
        return text

    def lookup(self, case: CaseSource) -> PatientRecord | None:
        """The row for a case: by case_id, else by the DICOM PatientID."""
        record = self.records.get(case.case_id)
        if record is None and case.patient_id:
            record = self.records.get(case.patient_id)
        return record

    def __len__(self) -> int:
        return len(self.records)


def _dicom_value(value: float | None, high: float, note: str, notes: list[str]) -> float | None:
    if value is not None and not plausible(value, high):
        notes.append(note.format(value=value))
        return None
    return value


def patient_values(ct: CTSlice, record: PatientRecord | None) -> tuple[dict[str, Any], list[str]]:
    """Height, weight and sex for the readout: DICOM first, then the patients CSV; with notes.

    Returns:
        ``({"height_m", "height_source", "weight_kg", "sex"}, notes)``: the keyword arguments of
        :func:`lsmseg.readout.build_readout` and what a reader of the row should know.
    """
    notes: list[str] = []
    dicom_height = _dicom_value(
        ct.patient.height_m,
        MAX_HEIGHT_M,
        "DICOM PatientSize {value:g} ignored: not a height in metres",
        notes,
    )
    dicom_weight = _dicom_value(
        ct.patient.weight_kg,
        MAX_WEIGHT_KG,
        "DICOM PatientWeight {value:g} ignored: not a weight in kilograms",
        notes,
    )
    csv_height = record.height_m if record else None
    csv_weight = record.weight_kg if record else None
    if dicom_height is not None:
        height, source = dicom_height, HeightSource.DICOM
        if csv_height is not None and abs(csv_height - dicom_height) > HEIGHT_DISAGREEMENT_M:
            notes.append(
                f"height {dicom_height:g} m from DICOM PatientSize, patients CSV says {csv_height:g} m"
            )
    elif csv_height is not None:
        height, source = csv_height, HeightSource.CSV
    else:
        height, source = None, HeightSource.MISSING
    weight = dicom_weight if dicom_weight is not None else csv_weight
    if (
        dicom_weight is not None
        and csv_weight is not None
        and abs(dicom_weight - csv_weight) > WEIGHT_DISAGREEMENT_KG
    ):
        notes.append(
            f"weight {dicom_weight:g} kg from DICOM PatientWeight, patients CSV says {csv_weight:g} kg "
            "(the BMI uses the DICOM value)"
        )
    sex = _sex(ct.patient.sex, record.sex if record else None, notes)
    return {"height_m": height, "height_source": source, "weight_kg": weight, "sex": sex}, notes


def _sex(dicom_sex: str | None, csv_sex: str | None, notes: list[str]) -> str | None:
    """DICOM PatientSex when it is M or F, else the CSV's; a note when both are known and differ
    (sex chooses the cut-offs)."""
    dicom_known, csv_known = normalize_sex(dicom_sex), normalize_sex(csv_sex) if csv_sex else None
    if dicom_known and csv_known and dicom_known != csv_known:
        notes.append(
            f"sex {dicom_sex} from DICOM PatientSex, patients CSV says {csv_sex} "
            "(the cut-offs use the DICOM value)"
        )
    if dicom_known:
        return dicom_sex
    return csv_sex or dicom_sex
