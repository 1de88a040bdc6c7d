"""Shared test helpers of the preprocessing chain and the bundles: a synthetic L3 slice with known tissues."""

from __future__ import annotations

import numpy as np

from lsmseg.keys import Tissue

TISSUE_HU = {Tissue.BACKGROUND: -1000.0, Tissue.SAT: -100.0, Tissue.VAT: -80.0, Tissue.MUSCLE: 40.0}


def synthetic_l3(shape: tuple[int, int] = (512, 512), table: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) HU and 4-class mask: an elliptic body with a fat rim, a muscle ring, visceral fat.

    A scanner table (a 3-pixel, +200 HU shell) runs under the back and touches it.
    """
    height, width = shape
    rr, cc = np.mgrid[0:height, 0:width]
    centre_r, centre_c = 0.47 * height, 0.52 * width
    radius_r, radius_c = 0.3 * height, 0.4 * width
    ellipse = ((rr - centre_r) / radius_r) ** 2 + ((cc - centre_c) / radius_c) ** 2
    mask = np.zeros(shape, dtype=np.uint8)
    mask[ellipse <= 1.0] = Tissue.SAT
    mask[ellipse <= 0.75] = Tissue.MUSCLE
    mask[ellipse <= 0.5] = Tissue.VAT
    hu = np.vectorize(TISSUE_HU.__getitem__, otypes=[np.float32])(mask)
    if table:
        back = int(centre_r + radius_r)
        hu[back : back + 3, int(0.1 * width) : int(0.9 * width)] = 200.0
    return hu, mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks."""
    return float((a & b).sum() / (a | b).sum())
