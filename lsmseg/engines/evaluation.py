"""Evaluation helpers: the metrics.json report of a test split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.metrics import MeanIoU

from lsmseg.io.atomic import write_json_atomic


def iou_metric() -> MeanIoU:
    """The IoU of every mask evaluation: per image and foreground class, images whose ground
    truth lacks a class left out of that class, averaged over images per class."""
    return MeanIoU(include_background=False, reduction="mean_batch", ignore_empty=True)


def mean_iou(per_class: Any) -> float:
    """mIoU: the mean of the finite (C - 1,) per-class IoUs of :func:`iou_metric` (which gives 0,
    not NaN, to a class that no image has); ``per_class`` is what its ``aggregate()`` returns."""
    finite = [float(v) for v in torch.as_tensor(per_class).reshape(-1) if v == v]
    return sum(finite) / len(finite) if finite else float("nan")


class IoUReport:
    """Per-class IoU over an evaluator run, written as ``{"miou", "iou": {class: value}, "n"}``
    plus the entries of ``floor`` (``{"floor": ..., ...}``, see :mod:`lsmseg.engines.floor`).

    Expects the evaluator's decollated output items to hold one-hot ``pred`` and ``label``
    (C, H, W) (after ``AsDiscreted``). IoU is computed per image and averaged over images
    (MONAI ``MeanIoU``); ``miou`` is the mean over the foreground classes.

    Args:
        path: where metrics.json goes.
        class_names: names of all classes, background first.
        floor: the floor of the same test split (:func:`lsmseg.engines.floor.mask_floor`).
    """

    def __init__(
        self, path: str | Path, class_names: Sequence[str], floor: Mapping[str, Any] | None = None
    ) -> None:
        self.path = Path(path)
        self.class_names = list(class_names)
        self.floor = dict(floor or {})
        self.metric = iou_metric()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self.metric.reset())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._update)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _update(self, engine: Engine) -> None:
        output: Any = engine.state.output
        items = [output] if isinstance(output, dict) else list(output)
        pred = torch.stack([i["pred"] for i in items])
        label = torch.stack([i["label"] for i in items])
        self.metric(y_pred=pred, y=label)

    def result(self) -> dict:
        per_class = self.metric.aggregate()
        values = [float(v) for v in torch.as_tensor(per_class).reshape(-1)]
        names = self.class_names[1:]
        n = int(self.metric.get_buffer().shape[0]) if self.metric.get_buffer() is not None else 0
        return {
            "miou": mean_iou(per_class),
            "iou": dict(zip(names, values, strict=True)),
            "n": n,
            **self.floor,
        }

    def _write(self, engine: Engine) -> None:
        write_json_atomic(self.path, self.result(), allow_nan=True)
