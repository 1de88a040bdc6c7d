"""Synthetic axial slices for the anatomy gate: a head, a thorax, two legs (simple drawings with
noise, 1 mm pixels, 256 x 256), and the L3 phantom that must pass."""

from __future__ import annotations

import numpy as np

from lsmseg.data.phantom.render import generate_slice
from lsmseg.io import CTSlice

SIZE = 256
SPACING_MM = (1.0, 1.0)


def _grid() -> tuple[np.ndarray, np.ndarray]:
    rr, cc = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return rr - SIZE / 2, cc - SIZE / 2


def _noisy(hu: np.ndarray, seed: int = 0) -> np.ndarray:
    return (hu + np.random.default_rng(seed).normal(0.0, 10.0, hu.shape)).astype(np.float32)


def _slice(hu: np.ndarray, name: str) -> CTSlice:
    return CTSlice(hu=_noisy(hu), spacing_mm=SPACING_MM, case_id=name, source=f"{name}.dcm")


def head() -> CTSlice:
    """A skull: a 6 mm bone ring (1000 HU) round brain (35 HU) under 3 mm of scalp (40 HU)."""
    r, c = _grid()
    d = np.hypot(r / 90.0, c / 75.0)
    hu = np.full((SIZE, SIZE), -1000.0)
    hu[d <= 1.0] = 40.0
    hu[d <= 0.96] = 1000.0
    hu[d <= 0.89] = 35.0
    return _slice(hu, "head")


def thorax() -> CTSlice:
    """A chest: fat rim, muscle wall, two air-filled lungs (-850 HU), a heart and a vertebra."""
    r, c = _grid()
    hu = np.full((SIZE, SIZE), -1000.0)
    hu[np.hypot(r / 90.0, c / 120.0) <= 1.0] = -100.0
    hu[np.hypot(r / 82.0, c / 112.0) <= 1.0] = 45.0
    for side in (-1, 1):
        hu[np.hypot((r + 5) / 60.0, (c - side * 50) / 40.0) <= 1.0] = -850.0
    hu[np.hypot((r + 30) / 30.0, c / 30.0) <= 1.0] = 40.0
    hu[np.hypot((r - 55) / 12.0, c / 12.0) <= 1.0] = 700.0
    return _slice(hu, "thorax")


def legs() -> CTSlice:
    """Two thighs: fat rim, muscle, a femur each, 20 mm apart."""
    r, c = _grid()
    hu = np.full((SIZE, SIZE), -1000.0)
    for side in (-1, 1):
        d = np.hypot(r / 60.0, (c - side * 62) / 52.0)
        hu[d <= 1.0] = -100.0
        hu[d <= 0.8] = 50.0
        hu[np.hypot(r / 12.0, (c - side * 62) / 12.0) <= 1.0] = 900.0
    return _slice(hu, "legs")


def water_phantom() -> CTSlice:
    """A cylinder of water (0 HU): a body without fat or bone."""
    r, c = _grid()
    hu = np.full((SIZE, SIZE), -1000.0)
    hu[np.hypot(r, c) <= 100] = 0.0
    return _slice(hu, "water")


def l3_phantom(seed: int = 0) -> CTSlice:
    """The synthetic L3 slice of :mod:`lsmseg.data.phantom` (256 px)."""
    s = generate_slice(np.random.default_rng(seed), 256)
    return CTSlice(hu=s.hu, spacing_mm=tuple(s.spacing_mm), case_id=f"l3_{seed}", source="l3.dcm")
