"""The out-of-distribution gate of ``lsmseg segment``: ``ood_score``, ``ood_percentile`` and a warning.

The score and its validation reference are defined in :mod:`lsmseg.engines.ood` (recorded by
training in ``models/ood.json``). Per case: the score of its network input, the percent of
validation slices scoring at most as much, and a quality warning when the score is above the
reference's threshold. A bundle without ood.json (trained before it was recorded, or
interrupted before training ended) gets empty columns and no warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from lsmseg.clinical.model import SegmentationModel
from lsmseg.engines.ood import RECONSTRUCTION, OODReference, read_reference, slice_scores, softmax_entropy

logger = logging.getLogger(__name__)

MODELS_DIR = "models"


def load_reference(model: SegmentationModel) -> OODReference | None:
    """The bundle's ``models/ood.json``; None (and a logged warning when damaged) without one."""
    try:
        return read_reference(model.bundle_dir / MODELS_DIR)
    except ValueError as err:
        logger.warning("no out-of-distribution check: %s", err)
        return None


def describe_reference(reference: OODReference | None) -> dict[str, Any] | None:
    """The reference in a run's provenance: score, definition, n, quantiles, threshold (no scores)."""
    if reference is None:
        return None
    return {k: v for k, v in reference.to_dict().items() if k != "scores"}


def batch_scores(
    model: SegmentationModel, reference: OODReference, images: np.ndarray, probs: Sequence[np.ndarray]
) -> list[float]:
    """(B,) scores of ``images`` (B, 1, S, S) with the reference's definition; ``probs``: the
    (C, S, S) class probabilities the network gave each image (used by the entropy score)."""
    import torch

    if reference.score == RECONSTRUCTION:
        x = torch.as_tensor(images, dtype=torch.float32).to(model.device)
        with torch.inference_mode():
            return [float(v) for v in slice_scores(model.network, x, reference.score).cpu()]
    return [float(v) for v in softmax_entropy(torch.as_tensor(np.stack(probs)))]


def ood_columns(reference: OODReference, score: float) -> tuple[dict[str, Any], list[str]]:
    """The row's ``ood_score`` / ``ood_percentile`` and the warning above the threshold (if any)."""
    columns = {"ood_score": round(score, 5), "ood_percentile": round(reference.percentile(score), 1)}
    if score <= reference.threshold:
        return columns, []
    return columns, [
        f"out of distribution: {reference.score} {score:.4f} is above the threshold "
        f"{reference.threshold:.4f} ({reference.threshold_rule}, n={reference.n}): "
        "the model has not seen slices like this one, check the overlay"
    ]
