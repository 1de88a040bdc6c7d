"""One run of a sweep, in its own process: train a bundle, then test it.

``python -m lsmseg.experiments.run RUN_DIR/spec.json`` trains the bundle (``configs/train.json``)
and tests it (``train.json`` + ``evaluate.json``) in-process through
:class:`monai.bundle.ConfigWorkflow`, with the run's settings as overrides. Training and testing
in the same child halves the interpreter and import start-up that a pair of
``python -m monai.bundle run`` commands would cost.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lsmseg.io.atomic import write_json_atomic

METRIC_NAMES = ("miou", "nrmse")  # what an evaluate.json writes to metrics.json: masks, landmarks


def train_bundle(
    configs: Path, overrides: Mapping[str, Any], attach: Callable[[Any], None] | None = None
) -> dict[str, Any]:
    """Train; return the best epoch (counted over all stages), its validation metric, epochs run.

    ``attach`` receives the initialised workflow before it runs (e.g. to add a handler to
    ``train#trainer`` or ``validate#evaluator``: parsed content is cached, so they are the
    engines that run).
    """
    from monai.bundle import ConfigWorkflow

    train = ConfigWorkflow(config_file=str(configs / "train.json"), workflow_type="train", **overrides)
    train.initialize()
    if attach is not None:
        attach(train)
    train.run()
    state = train.parser.get_parsed_content("train#trainer").state
    best = {
        "best_epoch": int(state.best_metric_epoch),
        "best_metric": float(state.best_metric),
        "epochs": int(state.epoch),
    }
    train.finalize()
    return best


def _test(configs: Path, overrides: Mapping[str, Any]) -> tuple[str, float, float | None]:
    """Test the best checkpoint; return the metric's name, its value and the floor (None when
    the bundle reports none) from ``metrics.json``."""
    from monai.bundle import ConfigWorkflow

    files = [str(configs / "train.json"), str(configs / "evaluate.json")]
    test = ConfigWorkflow(config_file=files, workflow_type=None, **overrides)
    test.initialize()
    test.run()
    test.finalize()
    metrics = json.loads((Path(overrides["output_dir"]) / "metrics.json").read_text())
    name = next((k for k in METRIC_NAMES if k in metrics), None)
    if name is None:
        raise ValueError(f"metrics.json has neither miou nor nrmse: {sorted(metrics)}")
    floor = metrics.get("floor")
    return name, float(metrics[name]), None if floor is None else float(floor)


def train_and_test(spec_path: str | os.PathLike) -> dict[str, Any]:
    """Train then test one bundle run described by ``spec.json``; write and return ``result.json``.

    ``spec.json``: ``{"bundle": DIR, "overrides": {...}}``. The best epoch is the trainer's
    ``state.best_metric_epoch`` (set by the bundle's early stopping); it is written to
    ``<ckpt_dir>/best.json`` with the best validation metric and the epochs trained. Seconds are
    wall time; ``cpu_seconds`` is the process's user + system time (what the run cost whatever
    else shared the machine); ``floor`` is the test score of the best input-independent
    prediction (``metrics.json``, :mod:`lsmseg.engines.floor`).
    """
    spec = json.loads(Path(spec_path).read_text())
    configs, overrides = Path(spec["bundle"]) / "configs", dict(spec["overrides"])
    t0 = time.perf_counter()
    best = train_bundle(configs, overrides)
    write_json_atomic(Path(overrides["ckpt_dir"]) / "best.json", best)
    gc.collect()  # the training workflow's networks and loaders before the test builds its own
    t1 = time.perf_counter()
    name, value, floor = _test(configs, overrides)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "metric_name": name,
        "metric": value,
        "floor": floor,
        "valid_metric": best["best_metric"],
        "best_epoch": best["best_epoch"],
        "epochs": best["epochs"],
        "train_seconds": round(t1 - t0, 2),
        "test_seconds": round(time.perf_counter() - t1, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
    }
    write_json_atomic(Path(spec_path).with_name("result.json"), result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Child entry point: ``python -m lsmseg.experiments.run RUN_DIR/spec.json``; 2 on bad usage."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m lsmseg.experiments.run RUN_DIR/spec.json", file=sys.stderr)
        return 2
    result = train_and_test(args[0])
    print(f"result: {json.dumps(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
