"""Evaluation pieces of the landmark experiment (300-W): NRMSE metric, report, batches, .pts writer.

NRMSE is lower-is-better: the validator that uses ``NrmseHandler`` as its key metric takes
``metric_cmp_fn=lower_is_better`` and ``StagedEarlyStopping(mode="min")``.
Landmarks travel as (B, 136) floats in [0, 1] (interleaved x, y of the square face crop); the
network outputs logits, so the evaluator's postprocessing applies the sigmoid
(``Activationsd(keys="pred", sigmoid=True)``) before any of these read ``pred``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric

from lsmseg.data.landmark_rows import EXTENT, LANDMARKS, NAME, ORIGIN, to_pixels
from lsmseg.data.w300 import write_pts
from lsmseg.engines.metrics import nrmse
from lsmseg.io.atomic import write_json_atomic
from lsmseg.keys import Keys

Convention = Literal["standard", "reference"]


def lower_is_better(current: float, best: float) -> bool:
    """``metric_cmp_fn`` of a validator whose key metric is an error (NRMSE)."""
    return current < best


class NrmseMetric(CumulativeIterationMetric):
    """Per-face NRMSE, buffered over an epoch (and gathered across DDP ranks by MONAI).

    ``y_pred`` and ``y``: (B, 136) landmarks in [0, 1] (after the sigmoid), or lists of (136,).
    ``aggregate()`` returns the mean over every face seen (a 0-d tensor).

    Args:
        convention: ``standard`` (outer eye corners 36/45) or ``reference`` (the LSM reference
            implementation's 37/46, only to compare with its numbers); see ``lsmseg.engines.metrics.nrmse``.
    """

    def __init__(self, convention: Convention = "standard") -> None:
        super().__init__()
        if convention not in ("standard", "reference"):
            raise ValueError(f"NRMSE convention must be 'standard' or 'reference', got {convention!r}")
        self.convention: Convention = convention

    def _compute_tensor(
        self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any
    ) -> torch.Tensor:
        if y is None:
            raise ValueError("NRMSE needs the ground-truth landmarks (y)")
        pred = y_pred.float().reshape(y_pred.shape[0], -1)  # (B, 136)
        target = y.float().reshape(y.shape[0], -1)
        return nrmse(pred, target, convention=self.convention)[:, None]  # (B, 1), as MONAI buffers expect

    def aggregate(self) -> torch.Tensor:
        buffer = self.get_buffer()
        if not isinstance(buffer, torch.Tensor) or buffer.numel() == 0:
            return torch.tensor(float("nan"))
        return buffer.float().mean()

    def count(self) -> int:
        """Number of faces scored so far (all ranks)."""
        buffer = self.get_buffer()
        return int(buffer.shape[0]) if isinstance(buffer, torch.Tensor) else 0


class NrmseHandler(IgniteMetricHandler):
    """Ignite metric of the mean NRMSE, for a validator's ``key_val_metric`` (lower is better).

    Args:
        convention: see :class:`NrmseMetric`.
        output_transform: picks ``(pred, label)`` from the evaluator's decollated output, e.g.
            ``monai.handlers.from_engine(["pred", "label"])``.
        save_details: keep the per-face values in ``engine.state.metric_details``.
    """

    def __init__(
        self,
        convention: Convention = "standard",
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        super().__init__(
            metric_fn=NrmseMetric(convention), output_transform=output_transform, save_details=save_details
        )


class NrmseReport:
    """Mean NRMSE over an evaluator run, written as ``{"nrmse": float, "n": int}`` (metrics.json)
    plus the entries of ``floor`` (``{"floor": NRMSE of the mean training shape}``).

    Reads the evaluator's decollated items ``pred`` and ``label``: (136,) landmarks in [0, 1],
    the prediction after its sigmoid.

    Args:
        path: where metrics.json goes.
        convention: see :class:`NrmseMetric`.
        floor: the floor of the same test split (:func:`lsmseg.engines.floor.landmark_floor`).
    """

    def __init__(
        self, path: str | Path, convention: Convention = "standard", floor: Mapping[str, Any] | None = None
    ) -> None:
        self.path = Path(path)
        self.metric = NrmseMetric(convention)
        self.floor = dict(floor or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self.metric.reset())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._update)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _update(self, engine: Engine) -> None:
        items = _items(engine.state.output)
        pred = torch.stack([torch.as_tensor(i[Keys.PRED]) for i in items])  # (B, 136)
        label = torch.stack([torch.as_tensor(i[Keys.LABEL]) for i in items])
        self.metric(y_pred=pred, y=label)

    def result(self) -> dict:
        """``{"nrmse": mean over faces, "n": faces}`` plus the floor's entries."""
        return {"nrmse": float(self.metric.aggregate()), "n": self.metric.count(), **self.floor}

    def _write(self, engine: Engine) -> None:
        write_json_atomic(self.path, self.result(), allow_nan=True)


class PrepareDomainBatch:
    """``prepare_batch`` of an evaluator on domain-named rows: (x, y) = (batch[source], batch[target]).

    MONAI's default reads ``image`` and ``label``; the landmark rows name their target domain
    ``landmarks``. A batch without the target (inference) gives ``(x, None)``.
    """

    def __init__(self, source: str = Keys.IMAGE, target: str = LANDMARKS) -> None:
        self.source, self.target = source, target

    def __call__(
        self,
        batchdata: Mapping[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = batchdata[self.source].to(device=device, non_blocking=non_blocking, **kwargs)
        y = batchdata.get(self.target)
        if isinstance(y, torch.Tensor):
            return x, y.to(device=device, non_blocking=non_blocking, **kwargs)
        return x, None


class PtsWriter:
    """Writes each predicted face as ``<output_dir>/<name>.pts`` in source-image pixel coordinates.

    Reads, per decollated item, ``pred`` (136,) in [0, 1] from the evaluator output and ``name``,
    ``origin`` (x0, y0) and ``extent`` (width, height) of the crop from the batch (rows of
    ``lsmseg.data.landmark_rows.face_inputs``); the file holds 1-based pixel coordinates, as 300-W.

    Args:
        output_dir: folder of the .pts files (created).
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        if isinstance(batch, Mapping) or isinstance(output, Mapping):
            raise RuntimeError("PtsWriter needs a decollating evaluator (decollate=True)")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for row, item in zip(_items(batch), _items(output), strict=True):
            pred = np.asarray(torch.as_tensor(item[Keys.PRED]).detach().float().cpu())  # (136,)
            origin = np.asarray(torch.as_tensor(row[ORIGIN]).cpu())
            extent = np.asarray(torch.as_tensor(row[EXTENT]).cpu())
            write_pts(self.output_dir / f"{row[NAME]}.pts", to_pixels(pred, origin, extent))


def _items(data: Any) -> Sequence[Mapping[str, Any]]:
    """An engine's batch or output as a list of per-item dicts (one dict is one item)."""
    if isinstance(data, Mapping):
        return [data]
    if not isinstance(data, (list, tuple)):
        raise RuntimeError(f"expected decollated items, got {type(data).__name__}")
    return data
