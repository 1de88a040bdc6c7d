"""Data sets and the supervision protocol."""

from lsmseg.data.split import SupervisionSplit, check_proportion, row_sampler, row_weights, supervision_split

__all__ = ["SupervisionSplit", "check_proportion", "row_sampler", "row_weights", "supervision_split"]
