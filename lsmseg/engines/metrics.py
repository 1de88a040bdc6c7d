"""Landmark metrics of the 300-W experiment: NRMSE and the mean-shape baseline.

NRMSE (LSM paper, section 4.2; Sagonas et al. 2016) = mean over the 68 points of the Euclidean
error, divided by the inter-ocular distance: the distance between the outer eye corners of the
ground truth, points 36 and 45 (0-based) of the iBUG layout. The metric is scale-free, so pixel
coordinates and the [0, 1] coordinates of a square crop give the same value.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import numpy as np
import torch

OUTER_EYE_CORNERS = (36, 45)  # iBUG 68, 0-based: subject's right eye outer corner, left eye outer corner
# The reference implementation indexes 37 and 46 (0-based): upper-lid points, not the corners. The
# distance is shorter, so its NRMSE values come out 16-24 % higher than the standard ones.
REFERENCE_EYE_CORNERS = (37, 46)

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _as_points(landmarks: ArrayT) -> ArrayT:
    """(B, 2N) interleaved (x, y) or (B, N, 2) -> (B, N, 2)."""
    if landmarks.ndim == 2:
        if landmarks.shape[1] % 2:
            raise ValueError(
                f"flat landmarks need an even length (x, y pairs), got shape {tuple(landmarks.shape)}"
            )
        return landmarks.reshape(landmarks.shape[0], -1, 2)
    if landmarks.ndim == 3 and landmarks.shape[2] == 2:
        return landmarks
    raise ValueError(f"landmarks must be (B, 2N) or (B, N, 2), got shape {tuple(landmarks.shape)}")


def nrmse(
    pred: ArrayT,
    target: np.ndarray | torch.Tensor,
    eye_corners: tuple[int, int] | None = None,
    convention: Literal["standard", "reference"] = "standard",
) -> ArrayT:
    """Per-face normalised root mean square error of predicted landmarks.

    Args:
        pred: (B, 68, 2) or (B, 136) interleaved (x0, y0, x1, y1, ...), numpy or torch.
        target: ground truth of the same layout; converted to ``pred``'s type.
        eye_corners: 0-based indices of the two points whose distance in ``target`` normalises
            the error; by default those of ``convention``.
        convention: "standard" uses the outer eye corners (36, 45). "reference" uses (37, 46), the
            indices of the LSM reference implementation: a bug there, kept only to compare with
            its published numbers (16-24 % higher than the standard ones).

    Returns:
        (B,) mean point-to-point distance / inter-ocular distance, same type as ``pred``.

    Raises:
        ValueError: on mismatched shapes, a conflicting ``eye_corners`` / ``convention`` pair, or a
            target whose two eye corners coincide.
    """
    corners = {"standard": OUTER_EYE_CORNERS, "reference": REFERENCE_EYE_CORNERS}
    if convention not in corners:
        raise ValueError(f"convention must be one of {sorted(corners)}, got {convention!r}")
    if eye_corners is None:
        eye_corners = corners[convention]
    elif convention != "standard":
        raise ValueError("give either eye_corners or convention='reference', not both")
    if isinstance(pred, torch.Tensor):
        target = torch.as_tensor(target, dtype=pred.dtype, device=pred.device)
    else:
        target = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target)
    p, t = _as_points(pred), _as_points(target)
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in layout")
    a, b = eye_corners
    error = (((p - t) ** 2).sum(-1) ** 0.5).mean(-1)  # (B,) mean Euclidean error per face
    inter_ocular = ((t[:, a] - t[:, b]) ** 2).sum(-1) ** 0.5  # (B,)
    if bool((inter_ocular <= 0).any()):
        raise ValueError(f"target points {a} and {b} coincide in some faces: inter-ocular distance 0")
    return error / inter_ocular


def mean_shape_nrmse(
    train_landmarks: np.ndarray | torch.Tensor,
    test_landmarks: np.ndarray | torch.Tensor,
    convention: Literal["standard", "reference"] = "standard",
) -> float:
    """NRMSE of the constant predictor that outputs the mean training shape for every test face.

    The baseline a landmark model must beat: anything at or above it has learnt nothing from the
    image. Landmarks as in ``nrmse`` ((B, 136) or (B, 68, 2)); returns the mean over test faces.
    """
    train = _as_points(np.asarray(torch.as_tensor(train_landmarks, dtype=torch.float64).cpu()))
    test = _as_points(np.asarray(torch.as_tensor(test_landmarks, dtype=torch.float64).cpu()))
    mean_shape = train.mean(axis=0, keepdims=True)  # (1, N, 2)
    pred = np.broadcast_to(mean_shape, test.shape)  # (B, N, 2)
    return float(nrmse(pred, test, convention=convention).mean())
