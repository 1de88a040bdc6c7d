"""The paper's supervision protocol (section 4.3) and the weighted row sampler."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from lsmseg.errors import check_choice
from lsmseg.keys import Keys, Mode


@dataclass(frozen=True)
class SupervisionSplit:
    """Indices of a data set split for a semi-supervised experiment.

    ``paired`` rows keep both views; the rest of the training set gives ``x_only`` rows (their y
    is hidden) and ``y_only`` rows (their x is hidden): two disjoint halves under the ``disjoint``
    protocol, so no unpaired x and y come from the same pair (the paper's text), or the same
    samples twice under ``shared`` (the reference code's default, ``pair_in_unsupervised=False``).
    """

    paired: list[int]
    x_only: list[int]
    y_only: list[int]
    valid: list[int]
    test: list[int]


UnpairedProtocol = Literal["disjoint", "shared"]
UNPAIRED_PROTOCOLS: tuple[str, ...] = ("disjoint", "shared")
Sampling = Literal["balanced", "epoch"]
SAMPLINGS: tuple[str, ...] = ("balanced", "epoch")


def check_proportion(proportion: float) -> float:
    """Validate the paired fraction p: 0 < p <= 1."""
    p = float(proportion)
    if not 0.0 < p <= 1.0:
        raise ValueError(
            f"proportion must be in (0, 1] (fraction of training pairs kept paired), got {proportion}"
        )
    return p


def supervision_split(
    n: int,
    proportion: float,
    seed: int = 0,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    unpaired: UnpairedProtocol = "disjoint",
) -> SupervisionSplit:
    """Sequential train / valid / test split, then p of the training set kept paired.

    Args:
        n: number of pairs in the data set.
        proportion: fraction p of the training pairs kept paired, 0 < p <= 1 (at least one pair).
        seed: seeds which training pairs stay paired and how the rest is halved.
        fractions: train, valid, test fractions (paper: 0.7, 0.1, 0.2; 300-W reference 0.6, 0.2, 0.2).
        unpaired: ``disjoint`` - the unpaired samples halved into x-only and y-only rows (the
            paper's text: no unpaired x and y from one pair, half the unpaired data per view);
            ``shared`` - every unpaired sample gives both an x-only and a y-only row (the
            reference code: at 20 %, 70 paired + 280 x-only + 280 y-only rows of 350).
    """
    p = check_proportion(proportion)
    check_choice("unpaired protocol", unpaired, UNPAIRED_PROTOCOLS)
    if n < 3:
        raise ValueError(f"need at least 3 samples for a train/valid/test split, got {n}")
    n_train = max(1, round(fractions[0] * n))
    n_valid = max(1, round(fractions[1] * n))
    train = list(range(n_train))
    valid = list(range(n_train, min(n, n_train + n_valid)))
    test = list(range(n_train + len(valid), n))
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(train)]
    n_paired = max(1, round(p * n_train))
    paired, rest = sorted(order[:n_paired]), order[n_paired:]
    if unpaired == "shared":
        return SupervisionSplit(paired, sorted(rest), sorted(rest), valid, test)
    half = len(rest) // 2
    return SupervisionSplit(paired, sorted(rest[:half]), sorted(rest[half : 2 * half]), valid, test)


def row_weights(modes: Sequence[int]) -> torch.Tensor:
    """Sampling weights so paired rows are not drowned: N/n_paired for paired rows, N/n_unpaired else."""
    m = torch.as_tensor([int(x) for x in modes])
    n = len(m)
    n_paired = int((m == Mode.PAIRED).sum())
    n_unpaired = n - n_paired
    w = torch.where(m == Mode.PAIRED, n / max(n_paired, 1), n / max(n_unpaired, 1))
    return w.double()


def row_sampler(
    rows: Sequence[dict], seed: int = 0, distributed: bool = False, sampling: Sampling = "balanced"
) -> torch.utils.data.Sampler:
    """Sampler over training rows (``Keys.MODE`` of each row), DDP-aware; ``len(rows)`` draws an epoch.

    Args:
        rows: the training rows.
        seed: seeds the draw order.
        distributed: shard the draws over the DDP ranks.
        sampling: ``balanced`` - draws with replacement weighted by :func:`row_weights`, so about
            half of each batch is paired whatever p is (at 20 % a paired row is drawn ~2.5x per
            epoch, an unpaired one ~0.6x); ``epoch`` - every row exactly once per epoch (the
            reference code: its weighted sampler draws without replacement, so the weights
            only move paired rows earlier in the epoch; at 20 % ~1 row in 5 of a batch is paired).
    """
    check_choice("sampling", sampling, SAMPLINGS)
    weights = row_weights([r[Keys.MODE] for r in rows])
    if distributed:
        if sampling == "epoch":
            return torch.utils.data.DistributedSampler(rows, shuffle=True, seed=int(seed))  # type: ignore[arg-type]
        from monai.data import DistributedWeightedRandomSampler

        return DistributedWeightedRandomSampler(rows, weights.tolist(), shuffle=True)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(int(seed))
    return torch.utils.data.WeightedRandomSampler(
        weights.tolist(), num_samples=len(rows), replacement=sampling == "balanced", generator=g
    )


def rows_from_split(split: SupervisionSplit, row: Callable[[int, Mode], dict]) -> dict[str, list[dict]]:
    """Training, validation and test rows of a split, built by ``row(index, mode)``.

    Training rows are the paired rows, then the x-only and y-only halves; validation and test
    rows are paired. ``row`` zero-fills (or drops) the view its ``mode`` hides.

    Returns:
        {"train": [...], "valid": [...], "test": [...]}.
    """
    train = (
        [row(i, Mode.PAIRED) for i in split.paired]
        + [row(i, Mode.X_ONLY) for i in split.x_only]
        + [row(i, Mode.Y_ONLY) for i in split.y_only]
    )
    return {
        "train": train,
        "valid": [row(i, Mode.PAIRED) for i in split.valid],
        "test": [row(i, Mode.PAIRED) for i in split.test],
    }
