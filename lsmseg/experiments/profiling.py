"""Profiles of the training step: ``torch.profiler`` over steps after the warm-up, as
``lsmseg bench --profile`` prints them and ``benchmarks/step_ops.py`` counts them."""

from __future__ import annotations

import time
from typing import Any

from lsmseg.engines.device import resolve_device
from lsmseg.experiments.bench import BenchSettings, device_batch, make_network, make_trainer
from lsmseg.experiments.flops import sync


def profiled_steps(
    settings: BenchSettings, method: str, steps: int, stage: int | None = None
) -> tuple[Any, float]:
    """``method``'s training step as the trainer runs it (on :func:`device_batch`), profiled over
    ``steps`` steps after ``settings.warmup`` unprofiled ones (CPU, and CUDA on a GPU).

    Returns:
        The stopped ``torch.profiler.profile`` and the wall seconds of the profiled steps (the
        device synchronised at both ends; inflated by the profiler).
    """
    from ignite.engine import Events
    from torch.profiler import ProfilerActivity, profile

    device = resolve_device(settings.device)
    batches = [device_batch(settings)] * (settings.warmup + steps)
    trainer = make_trainer(settings, method, make_network(settings), batches, stage)
    prof = profile(
        activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if device.type == "cuda" else [])]
    )
    clock: list[float] = []

    def started(engine: Any) -> None:
        if engine.state.iteration == settings.warmup + 1:
            sync(device)
            prof.start()
            clock.append(time.perf_counter())

    def completed(engine: Any) -> None:
        if engine.state.iteration == settings.warmup + steps:
            sync(device)
            clock.append(time.perf_counter())
            prof.stop()

    trainer.add_event_handler(Events.ITERATION_STARTED, started)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, completed)
    trainer.run()
    return prof, clock[1] - clock[0]


def profile_step(
    settings: BenchSettings, method: str, steps: int = 3, row_limit: int = 30, stage: int | None = None
) -> str:
    """torch.profiler tables of ``steps`` steps after the warm-up: top ops by host time, then CUDA time."""
    prof, _ = profiled_steps(settings, method, steps, stage)
    sorts = ["self_cpu_time_total", "self_cuda_time_total"][: 2 if settings.device == "cuda" else 1]
    return "\n".join(str(prof.key_averages().table(sort_by=sort, row_limit=row_limit)) for sort in sorts)
