"""The floor of an evaluation: the best prediction that ignores its input.

A model that outputs the same mask (or landmark vector) for every image has learnt nothing from
the image; its test score is the floor a trained model must clear to have learnt anything. The
floor is built from the training labels only (the rows that carry a label: paired and y-only),
its one free setting is tuned on the validation split, and it is scored on the test split with
the same metric as the model.

- Masks, 2 classes: the mean training mask (the per-pixel foreground frequency), thresholded.
  Every distinct value of the mean is tried as threshold (``mean >= t``: every prediction a
  threshold can make, exactly once); the best on validation is scored on test.
- Masks, C > 2 classes: the per-pixel argmax of the class-frequency map after scaling each
  foreground class's frequency by a factor (background 1), so a rare class is not always out-
  voted. The factors come from coordinate ascent on the validation score over the grid
  :data:`SCALES` (start: all 1, the plain argmax; each round tries every factor for each class
  in turn, the others held; stop when a round changes nothing, at most :data:`ROUNDS` rounds).
  The validation score can only rise from the plain argmax's.
- Landmarks: the mean training landmark vector, no free setting (lower NRMSE is better).

Scores are those of :class:`lsmseg.engines.evaluation.IoUReport` (MONAI ``MeanIoU`` per image
without background, images with an empty class left out of that class, classes averaged) and
:func:`lsmseg.engines.metrics.mean_shape_nrmse`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from lsmseg.engines.evaluation import iou_metric, mean_iou
from lsmseg.engines.metrics import mean_shape_nrmse
from lsmseg.keys import Keys, Mode

SCALES = tuple(float(s) for s in 2.0 ** np.arange(-4.0, 4.5, 0.5))  # per-class factors, 1/16 .. 16
ROUNDS = 3  # coordinate-ascent rounds at most (each: every factor for every foreground class)


def _labelled(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Training rows that carry a label (paired and y-only)."""
    return [r for r in rows if Mode(int(r[Keys.MODE])).has_y]


def _masks(rows: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """(N, H, W) int64 class maps of rows whose label is (1, H, W)."""
    return torch.stack([torch.as_tensor(np.asarray(r[Keys.LABEL]))[0] for r in rows]).long()


def score_constant(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> float:
    """mIoU of one (H, W) class map predicted for every (N, H, W) label map, as IoUReport scores."""
    metric = iou_metric()
    onehot = torch.nn.functional.one_hot(labels, n_classes).permute(0, 3, 1, 2).float()  # (N, C, H, W)
    pred_onehot = torch.nn.functional.one_hot(pred, n_classes).permute(2, 0, 1).float()  # (C, H, W)
    metric(y_pred=pred_onehot.expand_as(onehot), y=onehot)
    return mean_iou(metric.aggregate())


def _binary(mean_fg: torch.Tensor, valid: torch.Tensor) -> tuple[float, float]:
    """(threshold, validation score) of the best superlevel set ``mean_fg >= t``."""
    best = (0.0, -1.0)
    for t in torch.unique(mean_fg).tolist():
        score = score_constant((mean_fg >= t).long(), valid, 2)
        if score > best[1]:
            best = (float(t), score)
    return best


def _scaled(freq: torch.Tensor, valid: torch.Tensor) -> tuple[list[float], float]:
    """(per-class factors, validation score) of the argmax of ``factors * freq`` ((C, H, W) freq)."""
    n_classes = freq.shape[0]
    scales = [1.0] * n_classes

    def score(s: list[float]) -> float:
        return score_constant(torch.argmax(torch.tensor(s)[:, None, None] * freq, dim=0), valid, n_classes)

    best = score(scales)
    for _ in range(ROUNDS):
        changed = False
        for c in range(1, n_classes):
            for s in SCALES:
                trial = [*scales[:c], s, *scales[c + 1 :]]
                value = score(trial)
                if value > best:
                    scales, best, changed = trial, value, True
        if not changed:
            break
    return scales, best


def mask_floor(rows: Mapping[str, Sequence[Mapping[str, Any]]], class_names: Sequence[str]) -> dict[str, Any]:
    """Floor of a mask bundle: the best input-independent mask, scored on ``rows["test"]``.

    Args:
        rows: the bundle's ``rows``: ``{"train", "valid", "test"}``, each row with ``label``
            (1, H, W) integer class map and ``mode`` (int :class:`Mode`).
        class_names: all classes, background first (C = their number).

    Returns:
        2 classes: ``{"floor": test mIoU, "floor_threshold": t}`` (prediction ``mean >= t``);
        C > 2: ``{"floor": test mIoU, "floor_scales": {class: factor}}`` (see the module docstring).

    Raises:
        ValueError: no training row carries a mask.
    """
    train = _labelled(rows["train"])
    if not train:
        raise ValueError("no training row carries a mask: the floor needs training labels")
    n_classes = len(class_names)
    onehot = torch.nn.functional.one_hot(_masks(train), n_classes).double()  # (N, H, W, C)
    freq = onehot.mean(0).permute(2, 0, 1)  # (C, H, W) per-pixel class frequency
    valid, test = _masks(rows["valid"]), _masks(rows["test"])
    if n_classes == 2:
        threshold, _ = _binary(freq[1], valid)
        return {
            "floor": score_constant((freq[1] >= threshold).long(), test, 2),
            "floor_threshold": threshold,
        }
    scales, _ = _scaled(freq, valid)
    pred = torch.argmax(torch.tensor(scales, dtype=freq.dtype)[:, None, None] * freq, dim=0)
    return {
        "floor": score_constant(pred, test, n_classes),
        "floor_scales": dict(zip(class_names, scales, strict=True)),
    }


def landmark_floor(
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
    key: str = "landmarks",
    convention: Literal["standard", "reference"] = "standard",
) -> dict[str, float]:
    """Floor of a landmark bundle: ``{"floor": test NRMSE of the mean training landmark vector}``.

    Args:
        rows: the bundle's ``rows``; training rows with a label (paired, y-only) give the mean,
            each row's ``key`` is a (2N,) landmark vector.
        key: the landmark key of the rows.
        convention: NRMSE normalisation, as the bundle's ``nrmse_convention``.
    """
    train = _labelled(rows["train"])
    if not train:
        raise ValueError("no training row carries landmarks: the floor needs training labels")
    train_landmarks = np.stack([np.asarray(r[key], np.float64) for r in train])
    test_landmarks = np.stack([np.asarray(r[key], np.float64) for r in rows["test"]])
    return {"floor": mean_shape_nrmse(train_landmarks, test_landmarks, convention)}
