"""Per-row loss terms and their masked reduction (lsm_method.md, "Losses").

Every term is first averaged per row over its non-batch dimensions, giving a (B,) vector. The
row mask says which rows have the views the term needs; the term is the sum over those rows
divided by their count, and exactly 0 (with zero gradient) when no row has them. ``torch.where``
rather than a product keeps the hidden view of a row from reaching the loss or its gradient even
if the zero-filled placeholder held non-finite values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def per_row_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean over all non-batch dimensions: (B, ...) -> (B,); B may be 0 (a term without rows)."""
    return t.reshape(t.shape[0], math.prod(t.shape[1:])).mean(dim=1)


def masked_mean(per_row: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_row`` (B,) over rows where ``mask`` (B,) is true; 0 when none is."""
    mask = mask.to(torch.bool)
    total = torch.where(mask, per_row, torch.zeros_like(per_row)).sum()
    return total / mask.sum().clamp(min=1).to(per_row.dtype)


def rows_mean(per_row: torch.Tensor, count: int) -> torch.Tensor:
    """Mean of ``per_row`` (n,), computed on exactly the rows a term reads; 0 when n = 0.

    The row-only counterpart of :func:`masked_mean`: the same value and gradients, with the
    count known on the host (no device sync).
    """
    return per_row.sum() / max(count, 1)


def l1_per_row(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per row: (B, ...) x2 -> (B,)."""
    return per_row_mean((pred - target).abs())


def mse_per_row(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per row: (B, ...) x2 -> (B,)."""
    return per_row_mean((pred - target).square())


def class_weights(labels: torch.Tensor, mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse pixel-frequency class weights over the rows that have a label (reference default).

    Args:
        labels: (B, H, W) integer class map.
        mask: (B,) rows whose label is real; hidden labels never influence the weights.
        num_classes: C.

    Returns:
        (C,) weights normalised to mean 1 over the classes present; absent classes get 0.
    """
    # scatter_add rather than boolean indexing: no device-to-host sync on the GPU.
    rows = mask.to(torch.bool)[:, None, None].expand_as(labels)
    counts = torch.zeros(num_classes, device=labels.device).scatter_add_(
        0, labels.reshape(-1), rows.reshape(-1).float()
    )
    weights = torch.where(counts > 0, counts.sum() / counts.clamp(min=1), torch.zeros_like(counts))
    present = (counts > 0).sum().clamp(min=1)
    return weights * present / weights.sum().clamp(min=1e-12)


def cross_entropy_per_row(
    logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Pixel-wise cross-entropy on logits averaged per row: (B, C, H, W), (B, H, W) -> (B,).

    Works on logits (log-softmax inside ``F.cross_entropy``), unlike the reference implementation
    that applies softmax in the decoder and then cross-entropy on top (a double softmax).
    """
    return per_row_mean(F.cross_entropy(logits.float(), labels, weight=weight, reduction="none"))


def reference_cross_entropy_per_row(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, batch_size: int | None = None
) -> torch.Tensor:
    """The reference code's mask loss, kept to reproduce its term balance: (B, C, H, W) -> (B,).

    The reference decodes masks with a softmax and then applies ``F.cross_entropy`` to those
    probabilities (a double softmax: a pixel's loss cannot fall below ~0.31 for 2 classes, and its
    gradient is several times smaller than a logits CE's), with class weights
    ``H * W / (pixels of the class in the batch)`` ~ 1 / (batch size x class fraction), not
    normalised. At batch 16 its gradient is 11-18x smaller than :func:`cross_entropy_per_row`
    with mean-1 weights (``lsm_method.md``, "Reference code vs paper"), so every other term
    weighs ~10x more against it.

    Args:
        logits: decoder logits.
        labels: (B, H, W) integer class map.
        mask: (B,) rows whose label is real: the class fractions are counted on these only (the
            reference counts every row's label, hidden or not).
        batch_size: the rows the reference's weights are scaled by (the whole batch); default B.
    """
    n_classes, (h, w) = logits.shape[1], labels.shape[-2:]
    rows = mask.to(torch.bool)
    counts = torch.zeros(n_classes, device=labels.device).scatter_add_(
        0, labels.reshape(-1), rows[:, None, None].expand_as(labels).reshape(-1).float()
    )
    # pixels per class over a batch of ``batch_size`` rows with these fractions
    scale = (batch_size or labels.shape[0]) / rows.sum().clamp(min=1)
    weight = torch.where(counts > 0, h * w / (counts * scale).clamp(min=1e-12), torch.zeros_like(counts))
    probs = torch.softmax(logits.float(), dim=1)
    target = F.one_hot(labels, n_classes).permute(0, 3, 1, 2).float()
    return per_row_mean(F.cross_entropy(probs, target, weight=weight, reduction="none"))


def bce_per_row(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of critic logits (B, ...) against a constant target -> (B,).

    ``target`` 1 = real, 0 = fake, 0.5 = the uniform distribution of the confusion loss.
    """
    t = torch.full_like(logits, target, dtype=torch.float32)
    return per_row_mean(F.binary_cross_entropy_with_logits(logits.float(), t, reduction="none"))
