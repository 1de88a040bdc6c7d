"""FLOPs of known layers equal their analytic counts; peaks are computed from the clock as stated."""

import time

import pytest
import torch
from torch import nn

from lsmseg.experiments import flops
from lsmseg.experiments.flops import count_flops, matmul_peak_gflops


def _conv_forward_flops(batch: int, c_in: int, c_out: int, kernel: int, side: int) -> int:
    """2 * B * Cout * Hout * Wout * Cin * k * k (a multiply-add = 2 FLOPs)."""
    return 2 * batch * c_out * side * side * c_in * kernel * kernel


@pytest.mark.parametrize("input_grad", [False, True])
def test_a_conv_training_step_counts_forward_and_the_gradients_it_needs(input_grad: bool) -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    opt = torch.optim.Adam(conv.parameters())
    x = torch.randn(2, 3, 16, 16, requires_grad=input_grad)

    def step() -> None:
        opt.zero_grad()
        conv(x).square().mean().backward()
        opt.step()

    forward = _conv_forward_flops(batch=2, c_in=3, c_out=8, kernel=3, side=16)
    # backward: the weight gradient always, the input gradient only when the input needs one
    assert count_flops(step) == forward * (3 if input_grad else 2)


def test_a_linear_layer_and_a_matmul() -> None:
    a, b = torch.randn(5, 7), torch.randn(7, 3)
    assert count_flops(lambda: a @ b) == 2 * 5 * 7 * 3
    linear = nn.Linear(7, 3)
    assert count_flops(lambda: linear(a)) == 2 * 5 * 7 * 3  # the bias add is element-wise


def test_the_conv_reference_flops_are_those_of_its_shape() -> None:
    b, c, h, w = flops.CONV_SHAPE
    assert flops.CONV_FLOPS == _conv_forward_flops(b, c, c, 3, h) and h == w
    x, weight = torch.randn(b, c, h + 2, w + 2), torch.randn(c, c, 3, 3)
    assert count_flops(lambda: torch.nn.functional.conv2d(x, weight)) == flops.CONV_FLOPS


def test_peaks_divide_the_flops_by_the_fastest_timed_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a clock that advances 1 ms per reading, every run takes 1 ms: a known answer."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(flops, "perf_counter", lambda: next(ticks) * 1e-3)
    assert matmul_peak_gflops("cpu", n=64, seconds=0.01) == pytest.approx(2 * 64**3 / 1e-3 / 1e9)
    assert flops.conv_peak_gflops("cpu", seconds=0.01) == pytest.approx(flops.CONV_FLOPS / 1e-3 / 1e9)


def test_the_machine_peak_is_the_best_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flops, "matmul_peak_gflops", lambda device, n, seconds: {128: 3.0, 256: 5.0}[n])
    assert flops.machine_peak_gflops("cpu", sizes=(128, 256)) == 5.0


def test_the_matmul_peak_is_at_least_a_timed_product() -> None:
    """The best of many products is not slower than one product timed here (a loaded machine
    makes single timings noisy, hence the factor 3 of slack), and stays below 10 PFLOP/s."""
    n = 256
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t0 = time.perf_counter()
    torch.mm(a, b)
    reference = 2 * n**3 / (time.perf_counter() - t0) / 1e9
    peak = matmul_peak_gflops("cpu", n=n, seconds=0.2)
    assert reference / 3 <= peak < 1e7


def test_device_name_of_the_cpu_is_text() -> None:
    assert isinstance(flops.device_name("cpu"), str) and flops.device_name("cpu")
