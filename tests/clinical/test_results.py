"""results.csv / results.json, the resume state: column order, empty cells, safe cells, atomic pair."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lsmseg.clinical.results import (
    RESULT_COLUMNS_HEAD,
    is_complete,
    previous_run,
    reconcile_results,
    resumable_rows,
    write_results,
)
from lsmseg.errors import UsageError
from lsmseg.keys import Tissue
from lsmseg.readout.cutoffs import get_cutoff_sets
from lsmseg.readout.sarcopenia import build_readout, measure


def _spacing_mask() -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """(128, 128) blocks of each tissue over soft-tissue HU, 0.66 mm pixels."""
    mask = np.zeros((128, 128), dtype=np.uint8)
    mask[5:20, 10:60] = Tissue.SAT
    mask[40:70, 30:50] = Tissue.VAT
    mask[90:100, 70:120] = Tissue.MUSCLE
    hu = np.where(mask == Tissue.MUSCLE, 40.0, -100.0).astype(np.float32)
    return mask, hu, (0.66, 0.66)


def result_rows():
    mask, hu, spacing_mm = _spacing_mask()
    comp = measure(mask, hu, spacing_mm)
    sets = get_cutoff_sets("prado2008,martin2013")
    ok = build_readout(
        comp, height_m=1.7, weight_kg=70, sex="M", height_source="csv", cutoff_sets=sets
    ).to_row()
    ok.update(
        case_id="a", status="ok", error=None, source="a.dcm", runtime_s=0.5, model="lsm_sss", extra_key=1
    )
    failed = {
        "case_id": "b",
        "status": "failed",
        "error": "no PixelSpacing",
        "source": "b.dcm",
        "runtime_s": 0.1,
    }
    return [ok, failed], sets


def test_write_results(tmp_path):
    rows, _ = result_rows()
    rows[0]["muscle_sd_hu"] = float("nan")
    csv_path, json_path = write_results(
        rows, tmp_path / "results.csv", tmp_path / "results.json", {"lsmseg": "0.1.0", "vat_hu": (-150, -50)}
    )
    with open(csv_path, newline="") as f:
        table = list(csv.DictReader(f))
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f))
    expected = [
        *RESULT_COLUMNS_HEAD,
        "sarcopenia_prado2008",
        "sarcopenia_martin2013",
        "myosteatosis_martin2013",
        "runtime_s",
        "model",
    ]
    assert header[: len(expected)] == expected
    assert "extra_key" in header[len(expected) :] and "cutoff_notes" in header[len(expected) :]
    assert table[0]["case_id"] == "a" and table[0]["status"] == "ok"
    assert table[0]["muscle_sd_hu"] == ""  # NaN is an empty cell
    assert float(table[0]["muscle_area_cm2"]) == rows[0]["muscle_area_cm2"]  # full precision
    assert table[0]["sarcopenia_prado2008"] in ("True", "False")
    assert table[1]["status"] == "failed" and table[1]["muscle_area_cm2"] == ""
    document = json.loads(json_path.read_text())
    assert document["provenance"] == {"lsmseg": "0.1.0", "vat_hu": [-150, -50]}
    assert document["cases"][0]["muscle_sd_hu"] is None
    assert document["cases"][1]["error"] == "no PixelSpacing"


def test_write_results_names_cutoff_columns_even_when_all_failed(tmp_path):
    _, sets = result_rows()
    failed = [{"case_id": "b", "status": "failed", "error": "x"}]
    csv_path, _ = write_results(failed, tmp_path / "r.csv", tmp_path / "r.json", {}, cutoff_sets=sets)
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f))
    assert "sarcopenia_prado2008" in header and "myosteatosis_martin2013" in header


def test_the_results_pair_stays_intact_when_a_write_fails(tmp_path, monkeypatch):
    rows, _ = result_rows()
    csv_path, json_path = tmp_path / "results.csv", tmp_path / "results.json"
    write_results(rows, csv_path, json_path, {"run": 1})
    old_csv, old_json = csv_path.read_text(), json_path.read_text()
    monkeypatch.setattr(json, "dumps", lambda *a, **k: (_ for _ in ()).throw(ValueError("boom")))
    with pytest.raises(ValueError, match="boom"):
        write_results(rows[:1], csv_path, json_path, {"run": 2})
    assert json_path.read_text() == old_json
    assert csv_path.read_text() == old_csv  # the pair stays consistent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.json"]


def test_cells_a_spreadsheet_would_run_are_quoted_but_hu_ranges_are_not(tmp_path):
    rows = [
        {"case_id": "=HYPERLINK(1)", "status": "ok", "vat_hu_range": "-150..-50", "error": "-x", "bmi": -1.5}
    ]
    csv_path, _ = write_results(rows, tmp_path / "r.csv", tmp_path / "r.json", {})
    with open(csv_path, newline="") as f:
        row = next(csv.DictReader(f))
    assert row["case_id"] == "'=HYPERLINK(1)" and row["error"] == "'-x"
    assert row["vat_hu_range"] == "-150..-50" and row["bmi"] == "-1.5"


def test_resume_keeps_complete_rows_with_unchanged_inputs(tmp_path: Path) -> None:
    (tmp_path / "cases" / "a").mkdir(parents=True)
    (tmp_path / "cases" / "a" / "mask.nii.gz").write_bytes(b"x")
    ok = {"case_id": "a", "status": "ok", "mask_file": "cases/a/mask.nii.gz", "overlay_file": None}
    gone = {"case_id": "b", "status": "ok", "mask_file": "cases/b/mask.nii.gz"}
    failed = {"case_id": "c", "status": "error", "mask_file": None}
    assert is_complete(ok, tmp_path) and not is_complete(gone, tmp_path) and not is_complete(failed, tmp_path)
    inputs = {k: {"source": f"{k}.dcm"} for k in "abcd"}
    provenance = {"weights_sha256": "1", "refine": True, "case_inputs": inputs}
    write_results([ok, gone, failed], tmp_path / "results.csv", tmp_path / "results.json", provenance)
    changed = {**inputs, "a": {"source": "elsewhere.dcm"}}
    assert list(resumable_rows(tmp_path, provenance, inputs)) == ["a"]
    assert resumable_rows(tmp_path, provenance, changed) == {}
    with pytest.raises(UsageError, match=r"other settings \(weights_sha256, refine differ\)"):
        previous_run(tmp_path, {**provenance, "weights_sha256": "2", "refine": False})
    assert previous_run(tmp_path / "empty", provenance) == ({}, {})


def _rows(n: int) -> list[dict[str, object]]:
    return [
        {"case_id": f"c{i}", "status": "ok", "error": None, "muscle_area_cm2": 100.5 + i, "model": "=m"}
        for i in range(n)
    ]


def test_resume_repairs_a_csv_left_one_batch_behind_by_a_kill_between_renames(tmp_path: Path) -> None:
    """write_results renames results.json first: a kill before the csv rename leaves csv behind."""
    provenance = {"weights_sha256": "1"}
    write_results(_rows(2), tmp_path / "results.csv", tmp_path / "results.json", provenance)
    behind = (tmp_path / "results.csv").read_text()
    write_results(_rows(4), tmp_path / "results.csv", tmp_path / "results.json", provenance)
    (tmp_path / "results.csv").write_text(behind)  # the state the kill left

    note = reconcile_results(tmp_path)

    assert note == "results.csv rewritten from results.json (4 rows): an earlier run was interrupted"
    assert [r["case_id"] for r in read_rows(tmp_path / "results.csv")] == ["c0", "c1", "c2", "c3"]
    assert reconcile_results(tmp_path) is None  # the pair agrees now


def test_a_csv_with_more_rows_than_the_json_wins_and_keeps_values_and_provenance(tmp_path: Path) -> None:
    provenance = {"weights_sha256": "1", "case_inputs": {"c0": {"source": "a"}}}
    write_results(_rows(1), tmp_path / "results.csv", tmp_path / "results.json", provenance)
    old_json = (tmp_path / "results.json").read_text()
    write_results(_rows(3), tmp_path / "results.csv", tmp_path / "results.json", provenance)
    (tmp_path / "results.json").write_text(old_json)

    assert reconcile_results(tmp_path) == (
        "results.json rewritten from results.csv (3 rows): an earlier run was interrupted"
    )
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["provenance"] == provenance
    given = {k: v for k, v in document["cases"][2].items() if v is not None}  # empty columns are None
    assert given == {k: v for k, v in _rows(3)[2].items() if v is not None}  # typed, formula quote undone


def test_a_missing_or_damaged_results_file_is_rebuilt_from_the_other(tmp_path: Path) -> None:
    write_results(_rows(2), tmp_path / "results.csv", tmp_path / "results.json", {"weights_sha256": "1"})
    (tmp_path / "results.csv").unlink()
    assert reconcile_results(tmp_path) is not None
    assert len(read_rows(tmp_path / "results.csv")) == 2
    (tmp_path / "results.json").write_text('{"provenance": ')  # cut short
    assert reconcile_results(tmp_path) is not None
    assert [r["case_id"] for r in json.loads((tmp_path / "results.json").read_text())["cases"]] == [
        "c0",
        "c1",
    ]
    assert reconcile_results(tmp_path / "nothing") is None


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
