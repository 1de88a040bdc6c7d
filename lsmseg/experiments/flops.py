"""FLOPs of what a step executes, and the machine's fp32 peaks they are compared with.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`: convolutions,
transposed convolutions and matrix products, forward and backward (a convolution's backward
counts its weight gradient, and its input gradient only when the input needs one), a
multiply-add counting 2. Element-wise work (normalisation, activations, losses, the optimiser)
is not counted: it costs time but no multiply-adds.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

import torch

from lsmseg.engines.device import resolve_device

PEAK_SIZES: tuple[int, ...] = (512, 1024, 2048)  # sides of the square matrices of the matmul peak
# The convolution reference: a 3x3 convolution, 64 -> 64 channels, on 16 maps of 32 x 32
# (the residual blocks at ngf 16, 128 px), input padded to 34 x 34 so the output is 32 x 32.
CONV_SHAPE = (16, 64, 32, 32)  # (B, C, H, W) of the output; C in = C out
CONV_FLOPS = 2.0 * 16 * 64 * 32 * 32 * 64 * 3 * 3  # 2 * B * Cout * H * W * Cin * k * k


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a host clock times it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs (multiply-add = 2) of the matmul / convolution ops ``fn`` executes, forward and backward."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _best_gflops(op: Callable[[], Any], flops: float, device: torch.device, seconds: float) -> float:
    """GFLOP/s of the fastest of ``op`` repeated for ``seconds`` (at least once), after one warm-up."""
    op()
    best = 0.0
    end = perf_counter() + seconds
    while True:
        sync(device)
        t0 = perf_counter()
        op()
        sync(device)
        t1 = perf_counter()
        best = max(best, flops / (t1 - t0) / 1e9)
        if t1 > end:
            return best


def matmul_peak_gflops(device: str = "cpu", n: int = 1024, seconds: float = 1.0) -> float:
    """Dense fp32 matmul throughput in GFLOP/s: the fastest of repeated (n x n) @ (n x n) products
    (2 n^3 FLOPs each) over ``seconds``. Uses the current torch thread count, i.e. what the
    training step can use."""
    dev = resolve_device(device)
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dev)
    b = torch.randn(n, n, generator=g).to(dev)
    out = torch.empty(n, n, device=dev)
    return _best_gflops(lambda: torch.mm(a, b, out=out), 2.0 * n**3, dev, seconds)


def conv_peak_gflops(device: str = "cpu", seconds: float = 1.0) -> float:
    """fp32 throughput in GFLOP/s of the reference 3x3 convolution (:data:`CONV_SHAPE`): the
    fastest of repeated forwards.

    A reference next to the matmul peak: where the BLAS runs a narrower vector path than
    oneDNN's convolutions (MKL runs AVX2 code on AMD CPUs), convolutions can exceed it.
    """
    dev = resolve_device(device)
    b, c, h, w = CONV_SHAPE
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(b, c, h + 2, w + 2, generator=g).to(dev)
    weight = torch.randn(c, c, 3, 3, generator=g).to(dev)
    with torch.inference_mode():
        return _best_gflops(lambda: torch.nn.functional.conv2d(x, weight), CONV_FLOPS, dev, seconds)


def machine_peak_gflops(
    device: str = "cpu", sizes: Sequence[int] = PEAK_SIZES, seconds: float = 1.0
) -> float:
    """The machine's dense fp32 matmul peak: the best of :func:`matmul_peak_gflops` over ``sizes``.

    Several sizes, because the fastest one depends on the machine and its load: large products
    reach the peak on an idle machine, while on a machine shared with other processes only
    short ones (a few ms) run without being preempted and evicted from cache.
    """
    return max(matmul_peak_gflops(device, n, seconds) for n in sizes)


def device_name(device: str) -> str:
    """CPU model (from /proc/cpuinfo where available) or CUDA device name."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(resolve_device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
