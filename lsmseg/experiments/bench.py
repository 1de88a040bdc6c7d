"""Training-step throughput of the LSM methods: samples/s, FLOPs and the fraction of the matmul peak.

What is timed is :meth:`lsmseg.engines.SemiSupervisedTrainer._iteration` as the engine runs it (one forward,
the critic update on detached codes when the stage is adversarial, the generator update) on a fixed
synthetic SIT batch, pinned on CUDA like a ``pin_memory`` loader's (its copy is timed, data loading is not);
the first ``warmup`` steps (allocator, oneDNN primitive caches, ``torch.compile``) are not timed.

FLOPs are those of the step as executed (:mod:`lsmseg.experiments.flops`), counted on an eager
copy of the step. ``peak_fraction`` divides the achieved FLOP/s by the fp32 dense matmul peak
measured in the same process with the same threads.

IODA has three stages; its ``ioda`` row is the fine-tune stage (the x -> y translation, the
stage that is scored); ``all_stages`` adds rows for its two auto-encoder pre-training stages.

``reference`` times the authors' LSM step (:mod:`lsmseg.experiments.reference`) on the same
networks, batch and threads: ``vs_reference`` (its step time over a row's) is measured side by
side. ``conv_fraction``: achieved FLOP rate over the oneDNN convolution rate of the same run.
"""

from __future__ import annotations

import csv
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lsmseg.engines.device import resolve_device
from lsmseg.errors import UsageError
from lsmseg.experiments.flops import (
    PEAK_SIZES,
    conv_peak_gflops,
    count_flops,
    device_name,
    machine_peak_gflops,
    sync,
)
from lsmseg.io.atomic import write_csv_atomic
from lsmseg.keys import Keys, Mode

# Columns of the CSV ``lsmseg bench`` writes, in order (DESIGN.md contract first).
BENCH_COLUMNS: tuple[str, ...] = (
    "method",
    "stage",
    "device",
    "device_name",
    "torch_threads",
    "ngf",
    "ndf",
    "image_size",
    "batch_size",
    "amp",
    "channels_last",
    "compile",
    "nhwc_head",
    "steps",
    "samples_per_s",
    "step_ms",
    "step_ms_min",
    "step_cpu_ms",
    "cpu_util",
    "gflops_per_step",
    "achieved_gflops",
    "peak_gflops",
    "peak_fraction",
    "conv_peak_gflops",
    "conv_fraction",
    "vs_reference",
    "infer_ms_per_slice",
    "infer_ms_per_slice_batched",
    "load_1m",
    "torch_version",
)

REFERENCE = "reference"  # the authors' LSM step, timed beside the methods
BENCH_METHODS: tuple[str, ...] = ("basic", "sop", "ioda", "lsm", REFERENCE)


@dataclass(frozen=True)
class BenchSettings:
    """One benchmark configuration.

    Attributes:
        device: ``cpu`` or ``cuda``.
        ngf: generator width (paper 64).
        ndf: latent critic width (reference 64).
        image_size: side of the square images in pixels (paper 128).
        batch_size: rows per step (paper 16).
        steps: timed steps per method.
        warmup: untimed steps before them.
        amp: bf16 autocast (fp16 with loss scaling on GPUs without bf16).
        channels_last: NHWC tensors and weights (the trainer's ``channels_last``).
        compile: ``torch.compile`` the generators (warm-up then includes the compilation).
        nhwc_head: the decoders' output convolutions in NHWC (``ResnetDecoder``).
        paired_fraction: share of paired rows in the batch; the rest is split evenly into
            x-only and y-only rows, so every loss term of every method is live.
        seed: seed of the synthetic batch and the weights.
    """

    device: str = "cpu"
    ngf: int = 64
    ndf: int = 64
    image_size: int = 128
    batch_size: int = 16
    steps: int = 10
    warmup: int = 3
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    nhwc_head: bool = False
    paired_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise UsageError(f"unknown device {self.device!r}; valid: cpu, cuda")
        for name in ("ngf", "ndf", "image_size", "batch_size", "steps"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise UsageError(f"warmup must be >= 0, got {self.warmup}")
        if self.image_size % 4:
            raise UsageError(
                f"image_size must be a multiple of 4 (two stride-2 steps), got {self.image_size}"
            )
        if not 0.0 < self.paired_fraction <= 1.0:
            raise UsageError(f"paired_fraction must be in (0, 1], got {self.paired_fraction}")


def check_methods(methods: Sequence[str]) -> list[str]:
    """Validate method names against :func:`lsmseg.methods.method_stages` (the error lists the valid ones)."""
    from lsmseg.methods.terms import method_stages

    for m in methods:
        if m != REFERENCE:
            method_stages(m, ["x", "y"])
    if not methods:
        raise UsageError("no method given")
    return list(methods)


def make_network(settings: BenchSettings) -> Any:
    """The SIT network of ``bundles/lsm_sit``: image (1 channel) -> ring mask (2 classes)."""
    from lsmseg.methods import Domain, LatentSpaceMapping

    torch.manual_seed(settings.seed)
    return LatentSpaceMapping(
        [Domain(Keys.IMAGE, "image", 1), Domain(Keys.LABEL, "mask", 2)],
        ngf=settings.ngf,
        ndf=settings.ndf,
        image_size=settings.image_size,
        nhwc_head=settings.nhwc_head,
    )


def synthetic_batch(settings: BenchSettings) -> dict[str, torch.Tensor]:
    """One collated SIT batch: ``image`` (B, 1, S, S) float32, ``label`` (B, 1, S, S) int64, ``mode`` (B,).

    Rows are paired, x-only and y-only in the proportions of ``paired_fraction``; hidden views
    are zero-filled as in :func:`lsmseg.data.sit.make_rows`.
    """
    from lsmseg.data.sit import generate_sit

    b = settings.batch_size
    x, y = generate_sit(b, size=settings.image_size, seed=settings.seed)
    n_paired = max(1, round(settings.paired_fraction * b))
    n_x_only = (b - n_paired + 1) // 2
    modes = [Mode.PAIRED] * n_paired + [Mode.X_ONLY] * n_x_only
    modes += [Mode.Y_ONLY] * (b - len(modes))
    has_x = torch.tensor([m.has_x for m in modes]).view(b, 1, 1, 1)
    has_y = torch.tensor([m.has_y for m in modes]).view(b, 1, 1, 1)
    return {
        Keys.IMAGE: torch.as_tensor(x) * has_x,
        Keys.LABEL: torch.as_tensor(y) * has_y,
        Keys.MODE: torch.tensor([int(m) for m in modes]),
    }


def device_batch(settings: BenchSettings) -> dict[str, torch.Tensor]:
    """:func:`synthetic_batch`, pinned on CUDA as a DataLoader with ``pin_memory=True`` gives it
    (its copy to the device is then asynchronous); what the timed and profiled steps run on."""
    batch = synthetic_batch(settings)
    return {k: v.pin_memory() for k, v in batch.items()} if settings.device == "cuda" else batch


def make_trainer(
    settings: BenchSettings, method: str, network: Any, batches: list[dict], stage: int | None = None
) -> Any:
    """A :class:`SemiSupervisedTrainer` that runs one epoch over ``batches`` in stage ``stage``.

    ``stage`` None picks the method's last stage (IODA's fine-tune).
    """
    from ignite.engine import Events

    from lsmseg.engines import SemiSupervisedTrainer

    device = resolve_device(settings.device)
    trainer = SemiSupervisedTrainer(
        device,
        max_epochs=1,
        train_data_loader=batches,
        network=network,
        method=method,
        amp=settings.amp,
        channels_last=settings.channels_last,
        compile=settings.compile,
    )
    target = len(trainer.stages) - 1 if stage is None else stage
    for _ in range(target):
        trainer.next_stage()
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.terminate())
    return trainer


@dataclass(frozen=True)
class StepTimes:
    """Wall-clock and process CPU seconds of each timed step.

    CPU time counts every thread of the process (including OpenMP threads spinning at a
    barrier); on a machine shared with other processes it still counts only the time the
    step really ran, so for one thread ``cpu`` estimates what ``wall`` would be on an idle machine.
    """

    wall: list[float]
    cpu: list[float]


def time_steps(settings: BenchSettings, method: str, stage: int | None = None) -> tuple[StepTimes, Any]:
    """Run ``warmup + steps`` training steps; return the timed ones and the network."""
    from ignite.engine import Events

    if method == REFERENCE:
        from lsmseg.experiments.reference import time_reference_steps

        step, batch = _reference(settings)
        wall, cpu = time_reference_steps(step, batch, settings.warmup, settings.steps, settings.amp)
        return StepTimes(wall, cpu), step.network
    device = resolve_device(settings.device)
    network = make_network(settings)
    batch = device_batch(settings)
    trainer = make_trainer(settings, method, network, [batch] * (settings.warmup + settings.steps), stage)
    starts: list[tuple[float, float]] = []
    times = StepTimes([], [])

    def started(engine: Any) -> None:
        sync(device)
        starts.append((time.perf_counter(), time.process_time()))

    def completed(engine: Any) -> None:
        sync(device)
        if engine.state.iteration > settings.warmup:
            times.wall.append(time.perf_counter() - starts[-1][0])
            times.cpu.append(time.process_time() - starts[-1][1])

    trainer.add_event_handler(Events.ITERATION_STARTED, started)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, completed)
    trainer.run()
    return times, network


def _reference(settings: BenchSettings) -> tuple[Any, dict[str, torch.Tensor]]:
    """The authors' step on a fresh network on the device, and the batch there."""
    from lsmseg.experiments.reference import placed

    device = resolve_device(settings.device)
    return placed(make_network(settings), synthetic_batch(settings), device, settings.channels_last)


def step_flops(settings: BenchSettings, method: str, stage: int | None = None) -> int:
    """FLOPs of one training step as executed, counted on an eager (uncompiled) trainer."""
    eager = BenchSettings(**{**asdict(settings), "compile": False, "warmup": 0, "steps": 1})
    if method == REFERENCE:
        step, batch = _reference(eager)
        return count_flops(lambda: step(batch))
    network = make_network(eager)
    trainer = make_trainer(eager, method, network, [synthetic_batch(eager)], stage)
    return count_flops(trainer.run)


def inference_ms(settings: BenchSettings, network: Any, reps: int = 5) -> tuple[float, float]:
    """Latency of the translation x -> y (``network(x)``, logits) under inference mode.

    Returns:
        (milliseconds for one slice at batch 1, milliseconds per slice at ``batch_size``), each
        the median of ``reps`` runs after one warm-up.
    """
    device = resolve_device(settings.device)
    x = synthetic_batch(settings)[Keys.IMAGE].to(device)
    if settings.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    network.eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.amp)

    def median_ms(inputs: torch.Tensor) -> float:
        runs = []
        with torch.inference_mode(), autocast:
            for i in range(reps + 1):
                sync(device)
                t0 = time.perf_counter()
                network(inputs)
                sync(device)
                if i:
                    runs.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(runs)

    single = median_ms(x[:1])
    batched = median_ms(x) / x.shape[0]
    network.train()
    return single, batched


@dataclass(frozen=True)
class Measurement:
    """What :func:`measure_method` saw: step times, FLOPs per step and inference latency (ms)."""

    method: str
    stage: str
    times: StepTimes
    flops: int
    infer_ms: float
    infer_ms_batched: float


def measure_method(
    settings: BenchSettings, method: str, stage: int | None = None, flops: int | None = None
) -> Measurement:
    """Time a method's training step and its inference; count the step's FLOPs unless given."""
    from lsmseg.methods.terms import method_stages

    stages = method_stages("lsm" if method == REFERENCE else method, [Keys.IMAGE, Keys.LABEL])
    times, network = time_steps(settings, method, stage)
    single_ms, batched_ms = inference_ms(settings, network)
    if flops is None:
        flops = step_flops(settings, method, stage)
    name = "two_forwards" if method == REFERENCE else stages[-1 if stage is None else stage].name
    return Measurement(method, name, times, flops, single_ms, batched_ms)


def best_of(a: Measurement | None, b: Measurement) -> Measurement:
    """The round with the faster median step, with the lower inference latencies of both."""
    if a is None:
        return b
    fast = a if statistics.median(a.times.wall) <= statistics.median(b.times.wall) else b
    return replace(
        fast,
        infer_ms=min(a.infer_ms, b.infer_ms),
        infer_ms_batched=min(a.infer_ms_batched, b.infer_ms_batched),
    )


def to_row(
    settings: BenchSettings,
    m: Measurement,
    peak_gflops: float,
    conv_peak: float,
    reference_step_s: float | None = None,
) -> dict[str, Any]:
    """One CSV row (:data:`BENCH_COLUMNS`); times from the median step.

    ``cpu_util`` is the step's CPU time over its wall time times the threads: near 1 the wall
    times are the machine's own; well below 1 other processes took the rest (shared machine).
    ``vs_reference``: the reference's median step time over this one's (empty without one).
    """
    step_s = statistics.median(m.times.wall)
    cpu_s = statistics.median(m.times.cpu)
    threads = torch.get_num_threads() if settings.device == "cpu" else 1
    achieved = m.flops / step_s / 1e9
    return {
        "method": m.method,
        "stage": m.stage,
        "device": settings.device,
        "device_name": device_name(settings.device),
        "torch_threads": torch.get_num_threads(),
        "ngf": settings.ngf,
        "ndf": settings.ndf,
        "image_size": settings.image_size,
        "batch_size": settings.batch_size,
        "amp": settings.amp,
        "channels_last": settings.channels_last,
        "compile": settings.compile,
        "nhwc_head": settings.nhwc_head,
        "steps": len(m.times.wall),
        "samples_per_s": round(settings.batch_size / step_s, 3),
        "step_ms": round(step_s * 1e3, 2),
        "step_ms_min": round(min(m.times.wall) * 1e3, 2),
        "step_cpu_ms": round(cpu_s * 1e3, 2),
        "cpu_util": round(cpu_s / (step_s * threads), 3),
        "gflops_per_step": round(m.flops / 1e9, 3),
        "achieved_gflops": round(achieved, 2),
        "peak_gflops": round(peak_gflops, 2),
        "peak_fraction": round(achieved / peak_gflops, 4),
        "conv_peak_gflops": round(conv_peak, 2),
        "conv_fraction": round(achieved / conv_peak, 4),
        "vs_reference": round(reference_step_s / step_s, 3) if reference_step_s else "",
        "infer_ms_per_slice": round(m.infer_ms, 3),
        "infer_ms_per_slice_batched": round(m.infer_ms_batched, 3),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else "",
        "torch_version": torch.__version__,
    }


def format_row(row: dict[str, Any]) -> str:
    """A one-line human summary of a row."""
    return (
        f"{row['method']:>6} [{row['stage']}]: {row['samples_per_s']:8.2f} samples/s, "
        f"{row['step_ms']:9.1f} ms/step ({row['step_cpu_ms']:.0f} CPU ms, util {row['cpu_util']:.2f}), "
        f"{row['gflops_per_step']:8.2f} GFLOP/step, "
        f"{100 * row['peak_fraction']:5.1f} % of {row['peak_gflops']:.0f} GFLOP/s mm, "
        f"{100 * row['conv_fraction']:5.1f} % of {row['conv_peak_gflops']:.0f} conv, "
        f"inference {row['infer_ms_per_slice']:.2f} ms/slice"
    )


def run_bench(
    settings: BenchSettings,
    methods: Sequence[str] = BENCH_METHODS,
    all_stages: bool = False,
    log: Callable[[str], None] | None = None,
    peak_sizes: Sequence[int] = PEAK_SIZES,
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """Benchmark each method: one row per method (plus IODA's pre-training stages with ``all_stages``).

    Each of ``rounds`` rounds times every method once (``warmup`` + ``steps`` steps in a fresh
    trainer); a method's row is its round with the fastest median step. Rounds go over all
    methods in turn, so a burst of load from other processes on a shared machine spoils one
    round of a method rather than all of them. The matmul peak (:func:`machine_peak_gflops`
    over ``peak_sizes``) and the convolution reference are measured before and after the
    rounds, the higher value kept, for the same reason.
    """
    from lsmseg.methods.terms import method_stages

    check_methods(methods)
    resolve_device(settings.device)
    if rounds < 1:
        raise UsageError(f"rounds must be >= 1, got {rounds}")
    peak = machine_peak_gflops(settings.device, peak_sizes)
    conv_peak = conv_peak_gflops(settings.device)
    jobs: list[tuple[str, int | None]] = []
    for m in methods:
        n_stages = 1 if m == REFERENCE else len(method_stages(m, [Keys.IMAGE, Keys.LABEL]))
        jobs += [(m, i) for i in range(n_stages)] if all_stages and n_stages > 1 else [(m, None)]
    best: dict[tuple[str, int | None], Measurement] = {}
    for r in range(rounds):
        for method, stage in jobs:
            known = best.get((method, stage))
            this = measure_method(settings, method, stage, flops=known.flops if known else None)
            best[method, stage] = best_of(known, this)
            if log:
                log(f"round {r + 1}/{rounds} " + format_row(to_row(settings, this, peak, conv_peak)))
    peak = max(peak, machine_peak_gflops(settings.device, peak_sizes))
    conv_peak = max(conv_peak, conv_peak_gflops(settings.device))
    ref = best.get((REFERENCE, None))
    ref_s = statistics.median(ref.times.wall) if ref else None
    return [to_row(settings, best[job], peak, conv_peak, ref_s) for job in jobs]


def _typed(text: str) -> Any:
    """A CSV cell as int or float when it is a number (written again, -1.5 stays a number)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def write_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike, append: bool = False) -> Path:
    """Write rows with :data:`BENCH_COLUMNS` (atomically); ``append`` keeps the rows already there."""
    old: list[dict[str, Any]] = []
    if append and Path(path).is_file():
        with open(path, newline="", encoding="utf-8") as f:
            old = [{k: _typed(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return write_csv_atomic(path, BENCH_COLUMNS, [*old, *rows])
