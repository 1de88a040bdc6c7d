"""The step benchmark: batches of known modes, methods that cost what their terms need, rows
computed from given measurements, CSV append."""

import csv
import math
from pathlib import Path

import pytest
import torch

from lsmseg.errors import UsageError
from lsmseg.experiments.bench import (
    BENCH_COLUMNS,
    BenchSettings,
    Measurement,
    StepTimes,
    best_of,
    measure_method,
    run_bench,
    step_flops,
    synthetic_batch,
    to_row,
    write_csv,
)
from lsmseg.keys import Keys, Mode

TINY = BenchSettings(ngf=4, ndf=4, image_size=32, batch_size=4, steps=2, warmup=1)


def test_synthetic_batch_mixes_modes_and_hides_missing_views() -> None:
    s = BenchSettings(ngf=4, ndf=4, image_size=32, batch_size=8, paired_fraction=0.5)
    batch = synthetic_batch(s)
    modes = batch[Keys.MODE].tolist()
    assert modes.count(Mode.PAIRED) == 4 and modes.count(Mode.X_ONLY) == 2 and modes.count(Mode.Y_ONLY) == 2
    assert batch[Keys.IMAGE].shape == (8, 1, 32, 32) and batch[Keys.LABEL].dtype == torch.int64
    for i, m in enumerate(modes):
        assert bool(batch[Keys.IMAGE][i].any()) == Mode(m).has_x
        assert bool(batch[Keys.LABEL][i].any()) == Mode(m).has_y


def test_methods_cost_what_their_terms_need() -> None:
    flops = {m: step_flops(TINY, m) for m in ("basic", "sop", "ioda", "lsm")}
    assert flops["ioda"] == flops["basic"]  # IODA's fine-tune stage is the basic translation
    assert flops["basic"] < flops["sop"] < flops["lsm"]
    pretrain_x = step_flops(TINY, "ioda", stage=0)
    assert 0 < pretrain_x < flops["sop"]


def _measurement(wall: list[float], flops: int = 2 * 10**9) -> Measurement:
    return Measurement("lsm", "translate", StepTimes(wall, [0.1] * len(wall)), flops, 3.0, 1.0)


def test_a_row_from_known_times_and_flops() -> None:
    """Median step 0.2 s, batch 4, 2 GFLOP per step: 20 samples/s, 10 GFLOP/s, 10 % of 100."""
    row = to_row(TINY, _measurement([0.1, 0.2, 0.3]), peak_gflops=100.0, conv_peak=50.0)
    assert set(row) == set(BENCH_COLUMNS)
    assert (row["samples_per_s"], row["step_ms"], row["step_ms_min"], row["step_cpu_ms"]) == (
        20.0,
        200.0,
        100.0,
        100.0,
    )
    assert (row["gflops_per_step"], row["achieved_gflops"], row["peak_fraction"]) == (2.0, 10.0, 0.1)
    assert (row["steps"], row["infer_ms_per_slice"], row["infer_ms_per_slice_batched"]) == (3, 3.0, 1.0)
    assert row["cpu_util"] == round(0.1 / (0.2 * torch.get_num_threads()), 3)


def test_best_of_keeps_the_faster_round_and_the_lower_latencies() -> None:
    slow, fast = _measurement([0.5, 0.5]), _measurement([0.2, 0.2])
    fast = Measurement(fast.method, fast.stage, fast.times, fast.flops, 4.0, 2.0)
    best = best_of(best_of(None, slow), fast)
    assert best.times == fast.times and (best.infer_ms, best.infer_ms_batched) == (3.0, 1.0)


def test_ioda_stage_is_named_in_the_row() -> None:
    m = measure_method(TINY, "ioda", stage=1)
    assert m.stage == "pretrain_y" and len(m.times.wall) == len(m.times.cpu) == TINY.steps
    assert to_row(TINY, m, peak_gflops=100.0, conv_peak=100.0)["stage"] == "pretrain_y"


def test_run_bench_rows_are_consistent(tmp_path: Path) -> None:
    rows = run_bench(TINY, ["basic", "lsm"], peak_sizes=(128,), rounds=2)
    assert [r["method"] for r in rows] == ["basic", "lsm"]
    for r in rows:
        assert math.isclose(r["samples_per_s"], TINY.batch_size / (r["step_ms"] / 1e3), rel_tol=1e-3)
        assert r["gflops_per_step"] == round(step_flops(TINY, r["method"]) / 1e9, 3)
        assert math.isclose(r["peak_fraction"], r["achieved_gflops"] / r["peak_gflops"], rel_tol=0.02)
        assert 0 < r["cpu_util"] <= 1.2 and r["infer_ms_per_slice"] > 0


def test_write_csv_appends_to_the_rows_already_there(tmp_path: Path) -> None:
    first = {c: 1 for c in BENCH_COLUMNS} | {"method": "basic", "step_ms": -1.5}
    path = write_csv([first], tmp_path / "b.csv")
    write_csv([first | {"method": "lsm"}], path, append=True)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["basic", "lsm"]
    assert [r["step_ms"] for r in rows] == ["-1.5", "-1.5"]  # numbers stay numbers, not text
    write_csv([first], path)
    assert len(path.read_text().splitlines()) == 2


def test_bad_settings_fail_with_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="valid: basic, sop, ioda, lsm"):
        run_bench(TINY, ["gan"], peak_sizes=(128,))
    with pytest.raises(UsageError, match="multiple of 4"):
        BenchSettings(image_size=30)
    with pytest.raises(UsageError, match="valid: cpu, cuda"):
        BenchSettings(device="tpu")


def test_the_reference_step_costs_more_than_lsm_and_sets_the_ratio() -> None:
    """Two forwards and a critic backward through the generators: more FLOPs than the row-only
    LSM step; each row's ``vs_reference`` is the reference's median step time over its own."""
    assert step_flops(TINY, "reference") > 2 * step_flops(TINY, "lsm")
    rows = run_bench(TINY, ["lsm", "reference"], peak_sizes=(128,))
    lsm, ref = rows
    assert ref["stage"] == "two_forwards" and ref["vs_reference"] == 1.0
    assert math.isclose(lsm["vs_reference"], ref["step_ms"] / lsm["step_ms"], rel_tol=0.01)
    assert math.isclose(lsm["conv_fraction"], lsm["achieved_gflops"] / lsm["conv_peak_gflops"], rel_tol=0.02)
