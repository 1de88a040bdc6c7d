"""The benchmark counts what it claims: FLOPs of known layers, batches of known modes, sane rows."""

import math

import pytest
import torch
from torch import nn

from lsmseg.bench import (
    BENCH_COLUMNS,
    BenchSettings,
    conv2d_flops,
    count_flops,
    matmul_peak_gflops,
    measure_method,
    run_bench,
    step_flops,
    synthetic_batch,
    to_row,
    write_csv,
)
from lsmseg.keys import Keys, Mode

TINY = BenchSettings(ngf=4, ndf=4, image_size=32, batch_size=4, steps=2, warmup=1)


@pytest.mark.parametrize("input_grad", [False, True])
def test_flops_of_a_conv_layer_step_match_the_analytic_count(input_grad: bool) -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    opt = torch.optim.Adam(conv.parameters())
    x = torch.randn(2, 3, 16, 16, requires_grad=input_grad)

    def step() -> None:
        opt.zero_grad()
        conv(x).square().mean().backward()
        opt.step()

    forward = conv2d_flops(batch=2, in_channels=3, out_channels=8, kernel=3, out_size=16)
    assert forward == 2 * 2 * 8 * 16 * 16 * 3 * 9
    # backward: the weight gradient always, the input gradient only when the input needs one
    assert count_flops(step) == forward * (3 if input_grad else 2)


def test_flops_of_a_matmul() -> None:
    a, b = torch.randn(5, 7), torch.randn(7, 3)
    assert count_flops(lambda: a @ b) == 2 * 5 * 7 * 3


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


def test_ioda_stage_is_named_in_the_row() -> None:
    m = measure_method(TINY, "ioda", stage=1)
    assert m.stage == "pretrain_y" and len(m.times.wall) == len(m.times.cpu) == TINY.steps
    row = to_row(TINY, m, peak_gflops=100.0, conv_peak=100.0)
    assert row["stage"] == "pretrain_y" and row["steps"] == TINY.steps


def test_run_bench_rows_are_complete_and_sane(tmp_path) -> None:
    rows = run_bench(TINY, ["basic", "lsm"], peak_sizes=(128, 256), rounds=2)
    assert [r["method"] for r in rows] == ["basic", "lsm"]
    for r in rows:
        assert set(BENCH_COLUMNS) == set(r)
        assert r["samples_per_s"] > 0 and r["step_ms"] > 0 and r["gflops_per_step"] > 0
        assert 0 < r["peak_fraction"] < 2
        assert r["infer_ms_per_slice"] > 0 and r["conv_peak_gflops"] > 0
        assert 0 < r["cpu_util"] <= 1.2 and r["step_cpu_ms"] > 0
        assert math.isclose(r["samples_per_s"], TINY.batch_size / (r["step_ms"] / 1e3), rel_tol=1e-3)
    path = write_csv(rows, tmp_path / "b.csv")
    write_csv(rows[:1], path, append=True)
    assert len(path.read_text().strip().splitlines()) == 1 + 3


def test_matmul_peak_is_positive() -> None:
    assert matmul_peak_gflops("cpu", n=256, seconds=0.1) > 0


def test_bad_settings_fail_with_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="valid: basic, sop, ioda, lsm"):
        run_bench(TINY, ["gan"], peak_sizes=(128, 256))
    with pytest.raises(ValueError, match="multiple of 4"):
        BenchSettings(image_size=30)
