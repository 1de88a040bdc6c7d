"""What a cohort run reports: results rows, results.csv / results.json, provenance and resume state.

results.csv has one row per case in a stable column order (DESIGN.md "Command line"): the fixed
head, one group of columns per cut-off set, ``runtime_s`` and ``model``, then any further keys.
results.json holds the same rows plus the provenance of the run, which ``--resume`` reads back to
check that an earlier run used the same model and settings.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from lsmseg.errors import UsageError
from lsmseg.io.atomic import atomic_write, csv_cell
from lsmseg.keys import ADIPOSE_HU, MUSCLE_HU
from lsmseg.readout.cutoffs import CUTOFF_SETS, CutoffSet

PathLike = str | os.PathLike[str]

STATUS_OK = "ok"
STATUS_ERROR = "error"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
CASES_DIR = "cases"
MASK_FILE = "mask.nii.gz"
OVERLAY_FILE = "overlay.png"
SEG_FILE = "seg.dcm"
MASK_MODEL_FILE = "mask_model.nii.gz"  # the raw model regions, before the HU ranges
SR_FILE = "sr.dcm"
# row keys naming a case's files
CASE_FILE_KEYS = ("mask_file", "mask_model_file", "overlay_file", "seg_file", "sr_file")
# Decimals a measurement is reported with: what the method supports (a pixel is ~0.005 cm2 at
# 0.7 mm spacing; HU are integers averaged over thousands of pixels).
REPORT_DECIMALS: dict[str, int] = {
    "muscle_area_cm2": 2,
    "imat_area_cm2": 2,
    "sat_area_cm2": 2,
    "vat_area_cm2": 2,
    "muscle_mean_hu": 1,
    "muscle_sd_hu": 1,
    "smi_cm2_m2": 2,
    "bmi": 2,
}
# Settings that must match for --resume to reuse earlier rows.
RESUME_KEYS = ("weights_sha256", "image_size", "hu_range", "refine", "hu_ranges", "cutoff_sets")

# results.csv column order; cut-off columns go between HEAD and TAIL, any further keys after TAIL.
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
RESULT_COLUMNS_TAIL: tuple[str, ...] = ("runtime_s", "model", "quality", "ood_score", "ood_percentile")
# Text that is a number or a range of numbers ("-150..-50"): no spreadsheet runs it as a formula,
# so it is written as it is instead of with csv_cell's quote prefix.
_NUMERIC_TEXT = re.compile(r"^-?\d+(\.\d+)?(\.\.-?\d+(\.\d+)?)?$")


@dataclass
class SegmentReport:
    """What :func:`lsmseg.clinical.cohort.segment_cohort` did.

    Attributes:
        rows: one results row per case, in input order (the rows of results.csv).
        out_dir, results_csv, results_json: where the results are.
        processed: case ids measured (or failed) in this run; resumed: case ids reused from an
            earlier run (``resume=True``).
        model: the model label (``<bundle>@<version>``); device: where the network ran.
        timings_s: wall seconds per stage: load_model, ingest, preprocess, network,
            readout (inverse transform + measurements), writers (case files), results
            (results.csv / results.json), total; and writer_cpu, the CPU seconds of the
            writer processes when the writers are processes (:mod:`lsmseg.clinical.pipeline`).
        validation: the model's validation figure in words; caveat: the research-use caveat
            (None for a model validated on real CT).
    """

    rows: list[dict[str, Any]]
    out_dir: Path
    results_csv: Path
    results_json: Path
    processed: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    model: str = ""
    device: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)
    validation: str = ""
    caveat: str | None = None

    @property
    def n_ok(self) -> int:
        return sum(r.get("status") == STATUS_OK for r in self.rows)

    @property
    def n_failed(self) -> int:
        return sum(r.get("status") != STATUS_OK for r in self.rows)

    @property
    def exit_status(self) -> int:
        """0 when every case succeeded, 1 when some failed."""
        return 0 if self.n_failed == 0 else 1


def round_measurements(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with each measurement rounded to :data:`REPORT_DECIMALS` (areas 0.01 cm2, HU 0.1);
    None and NaN stay as they are. Verdicts are judged on the unrounded values before this."""
    out = dict(row)
    for key, decimals in REPORT_DECIMALS.items():
        value = out.get(key)
        if isinstance(value, float) and math.isfinite(value):
            out[key] = round(value, decimals)
    return out


def json_safe(value: Any) -> Any:
    """Plain JSON types: NaN/inf -> null, numpy -> Python, tuples -> lists, paths -> str."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _cell(value: Any) -> str:
    """One results.csv cell: :func:`csv_cell` (formula-safe), numeric text such as an HU range as it is."""
    value = json_safe(value)
    if isinstance(value, str) and _NUMERIC_TEXT.match(value):
        return value
    return csv_cell(value)


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
    """Write results.csv (one row per case, :func:`result_columns`) and results.json, as a pair.

    Missing values (None, NaN) are empty cells; text a spreadsheet would run as a formula is
    quoted (:func:`lsmseg.io.atomic.csv_cell`). results.json is
    ``{"provenance": provenance, "cases": rows}`` with NaN written as null. Both files are
    complete before either replaces its old version, so a failure leaves the previous pair
    intact and consistent. results.json is replaced first: a kill between the two renames leaves
    results.csv one step behind, which :func:`reconcile_results` repairs.
    """
    columns = result_columns(rows, cutoff_sets)
    document = {"provenance": json_safe(provenance), "cases": json_safe(list(rows))}
    json_text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    # Context managers exit innermost first: results.json is renamed, then results.csv.
    with atomic_write(csv_path) as tmp_csv, atomic_write(json_path) as tmp_json:
        with open(tmp_csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows({c: _cell(row.get(c)) for c in columns} for row in rows)
        tmp_json.write_text(json_text, encoding="utf-8")
    return Path(csv_path), Path(json_path)


def _uncell(text: str) -> Any:
    """A results.csv cell read back: empty -> None, numbers, booleans, JSON lists, formula quote undone."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    if text[:2] in ("'=", "'+", "'-", "'@", "'\t", "'\r"):
        return text[1:]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _read_csv_rows(path: Path) -> list[dict[str, Any]] | None:
    """The rows of results.csv with typed values (None when it is missing or unreadable)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [{k: _uncell(v or "") for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    """results.json as ``{"provenance", "cases"}`` (None when it is missing or unreadable)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("cases"), list):
        return None
    return document


def _summary(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    return [(str(r.get("case_id")), r.get("status")) for r in rows]


def reconcile_results(
    out_dir: Path, csv_name: str = RESULTS_CSV, json_name: str = RESULTS_JSON
) -> str | None:
    """Make results.csv and results.json of ``out_dir`` agree again after an interrupted run.

    They disagree (cases or statuses differ) when a run was killed between their renames
    (:func:`write_results`) or one was lost or damaged. The one with more rows wins; on a tie
    results.json, which is renamed first and so never the older one. The loser is rewritten
    from the winner; results.json keeps its provenance (empty when it was unreadable). Returns a
    note saying what was repaired, or None when the pair agrees or neither file exists.
    ``csv_name`` / ``json_name``: the pair's file names (a shard's, :mod:`lsmseg.clinical.shard`).
    """
    csv_path, json_path = out_dir / csv_name, out_dir / json_name
    document, csv_rows = _read_json(json_path), _read_csv_rows(csv_path)
    json_rows: list[dict[str, Any]] | None = document["cases"] if document is not None else None
    if json_rows is None and csv_rows is None:
        return None
    if json_rows is not None and csv_rows is not None and _summary(json_rows) == _summary(csv_rows):
        return None
    if csv_rows is None or (json_rows is not None and len(json_rows) >= len(csv_rows)):
        rows, source, target = json_rows or [], json_name, csv_name
    else:
        rows, source, target = csv_rows, csv_name, json_name
    write_results(rows, csv_path, json_path, document["provenance"] if document is not None else {})
    return f"{target} rewritten from {source} ({len(rows)} rows): an earlier run was interrupted"


def hu_ranges(refine: bool, vat_hu: tuple[float, float]) -> dict[str, list[float]] | None:
    """The Alberta ranges applied inside the predicted compartments (none without refinement)."""
    if not refine:
        return None
    return {"muscle": list(MUSCLE_HU), "sat": list(ADIPOSE_HU), "imat": list(ADIPOSE_HU), "vat": list(vat_hu)}


def build_provenance(
    model: Mapping[str, Any],
    cutoff_sets: Sequence[CutoffSet],
    vat_hu: tuple[float, float],
    refine: bool,
    patients_csv: Path | None,
    case_inputs: Mapping[str, Any],
) -> dict[str, Any]:
    """How the numbers were made: versions, date, the model (``model``: its provenance and
    ``device``), HU ranges, cut-off sets, the patients CSV and each case's inputs."""
    import monai
    import pydicom
    import torch

    from lsmseg import __version__

    return {
        "lsmseg_version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **model,
        "refine": refine,
        "hu_ranges": hu_ranges(refine, vat_hu),
        "cutoff_sets": [s.describe() for s in cutoff_sets],
        "patients_csv": str(patients_csv) if patients_csv else None,
        "software": {"torch": torch.__version__, "monai": monai.__version__, "pydicom": pydicom.__version__},
        "case_inputs": dict(case_inputs),
    }


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def previous_run(
    out_dir: Path, provenance: Mapping[str, Any], name: str = RESULTS_JSON
) -> tuple[dict[str, dict[str, Any]], Mapping[str, Any]]:
    """Rows and case inputs of an earlier run in ``out_dir`` (for resume), checked for the same
    settings; ``name``: the results file to read (results.json, or a shard's).

    Raises:
        UsageError: results.json unreadable, or made with other settings (:data:`RESUME_KEYS`).
    """
    path = out_dir / name
    if not path.is_file():
        return {}, {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        old = document["provenance"]
        rows = {str(r["case_id"]): r for r in document["cases"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"--resume: {path} cannot be read ({err}): remove it or drop --resume") from err
    changed = [k for k in RESUME_KEYS if not _same(old.get(k), provenance.get(k))]
    if changed:
        raise UsageError(
            f"--resume: {path} was made with other settings ({', '.join(changed)} differ): "
            "use a new --out folder, or run without --resume to redo every case"
        )
    return rows, old.get("case_inputs") or {}


def is_complete(row: Mapping[str, Any] | None, out_dir: Path) -> bool:
    """A case is complete when its row says ok and every file the row names exists."""
    if row is None or row.get("status") != STATUS_OK or row.get("mask_file") is None:
        return False
    return all((out_dir / f).is_file() for f in (row.get(k) for k in CASE_FILE_KEYS) if f)


def resumable_rows(
    out_dir: Path, provenance: Mapping[str, Any], case_inputs: Mapping[str, Any], name: str = RESULTS_JSON
) -> dict[str, dict[str, Any]]:
    """The complete rows of an earlier run (results file ``name``) whose case inputs are unchanged, by case id."""
    old_rows, old_inputs = previous_run(out_dir, provenance, name)
    return {
        case_id: row
        for case_id, row in old_rows.items()
        if case_id in case_inputs
        and _same(old_inputs.get(case_id), case_inputs[case_id])
        and is_complete(row, out_dir)
    }
