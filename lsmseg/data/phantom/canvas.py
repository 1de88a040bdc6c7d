"""The phantom's drawing surface: tissue kinds, the pixel grid in anatomical millimetres, and
the small geometry helpers the anatomy is drawn with.

Anatomy is painted as *kinds* (skin, fascia, bowel wall ...), finer than the four labels of
``lsmseg.keys.Tissue``; :data:`LABEL_OF` maps each kind to its label once painting is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np
from scipy import ndimage

from lsmseg.keys import Tissue

TWO_PI = 2.0 * np.pi


class Kind(IntEnum):
    """Internal tissue kinds: what is painted, before it is mapped to the 4 labels."""

    AIR = 0
    SKIN = 1
    SAT = 2
    SCARPA = 3  # superficial fascia inside the subcutaneous fat (label SAT)
    FASCIA = 4  # linea alba, linea semilunaris, supraspinous ligament
    MUSCLE = 5
    IMAT = 6  # fat inside the muscle compartment (label MUSCLE)
    VAT = 7
    BOWEL_WALL = 8
    LUMEN = 9  # bowel fluid or oral contrast
    GAS = 10
    STOOL = 11
    KIDNEY = 12
    LIVER = 13
    VESSEL = 14
    CALCIFICATION = 15
    TRABECULAR = 16
    CORTICAL = 17
    CSF = 18
    EPIDURAL_FAT = 19
    TABLE = 20
    TABLE_CORE = 21


N_KINDS = len(Kind)
LABEL_OF = np.zeros(N_KINDS, np.uint8)
LABEL_OF[[Kind.SAT, Kind.SCARPA]] = Tissue.SAT
LABEL_OF[Kind.VAT] = Tissue.VAT
LABEL_OF[[Kind.MUSCLE, Kind.IMAT]] = Tissue.MUSCLE


def smoothstep(x: np.ndarray | float) -> np.ndarray:
    """0 for x <= 0, 1 for x >= 1, smooth in between."""
    t = np.clip(x, 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t))


def superellipse_radius(
    phi: np.ndarray, a: float, b: np.ndarray | float, n: np.ndarray | float
) -> np.ndarray:
    """Polar radius of a superellipse with lateral half-axis ``a`` and AP half-axis ``b``.

    ``phi`` is 0 anteriorly and +pi/2 towards the patient's left.
    """
    c = np.abs(np.cos(phi)) / b
    s = np.abs(np.sin(phi)) / a
    return np.asarray((c**n + s**n) ** (-1.0 / n))


def fourier(rng: np.random.Generator, phi: np.ndarray, amplitude: float, orders: range) -> np.ndarray:
    """Smooth random periodic perturbation of ``phi``: mostly left-right symmetric terms."""
    out = np.zeros_like(phi)
    for k in orders:
        out += rng.normal(0.0, amplitude / k) * np.cos(k * phi)
        out += rng.normal(0.0, 0.4 * amplitude / k) * np.sin(k * phi)
    return out


def fold(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect values into [lo, hi] (a triangle wave), keeping noise texture without clipping piles."""
    width = hi - lo
    t = np.mod(v - lo, 2.0 * width)
    return np.asarray(lo + np.where(t > width, 2.0 * width - t, t))


def unit_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Gaussian-correlated noise field with unit standard deviation, correlation ``sigma_px``."""
    white = rng.standard_normal(shape).astype(np.float32)
    if sigma_px < 0.3:
        return white
    field_ = ndimage.gaussian_filter(white, sigma_px, mode="wrap")
    return np.asarray(field_ * np.float32(2.0 * np.sqrt(np.pi) * sigma_px))


Region = tuple[tuple[slice, slice], np.ndarray]  # (bounding-box slices, boolean sub-mask)


class Canvas:
    """The pixel grid, its anatomical coordinates (mm) and the painted tissue kinds and HU.

    Image frame: X (mm) towards the patient's left along columns, Y (mm) posterior along rows,
    origin at the body centre. Anatomical frame (x, y): the image frame rotated by the patient's
    small roll ``alpha``; all anatomy is placed in it. ``phi`` is the polar angle of (x, y):
    0 anterior, +pi/2 patient left, +-pi posterior.
    """

    def __init__(self, size: int, spacing: float, centre_rc: tuple[float, float], alpha: float):
        self.size = size
        self.spacing = spacing
        self.centre_rc = centre_rc
        self.cos_a, self.sin_a = float(np.cos(alpha)), float(np.sin(alpha))
        idx = np.arange(size, dtype=np.float32)
        self.Y1 = (idx - np.float32(centre_rc[0])) * np.float32(spacing)  # (H,) mm per row
        self.X1 = (idx - np.float32(centre_rc[1])) * np.float32(spacing)  # (W,) mm per column
        X, Y = self.X1[None, :], self.Y1[:, None]
        self.x = (self.cos_a * X + self.sin_a * Y).astype(np.float32)  # (H, W) mm
        self.y = (-self.sin_a * X + self.cos_a * Y).astype(np.float32)  # (H, W) mm
        self.r = np.hypot(self.x, self.y)
        self.phi = np.arctan2(self.x, -self.y)
        self.kind = np.full((size, size), Kind.AIR, np.uint8)
        self.base = np.full((size, size), -1000.0, np.float32)
        self.full = (slice(0, size), slice(0, size))

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """(row, column) of the anatomical point (x, y) mm."""
        X = self.cos_a * x - self.sin_a * y
        Y = self.sin_a * x + self.cos_a * y
        return self.centre_rc[0] + Y / self.spacing, self.centre_rc[1] + X / self.spacing

    def box(self, x: float, y: float, radius_mm: float) -> tuple[slice, slice] | None:
        """Bounding-box slices of a disc around (x, y); None when it misses the grid."""
        row, col = self.to_pixel(x, y)
        half = radius_mm / self.spacing + 2.0
        r0, r1 = max(int(row - half), 0), min(int(row + half) + 1, self.size)
        c0, c1 = max(int(col - half), 0), min(int(col + half) + 1, self.size)
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def ellipse(
        self,
        x: float,
        y: float,
        rx: float,
        ry: float,
        angle: float = 0.0,
        n: float = 2.0,
        box: tuple[slice, slice] | None = None,
        wobble: np.ndarray | None = None,
    ) -> Region | None:
        """A (super)ellipse centred at (x, y) with half-axes (rx, ry) mm, rotated by ``angle``.

        ``angle`` turns the rx axis from +x (patient left) towards +y (posterior). The region is
        evaluated on ``box`` when given, else on the ellipse's own bounding box. ``wobble`` is a
        (K, 2) array of (amplitude, phase) of boundary harmonics 2..K+1 (radius factor
        1 + sum a_k cos(k theta + p_k)), for irregular shapes such as bowel loops.
        """
        reach = max(rx, ry) * (1.0 + (float(np.sum(np.abs(wobble[:, 0]))) if wobble is not None else 0.0))
        sl = box if box is not None else self.box(x, y, reach)
        if sl is None:
            return None
        dx, dy = self.x[sl] - x, self.y[sl] - y
        c, s = np.cos(angle), np.sin(angle)
        u = (c * dx + s * dy) / rx
        v = (-s * dx + c * dy) / ry
        if wobble is None:
            return sl, (np.abs(u) ** n + np.abs(v) ** n) < 1.0
        theta = np.arctan2(v, u)
        factor = 1.0 + sum(a * np.cos((k + 2) * theta + p) for k, (a, p) in enumerate(wobble))
        return sl, np.hypot(u, v) < factor

    def paint(
        self,
        region: Region | None,
        kind: Kind,
        hu: float | np.ndarray,
        only: Sequence[Kind] | None = None,
    ) -> int:
        """Set ``kind`` and base HU inside ``region`` (restricted to pixels of the kinds ``only``).

        Returns the number of pixels painted.
        """
        if region is None:
            return 0
        sl, sub = region
        target = self.kind[sl]
        if only is not None:
            allowed = np.zeros(N_KINDS, bool)
            allowed[list(only)] = True
            sub = sub & allowed[target]
        target[sub] = kind
        base = self.base[sl]
        base[sub] = hu[sub] if isinstance(hu, np.ndarray) else hu
        return int(np.count_nonzero(sub))

    def where(self, sub: np.ndarray) -> Region:
        """A full-grid region."""
        return self.full, sub


def local_depth_mm(sub: np.ndarray, spacing: float) -> np.ndarray:
    """Distance (mm) from each pixel of the boolean ``sub`` to the nearest pixel outside it."""
    padded = np.pad(sub, 1)
    return np.asarray(ndimage.distance_transform_edt(padded)[1:-1, 1:-1] * spacing)
