"""results.csv: summaries with known statistics, CSV quoting, and the plot."""

import csv
import math
from pathlib import Path

import pytest

from lsmseg.experiments.tables import (
    RESULT_COLUMNS,
    markdown_table,
    plot,
    read_results,
    summarise,
    write_results,
)
from tests.helpers.experiments import result_rows


def test_summary_statistics_of_known_rows() -> None:
    cells = {(c.method, c.proportion): c for c in summarise(result_rows())}
    assert set(cells) == {("lsm", 1.0), ("lsm", 0.05), ("basic", 1.0)}
    lsm = cells["lsm", 0.05]
    assert (lsm.n, lsm.lo, lsm.hi, lsm.best_epoch, lsm.seconds) == (2, 0.3, 0.5, 3.5, 10.0)
    assert lsm.mean == pytest.approx(0.4) and lsm.std == pytest.approx(math.sqrt(0.02))
    assert cells["lsm", 1.0].mean == pytest.approx(0.75) and cells["basic", 1.0].std == 0.0


def test_markdown_table_rows_columns_and_missing_cells() -> None:
    lines = markdown_table(result_rows(), ["basic", "lsm"]).splitlines()
    assert lines[0] == "| method | 100 % | 5 % |"
    assert lines[2] == "| basic | 0.600 ± 0.000 (0.600–0.600, n=2) | - |"
    assert lines[3] == "| lsm | 0.750 ± 0.071 (0.700–0.800, n=2) | 0.400 ± 0.141 (0.300–0.500, n=2) |"
    assert lines[-1].startswith("Test miou (higher is better)")
    assert markdown_table([]) == "(no finished runs)\n"


def test_results_round_trip_sorted_with_numbers_parsed(tmp_path: Path) -> None:
    rows = result_rows()
    rows[4]["valid_metric"] = math.nan  # a missing value: an empty cell, read back as NaN
    path = write_results(reversed(rows), tmp_path / "results.csv")
    back = read_results(path)
    assert [(r["method"], r["proportion"], r["seed"]) for r in back] == [
        ("basic", "1", 0), ("basic", "1", 1), ("lsm", "1", 0), ("lsm", "1", 1),
        ("lsm", "0.05", 0), ("lsm", "0.05", 1),
    ]  # fmt: skip
    assert back[3]["metric"] == 0.8 and back[3]["best_epoch"] == 4 and math.isnan(back[0]["valid_metric"])
    assert read_results(tmp_path / "missing.csv") == []


def test_a_value_with_a_comma_stays_in_its_column(tmp_path: Path) -> None:
    rows = result_rows()[:1]
    rows[0]["metric_name"] = "dice,iou"
    path = write_results(rows, tmp_path / "results.csv")
    with open(path, newline="") as f:
        raw = list(csv.reader(f))
    assert raw[0] == list(RESULT_COLUMNS) and len(raw[1]) == len(RESULT_COLUMNS)
    assert '"dice,iou"' in path.read_text()
    assert read_results(path)[0]["metric_name"] == "dice,iou"


def test_plot_is_a_png(tmp_path: Path) -> None:
    reference = {"lsm": {1.0: 0.73, 0.01: 0.33}}
    png = plot(result_rows(), tmp_path / "p.png", ["basic", "lsm"], reference, title="t")
    assert png.read_bytes()[:4] == b"\x89PNG" and list(tmp_path.iterdir()) == [png]
