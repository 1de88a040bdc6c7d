"""Host work per training step: how many ops, copies and autograd nodes one step dispatches.

On a GPU the LSM step is host-bound (issue 12: ~45 ms of wall time for ~12 ms of CUDA time at
ngf 16), so what a step costs there is mostly how many ops the host dispatches. This counts them
with ``torch.profiler`` over ``--steps`` training steps after ``--warmup`` untimed ones, for the
trainer's steps (``lsmseg.experiments.bench.make_trainer``, the step ``lsmseg bench`` times) and
the authors' reference step, and prints one row per method (counts per step):

- ``aten_ops``: every ``aten::`` op (nested ones included); ``to_calls``: ``aten::to``, each
  request to move or convert a tensor (on the CPU a move to the CPU is such a call that copies
  nothing, so it counts the host-to-device copies a GPU would make, plus dtype conversions);
  ``to_copy`` / ``copy``: ``aten::_to_copy`` / ``aten::copy_``; ``empty``: allocations;
- ``autograd_nodes``: backward functions run; ``copy_slices``: ``CopySlices`` nodes (an
  in-place op on a view of a tensor that requires grad);
- ``memcpy`` / ``launches`` (CUDA only): ``cudaMemcpyAsync`` and kernel launches;
- ``host_ms``: profiled host time per step (inflated by the profiler; compare like with like).

    OMP_NUM_THREADS=1 python benchmarks/step_ops.py                         # CPU proxy, 64 px
    python benchmarks/step_ops.py --device cuda --ngf 16 --image-size 128 --out /tmp/ops.csv

The counts do not depend on the image size or width, only the host time does.
"""

from __future__ import annotations

import argparse
import collections
import csv
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lsmseg.engines.device import resolve_device  # noqa: E402
from lsmseg.experiments.bench import REFERENCE, BenchSettings, make_network, synthetic_batch  # noqa: E402
from lsmseg.experiments.flops import sync  # noqa: E402
from lsmseg.experiments.profiling import profiled_steps  # noqa: E402

COLUMNS = (
    "method",
    "device",
    "steps",
    "aten_ops",
    "to_calls",
    "to_copy",
    "copy",
    "empty",
    "autograd_nodes",
    "copy_slices",
    "memcpy",
    "launches",
    "host_ms",
)


def count(events: Any, steps: int, host_s: float) -> dict[str, float]:
    """Per-step counts of a profile's events (module docstring)."""
    names = collections.Counter(e.name for e in events)

    def total(pred: Callable[[str], bool]) -> float:
        return round(sum(n for k, n in names.items() if pred(k)) / steps, 1)

    return {
        "aten_ops": total(lambda k: k.startswith("aten::")),
        "to_calls": total(lambda k: k == "aten::to"),
        "to_copy": total(lambda k: k == "aten::_to_copy"),
        "copy": total(lambda k: k == "aten::copy_"),
        "empty": total(lambda k: k in ("aten::empty", "aten::empty_strided")),
        "autograd_nodes": total(lambda k: k.startswith("autograd::engine::evaluate_function")),
        "copy_slices": total(
            lambda k: k == "autograd::engine::evaluate_function: torch::autograd::CopySlices"
        ),
        "memcpy": total(lambda k: k == "cudaMemcpyAsync"),
        "launches": total(lambda k: k.startswith("cudaLaunchKernel")),
        "host_ms": round(host_s * 1e3 / steps, 2),
    }


def profile_trainer(settings: BenchSettings, method: str) -> dict[str, float]:
    """Counts per step of ``method``'s training step as the trainer runs it."""
    prof, host_s = profiled_steps(settings, method, settings.steps)
    return count(prof.events(), settings.steps, host_s)


def profile_reference(settings: BenchSettings) -> dict[str, float]:
    """Counts per step of the authors' step (``lsmseg.experiments.reference``)."""
    from lsmseg.experiments.reference import placed

    device = resolve_device(settings.device)
    step, batch = placed(make_network(settings), synthetic_batch(settings), device, settings.channels_last)
    for _ in range(settings.warmup):
        step(batch)
    prof = profile(
        activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if device.type == "cuda" else [])]
    )
    sync(device)
    with prof:
        t0 = time.perf_counter()
        for _ in range(settings.steps):
            step(batch)
        sync(device)
        host_s = time.perf_counter() - t0
    return count(prof.events(), settings.steps, host_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--methods", default="basic,lsm,reference")
    parser.add_argument("--ngf", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="CSV to write (default: print only)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = BenchSettings(
        device=args.device,
        ngf=args.ngf,
        ndf=args.ngf,
        image_size=args.image_size,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
    )
    rows = []
    for method in args.methods.split(","):
        counts = profile_reference(settings) if method == REFERENCE else profile_trainer(settings, method)
        rows.append({"method": method, "device": args.device, "steps": args.steps, **counts})
        print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
