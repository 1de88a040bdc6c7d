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


def _with_floor(rows: list[dict], floor: dict[str, float]) -> list[dict]:
    return [{**r, "floor": floor[r["proportion"]]} for r in rows]


def test_floor_row_and_marks_on_cells_below_it() -> None:
    """Floors 0.65 (100 %) and 0.45 (5 %): basic 0.6 and lsm 0.4 are below, lsm 0.75 is not."""
    rows = _with_floor(result_rows(), {"1": 0.65, "0.05": 0.45})
    lines = markdown_table(rows, ["basic", "lsm"]).splitlines()
    assert lines[2] == "| basic | 0.600 ± 0.000 (0.600–0.600, n=2) * | - |"
    assert lines[3] == "| lsm | 0.750 ± 0.071 (0.700–0.800, n=2) | 0.400 ± 0.141 (0.300–0.500, n=2) * |"
    assert lines[4] == "| floor | 0.650 | 0.450 |"
    assert lines[-1].startswith("floor: ") and "* = mean below the floor" in lines[-1]


def test_lower_is_better_marks_cells_above_the_floor() -> None:
    rows = [{**r, "metric_name": "nrmse"} for r in _with_floor(result_rows(), {"1": 0.65, "0.05": 0.45})]
    lines = markdown_table(rows, ["basic", "lsm"]).splitlines()
    assert lines[2].endswith("n=2) | - |")  # basic 0.6 < 0.65: better than the floor
    assert lines[3] == "| lsm | 0.750 ± 0.071 (0.700–0.800, n=2) * | 0.400 ± 0.141 (0.300–0.500, n=2) |"
    assert "* = mean above the floor" in lines[-1]


def test_floor_survives_the_csv_and_a_missing_floor_reads_as_nan(tmp_path: Path) -> None:
    rows = _with_floor(result_rows(), {"1": 0.65, "0.05": 0.45})
    rows[4]["floor"] = None  # basic, seed 0: a run from before the floor existed
    back = read_results(write_results(rows, tmp_path / "results.csv"))
    assert math.isnan(back[0]["floor"]) and back[1]["floor"] == 0.65
    cells = {(c.method, c.proportion): c for c in summarise(back)}
    assert cells["basic", 1.0].floor == 0.65  # the mean over the seeds that report one


def test_plot_draws_the_floor_dashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.axes

    drawn: list[tuple] = []
    original = matplotlib.axes.Axes.plot

    def record(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        drawn.append((args, kwargs.get("label")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record)
    plot(_with_floor(result_rows(), {"1": 0.65, "0.05": 0.45}), tmp_path / "p.png", ["basic", "lsm"])
    floor = [args for args, label in drawn if label == "floor"]
    assert floor == [([5.0, 100.0], [0.45, 0.65], "--")]
