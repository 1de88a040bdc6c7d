"""Masked semi-supervised loss terms."""

from lsmseg.losses.masked import (
    bce_per_row,
    class_weights,
    cross_entropy_per_row,
    l1_per_row,
    masked_mean,
    mse_per_row,
    per_row_mean,
    reference_cross_entropy_per_row,
    rows_mean,
)

__all__ = [
    "bce_per_row",
    "class_weights",
    "cross_entropy_per_row",
    "l1_per_row",
    "masked_mean",
    "mse_per_row",
    "per_row_mean",
    "reference_cross_entropy_per_row",
    "rows_mean",
]
