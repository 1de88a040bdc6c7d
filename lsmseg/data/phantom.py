"""Synthetic L3 CT phantom: axial slices at the third lumbar vertebra with exact ground truth.

Each slice is drawn from a patient (sex, age, height, weight) so that fat and muscle follow the
body habitus: subcutaneous fat thickens with BMI (more in women), visceral fat grows with BMI and
age (more in men), muscle size follows sex, height and age, muscle attenuation falls with age and
BMI (myosteatosis), trabecular bone density falls with age.

Geometry and orientation:
    ``hu`` and ``mask`` are (H, W) arrays in the normalised orientation of
    :class:`lsmseg.io.ctslice.CTSlice`: rows run from anterior to posterior, columns from the
    patient's right to left (radiological display). The field of view is drawn so that the body
    fits with a margin, between 307 and 486 mm, i.e. 0.6 to 0.95 mm pixels at ``size=512``; other
    sizes keep the field of view, so their pixels are ``512 / size`` times larger. Spacing is
    isotropic in-plane.

Anatomy (from outside in): air (-1000 HU), a curved CT table under the back that never touches
the body, a 1-2.5 mm skin line, subcutaneous fat with the superficial (Scarpa's) fascia, the
abdominal wall muscles (rectus abdominis pair separated by the linea alba, the three oblique
layers separated by thin fat planes, latissimus posteriorly), the erector spinae pair, psoas and
quadratus lumborum pairs, the L3 vertebra (cortical shell, trabecular body, canal with thecal sac,
pedicles, laminae, transverse and spinous processes), aorta, IVC and mesenteric vessels (with
optional venous or arterial contrast), kidneys' lower poles, an optional liver tip, colon with
stool and gas, small-bowel loops (fluid, oral contrast, gas with air-fluid levels, collapsed) and
the visceral fat between them. CT blur (partial volume) and correlated noise (10-20 HU, higher
for larger patients) are added last.

Labels (``lsmseg.keys.Tissue``) and the truth, as the readout sees them:
    * SAT: subcutaneous fat between the skin line and the muscle fascia. Every SAT pixel has HU
      in ``ADIPOSE_HU`` (-190..-30).
    * VAT: fat inside the abdominal wall (intra- and retroperitoneal). Every VAT pixel has HU in
      ``VAT_HU_DEFAULT`` (-150..-50).
    * MUSCLE: the muscle compartment, intramuscular fat included (fat blobs, the fat planes
      between the oblique layers). Every compartment pixel has HU in -190..150, so it is either
      muscle-HU (``MUSCLE_HU``, -29..150) or IMAT (``ADIPOSE_HU``).
    * BACKGROUND: everything else: air, table, skin, fascia, bone, canal, vessels, organs, bowel.

    The truth areas are computed from the final HU, mask and spacing exactly as the Alberta
    refinement of a perfect segmentation would (:func:`truth_areas`): muscle = compartment
    pixels in -29..150, IMAT = compartment pixels in -190..-30, SAT and VAT = their label counts.
    HU values are integers (as stored in DICOM), so the two HU ranges split the compartment
    without a gap and the truth survives a DICOM or NIfTI round trip exactly.
"""

from __future__ import annotations

import csv
import datetime
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from lsmseg.keys import ADIPOSE_HU, MUSCLE_HU, VAT_HU_DEFAULT, Tissue

REFERENCE_SIZE = 512  # matrix size at which the pixel spacing is 0.6-0.95 mm
FOV_RANGE_MM = (0.6 * REFERENCE_SIZE, 0.95 * REFERENCE_SIZE)  # reconstruction field of view
HU_MIN, HU_MAX = -1024, 3071  # 12-bit CT range (stored value = HU + 1024)
PATIENT_COLUMNS = ("case_id", "height_m", "weight_kg", "sex")
TRUTH_COLUMNS = ("case_id", "muscle_area_cm2", "imat_area_cm2", "sat_area_cm2", "vat_area_cm2")

_COMPARTMENT_HU = (ADIPOSE_HU[0], MUSCLE_HU[1])  # muscle compartment: IMAT or muscle
_TWO_PI = 2.0 * np.pi


@dataclass
class PhantomSlice:
    """One synthetic axial CT slice at L3 with its label mask and the areas it was drawn with.

    Attributes:
        hu: (H, W) float32 Hounsfield units (integer values in -1024..3071); rows anterior ->
            posterior, columns patient right -> left.
        mask: (H, W) uint8 ``Tissue`` labels on the same grid (IMAT inside the muscle
            compartment keeps the MUSCLE label).
        spacing_mm: (row, column) pixel spacing in mm, isotropic.
        muscle_area_cm2: skeletal muscle (compartment pixels with HU in -29..150), cm^2.
        imat_area_cm2: intramuscular adipose tissue (compartment pixels in -190..-30), cm^2.
        sat_area_cm2: subcutaneous adipose tissue, cm^2.
        vat_area_cm2: visceral adipose tissue, cm^2.
        body: (H, W) bool, the patient's body including the skin (the table excluded).
        patient: the patient the slice was drawn for (see :func:`generate_patient`).
    """

    hu: np.ndarray
    mask: np.ndarray
    spacing_mm: tuple[float, float]
    muscle_area_cm2: float
    imat_area_cm2: float
    sat_area_cm2: float
    vat_area_cm2: float
    body: np.ndarray
    patient: dict[str, Any] = field(default_factory=dict)

    @property
    def pixel_area_mm2(self) -> float:
        """Area of one pixel in mm^2."""
        return float(self.spacing_mm[0] * self.spacing_mm[1])

    def truth(self) -> dict[str, float]:
        """The four truth areas in cm^2, keyed as in ``truth.csv``."""
        return {
            "muscle_area_cm2": self.muscle_area_cm2,
            "imat_area_cm2": self.imat_area_cm2,
            "sat_area_cm2": self.sat_area_cm2,
            "vat_area_cm2": self.vat_area_cm2,
        }


def truth_areas(hu: np.ndarray, mask: np.ndarray, spacing_mm: Sequence[float]) -> dict[str, float]:
    """Areas (cm^2) the Alberta protocol reads from an (H, W) HU image and its 4-class mask.

    Muscle = MUSCLE-labelled pixels with HU in ``MUSCLE_HU`` (-29..150); IMAT = MUSCLE-labelled
    pixels with HU in ``ADIPOSE_HU`` (-190..-30); SAT and VAT = SAT / VAT label counts (the
    phantom keeps those pixels inside their HU ranges). Areas are pixel counts times
    ``spacing_mm[0] * spacing_mm[1]`` / 100 (Mitsiopoulos 1998, Mourtzakis 2008).
    """
    pixel_cm2 = float(spacing_mm[0]) * float(spacing_mm[1]) / 100.0
    compartment = mask == Tissue.MUSCLE
    muscle = compartment & (hu >= MUSCLE_HU[0]) & (hu <= MUSCLE_HU[1])
    imat = compartment & (hu >= ADIPOSE_HU[0]) & (hu <= ADIPOSE_HU[1])
    return {
        "muscle_area_cm2": float(np.count_nonzero(muscle)) * pixel_cm2,
        "imat_area_cm2": float(np.count_nonzero(imat)) * pixel_cm2,
        "sat_area_cm2": float(np.count_nonzero(mask == Tissue.SAT)) * pixel_cm2,
        "vat_area_cm2": float(np.count_nonzero(mask == Tissue.VAT)) * pixel_cm2,
    }


# ---------------------------------------------------------------------------------------------
# Patients


def generate_patient(rng: np.random.Generator, case_id: str = "phantom_0000") -> dict[str, Any]:
    """Draw an adult patient.

    Returns:
        ``{"case_id", "sex" ("M" | "F"), "age_years" (25-85), "height_m" (2 decimals),
        "weight_kg" (1 decimal)}``; BMI is log-normal around 26 kg/m^2, limited to 17-37.
    """
    sex = "M" if rng.random() < 0.5 else "F"
    age = int(rng.integers(25, 86))
    if sex == "M":
        height = float(np.clip(rng.normal(1.76, 0.07), 1.55, 1.98))
    else:
        height = float(np.clip(rng.normal(1.63, 0.065), 1.45, 1.85))
    bmi = float(np.clip(np.exp(rng.normal(np.log(26.0), 0.16)), 17.0, 37.0))
    height = round(height, 2)
    return {
        "case_id": case_id,
        "sex": sex,
        "age_years": age,
        "height_m": height,
        "weight_kg": round(bmi * height**2, 1),
    }


# ---------------------------------------------------------------------------------------------
# Internal tissue kinds: what is painted, before it is mapped to the 4 labels


class _K(IntEnum):
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


_N_KINDS = len(_K)
_LABEL_OF = np.zeros(_N_KINDS, np.uint8)
_LABEL_OF[[_K.SAT, _K.SCARPA]] = Tissue.SAT
_LABEL_OF[_K.VAT] = Tissue.VAT
_LABEL_OF[[_K.MUSCLE, _K.IMAT]] = Tissue.MUSCLE

# Texture amplitudes (HU) of a coarse (~4 mm) and a fine (~1 mm) random field per kind.
_TEXTURE = np.zeros((_N_KINDS, 2), np.float32)
for _kind, _amps in {
    _K.SAT: (4, 4),
    _K.SCARPA: (3, 3),
    _K.VAT: (5, 5),
    _K.MUSCLE: (3, 4),
    _K.IMAT: (4, 6),
    _K.BOWEL_WALL: (6, 6),
    _K.LUMEN: (5, 6),
    _K.STOOL: (20, 30),
    _K.KIDNEY: (4, 5),
    _K.LIVER: (3, 4),
    _K.VESSEL: (3, 3),
    _K.TRABECULAR: (25, 45),
    _K.CORTICAL: (60, 80),
    _K.CSF: (2, 3),
    _K.EPIDURAL_FAT: (5, 8),
    _K.SKIN: (4, 6),
    _K.FASCIA: (4, 6),
    _K.TABLE_CORE: (5, 5),
}.items():
    _TEXTURE[_kind] = _amps


# ---------------------------------------------------------------------------------------------
# Small geometry helpers


def _smoothstep(x: np.ndarray | float) -> np.ndarray:
    """0 for x <= 0, 1 for x >= 1, smooth in between."""
    t = np.clip(x, 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t))


def _superellipse_radius(
    phi: np.ndarray, a: float, b: np.ndarray | float, n: np.ndarray | float
) -> np.ndarray:
    """Polar radius of a superellipse with lateral half-axis ``a`` and AP half-axis ``b``.

    ``phi`` is 0 anteriorly and +pi/2 towards the patient's left.
    """
    c = np.abs(np.cos(phi)) / b
    s = np.abs(np.sin(phi)) / a
    return np.asarray((c**n + s**n) ** (-1.0 / n))


def _fourier(rng: np.random.Generator, phi: np.ndarray, amplitude: float, orders: range) -> np.ndarray:
    """Smooth random periodic perturbation of ``phi``: mostly left-right symmetric terms."""
    out = np.zeros_like(phi)
    for k in orders:
        out += rng.normal(0.0, amplitude / k) * np.cos(k * phi)
        out += rng.normal(0.0, 0.4 * amplitude / k) * np.sin(k * phi)
    return out


def _fold(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect values into [lo, hi] (a triangle wave), keeping noise texture without clipping piles."""
    width = hi - lo
    t = np.mod(v - lo, 2.0 * width)
    return np.asarray(lo + np.where(t > width, 2.0 * width - t, t))


def _unit_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Gaussian-correlated noise field with unit standard deviation, correlation ``sigma_px``."""
    white = rng.standard_normal(shape).astype(np.float32)
    if sigma_px < 0.3:
        return white
    field_ = ndimage.gaussian_filter(white, sigma_px, mode="wrap")
    return np.asarray(field_ * np.float32(2.0 * np.sqrt(np.pi) * sigma_px))


_Region = tuple[tuple[slice, slice], np.ndarray]  # (bounding-box slices, boolean sub-mask)


class _Canvas:
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
        self.kind = np.full((size, size), _K.AIR, np.uint8)
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
    ) -> _Region | None:
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
        region: _Region | None,
        kind: _K,
        hu: float | np.ndarray,
        only: Sequence[_K] | None = None,
    ) -> int:
        """Set ``kind`` and base HU inside ``region`` (restricted to pixels of the kinds ``only``).

        Returns the number of pixels painted.
        """
        if region is None:
            return 0
        sl, sub = region
        target = self.kind[sl]
        if only is not None:
            allowed = np.zeros(_N_KINDS, bool)
            allowed[list(only)] = True
            sub = sub & allowed[target]
        target[sub] = kind
        base = self.base[sl]
        base[sub] = hu[sub] if isinstance(hu, np.ndarray) else hu
        return int(np.count_nonzero(sub))

    def where(self, sub: np.ndarray) -> _Region:
        """A full-grid region."""
        return self.full, sub


def _local_depth_mm(sub: np.ndarray, spacing: float) -> np.ndarray:
    """Distance (mm) from each pixel of the boolean ``sub`` to the nearest pixel outside it."""
    padded = np.pad(sub, 1)
    return np.asarray(ndimage.distance_transform_edt(padded)[1:-1, 1:-1] * spacing)


# ---------------------------------------------------------------------------------------------
# The patient's build


@dataclass
class _Build:
    """Body-composition targets and tissue attenuations of one patient (mm, cm^2, HU)."""

    sex: str
    age: float
    bmi: float
    frame: float  # skeletal frame relative to the mean of the sex
    muscle_scale: float  # linear scale of the muscles; 1 draws about _REFERENCE_SMA_CM2
    vat_target_cm2: float
    sat_mm: float  # mean subcutaneous fat thickness
    muscle_hu: float
    sat_hu: float
    vat_hu: float
    trabecular_hu: float
    phase: str  # "none" | "venous" | "arterial"
    oral_contrast: bool


# Muscle area (cm^2) drawn by the reference dimensions (muscle_scale = 1), found by simulation.
_REFERENCE_SMA_CM2 = 140.0


def _draw_build(rng: np.random.Generator, patient: dict[str, Any]) -> _Build:
    """Targets from the patient: muscle from sex, height, age; fat from BMI, sex and age."""
    sex = str(patient.get("sex", "M")).upper()[:1]
    male = sex == "M"
    height = float(patient["height_m"])
    bmi = float(patient["weight_kg"]) / height**2
    age = float(patient.get("age_years", 55))
    frame = height / (1.76 if male else 1.63) * float(rng.normal(1.0, 0.03))
    if male:
        sma = 170.0 + 250.0 * (height - 1.76) - 0.6 * (age - 45.0) + 1.5 * (bmi - 25.0)
        sma = float(np.clip(sma * rng.normal(1.0, 0.1), 100.0, 235.0))
        vat = 25.0 + 10.0 * (bmi - 20.0) + 1.2 * (age - 40.0)
        sat_mm = 3.0 + 1.9 * (bmi - 17.0)
    else:
        sma = 118.0 + 180.0 * (height - 1.63) - 0.4 * (age - 45.0) + 1.2 * (bmi - 25.0)
        sma = float(np.clip(sma * rng.normal(1.0, 0.1), 88.0, 170.0))
        vat = 12.0 + 6.0 * (bmi - 20.0) + 0.8 * (age - 40.0)
        sat_mm = 6.0 + 2.3 * (bmi - 17.0)
    vat = float(np.clip(vat * np.exp(rng.normal(0.0, 0.3)), 12.0, 300.0))
    sat_mm = float(max(sat_mm * rng.normal(1.0, 0.12), 5.0))
    muscle_hu = 48.0 + (3.0 if male else 0.0) - 0.25 * (age - 40.0) - 0.6 * (bmi - 25.0)
    trabecular = 250.0 - (2.0 if male else 2.8) * (age - 30.0)
    phase = str(rng.choice(["none", "venous", "venous", "arterial"]))
    return _Build(
        sex=sex,
        age=age,
        bmi=bmi,
        frame=frame,
        muscle_scale=float(np.sqrt(sma / _REFERENCE_SMA_CM2)),
        vat_target_cm2=vat,
        sat_mm=sat_mm,
        muscle_hu=float(np.clip(muscle_hu + rng.normal(0.0, 4.0), 12.0, 58.0)),
        sat_hu=float(rng.normal(-103.0, 5.0)),
        vat_hu=float(rng.normal(-94.0, 5.0)),
        trabecular_hu=float(np.clip(trabecular + rng.normal(0.0, 20.0), 90.0, 300.0)),
        phase=phase,
        oral_contrast=bool(rng.random() < 0.45),
    )


@dataclass
class _Outline:
    """Polar outlines around the body centre, sampled on ``phi`` (anatomical frame, mm)."""

    phi: np.ndarray  # (N,) angles in [-pi, pi)
    fascia: np.ndarray  # (N,) radius of the muscle fascia (inner border of SAT)
    body: np.ndarray  # (N,) radius of the skin surface
    arc: np.ndarray  # (N,) arc length (mm) along the fascia from the anterior midline
    arc_fraction: np.ndarray  # (N,) arc / half perimeter of that side: 0 anterior, 1 posterior


def _draw_outline(rng: np.random.Generator, b: _Build, n_angles: int = 1024) -> _Outline:
    """Fascia and skin outlines: wider than tall, flatter back, a belly that grows with VAT."""
    phi = np.linspace(-np.pi, np.pi, n_angles, endpoint=False)
    male = b.sex == "M"
    frame, vat = b.frame, b.vat_target_cm2
    half_width = (138.0 if male else 124.0) * frame + 0.13 * vat + 12.0 * (b.muscle_scale - 1.0)
    b_ant = (84.0 if male else 76.0) * frame + 0.24 * vat
    b_post = (94.0 if male else 86.0) * frame + 0.04 * vat + 10.0 * (b.muscle_scale - 1.0)
    posterior = np.abs(phi) > np.pi / 2
    depth = np.where(posterior, b_post, b_ant)
    exponent = np.where(posterior, rng.uniform(2.4, 3.0), rng.uniform(2.0, 2.4))
    fascia = _superellipse_radius(phi, half_width, depth, exponent)
    fascia *= 1.0 + _fourier(rng, phi, 0.03, range(2, 6))

    # Subcutaneous fat: thicker anteriorly and over the flanks (more in women), thin over the spine.
    flank = 0.25 if not male else 0.1
    profile = (
        1.0
        + 0.15 * np.cos(phi)
        + flank * np.exp(-(((np.abs(phi) - 1.8) / 0.6) ** 2))
        - 0.25 * np.exp(-(((np.abs(phi) - np.pi) / 0.25) ** 2))
    )
    profile *= 1.0 + _fourier(rng, phi, 0.12, range(1, 5))
    sat = b.sat_mm * np.clip(profile, 0.3, None)
    sat_cm2 = 0.5 * np.sum((fascia + sat) ** 2 - fascia**2) * (_TWO_PI / n_angles) / 100.0
    if sat_cm2 > 390.0:  # keep the cohort inside plausible adult SAT areas
        target_outer2 = fascia**2 + ((fascia + sat) ** 2 - fascia**2) * 390.0 / sat_cm2
        sat = np.sqrt(target_outer2) - fascia
    body = fascia + sat

    # Arc length along the fascia, measured from the anterior midline on each side.
    px, py = fascia * np.sin(phi), -fascia * np.cos(phi)
    seg = np.hypot(np.diff(px, append=px[0]), np.diff(py, append=py[0]))  # seg[k]: k -> k+1
    k0 = n_angles // 2  # phi == 0
    arc = np.zeros(n_angles)
    arc[k0 + 1 :] = np.cumsum(seg[k0:-1])  # towards the patient's left
    arc[:k0] = np.cumsum(seg[:k0][::-1])[::-1]  # towards the patient's right
    half_left = arc[-1] + seg[-1]
    half_right = arc[0]
    frac = np.where(phi >= 0, arc / half_left, arc / half_right)
    return _Outline(phi=phi, fascia=fascia, body=body, arc=arc, arc_fraction=frac)


def _polar(outline: _Outline, values: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Periodic interpolation of (N,) ``values`` sampled on ``outline.phi`` at the angles ``phi``."""
    return np.asarray(np.interp(phi, outline.phi, values, period=_TWO_PI), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Painting the anatomy


@dataclass
class _Spine:
    """Positions (anatomical frame, mm) shared by the spine, back muscles and viscera."""

    y_body: float  # centre of the vertebral body
    body_half_width: float
    body_half_depth: float
    y_canal: float
    canal_half_width: float
    canal_half_depth: float
    y_tip: float  # spinous process tip
    tp_reach: float  # lateral reach of the transverse processes
    y_tp: float  # AP level of the transverse processes
    psoas: tuple[float, float, float] = (0.0, 0.0, 0.0)  # centre x, half-width, half-depth


def _paint_wall(
    rng: np.random.Generator,
    cv: _Canvas,
    b: _Build,
    outline: _Outline,
    depth_f: np.ndarray,
    inside_f: np.ndarray,
) -> float:
    """Abdominal wall muscles inside the fascia; returns the oblique thickness (mm)."""
    m = b.muscle_scale
    gap = rng.uniform(6.0, 12.0) + 0.1 * max(b.age - 40.0, 0.0) + 0.3 * max(b.bmi - 27.0, 0.0)
    rect_w = rng.uniform(65.0, 85.0) * np.sqrt(m)
    rect_t = rng.uniform(9.0, 13.0) * m
    obl_t = rng.uniform(13.0, 19.0) * m
    lat_t = rng.uniform(4.0, 7.0) * m
    s, u = outline.arc, outline.arc_fraction
    r0, r1 = gap / 2.0, gap / 2.0 + rect_w
    rectus = rect_t * _smoothstep((s - r0) / 5.0) * _smoothstep((r1 - s) / 18.0)
    rectus *= 1.0 + 0.15 * np.sin(np.pi * np.clip((s - r0) / rect_w, 0.0, 1.0))
    s_obl = r1 + rng.uniform(4.0, 14.0)
    oblique = obl_t * _smoothstep((s - s_obl) / 45.0) * (1.0 + 0.1 * np.sin(np.pi * u))
    posterior = lat_t + (oblique - lat_t) * _smoothstep((0.78 - u) / 0.16)
    oblique = np.where(u > 0.5, np.maximum(posterior, lat_t * (u > 0.62)), oblique)
    thickness = np.maximum(rectus, oblique)
    thickness *= 1.0 + _fourier(rng, outline.phi, 0.06, range(3, 9))

    t_px = _polar(outline, thickness, cv.phi)
    band = inside_f & (depth_f < t_px)
    cv.paint(cv.where(band), _K.MUSCLE, b.muscle_hu + rng.normal(0.0, 2.0), only=[_K.VAT])

    # Fat planes between external oblique, internal oblique and transversus (IMAT).
    s_px = _polar(outline, s, cv.phi)
    u_px = _polar(outline, u, cv.phi)
    planes = band & (s_px > s_obl + 20.0) & (u_px < 0.66) & (t_px > 9.0)
    wave = 0.04 * np.sin(cv.phi * rng.uniform(6.0, 10.0) + rng.uniform(0, _TWO_PI))
    width = 0.45 + 0.25 * (b.bmi > 28)
    for frac in (rng.uniform(0.3, 0.4), rng.uniform(0.6, 0.7)):
        dashes = np.sin(cv.phi * rng.uniform(10.0, 20.0) + rng.uniform(0, _TWO_PI)) > rng.uniform(-0.5, 0.3)
        plane = planes & dashes & (np.abs(depth_f - (frac + wave) * t_px) < width)
        cv.paint(cv.where(plane), _K.IMAT, -75.0, only=[_K.MUSCLE])

    # Linea alba and linea semilunaris: fibrous (background), with preperitoneal fat behind.
    fascia_zone = (s_px < r0 + 2.0) | ((s_px > r1 - 6.0) & (s_px < s_obl + 12.0))
    fascia_t = rng.uniform(1.5, 2.5)
    cv.paint(cv.where(fascia_zone & inside_f & (depth_f < fascia_t)), _K.FASCIA, 35.0)
    return float(obl_t)


def _paint_spine_and_back(rng: np.random.Generator, cv: _Canvas, b: _Build, outline: _Outline) -> _Spine:
    """Erector spinae, psoas and quadratus lumborum pairs, then the L3 vertebra over them."""
    f, m = b.frame * (1.0 if b.sex == "M" else 0.92), b.muscle_scale
    vb_w, vb_d = rng.uniform(22.0, 26.0) * f, rng.uniform(15.5, 18.0) * f
    canal_w, canal_d = rng.uniform(10.0, 12.5), rng.uniform(7.0, 9.0)
    spinous = rng.uniform(26.0, 32.0) * f
    y_back = float(np.interp(np.pi, outline.phi, outline.fascia, period=_TWO_PI))
    y_tip = y_back - rng.uniform(6.0, 11.0)
    y_canal = y_tip - spinous - canal_d - 5.0
    y_vb = y_canal - canal_d - vb_d + 1.0
    y_tp = y_canal - 1.0
    tp_reach = canal_w + 6.0 + rng.uniform(20.0, 28.0) * f
    sp = _Spine(y_vb, vb_w, vb_d, y_canal, canal_w, canal_d, y_tip, tp_reach, y_tp)
    inside_f = cv.kind == _K.VAT  # the cavity before deep muscles (the wall is muscle already)

    # Erector spinae: from the transverse processes back to the fascia (clipped flat there).
    es_w = rng.uniform(25.0, 31.0) * m
    es_y0 = y_tp + 3.0
    for side in (-1.0, 1.0):
        cx, cy = side * (2.0 + es_w), y_back - 2.0  # a dome, widest against the back fascia
        region = cv.ellipse(cx, cy, es_w, y_back - 2.0 - es_y0, n=2.3)
        if region is not None:
            sl, sub = region
            sub = sub & (side * cv.x[sl] > 1.5) & inside_f[sl]
            hu = b.muscle_hu - 0.12 * max(b.age - 40.0, 0.0) + rng.normal(0.0, 2.0)
            cv.paint((sl, sub), _K.MUSCLE, hu, only=[_K.VAT, _K.MUSCLE])
            # Fat plane between multifidus and longissimus, commoner with age.
            if rng.random() < 0.4 + 0.01 * (b.age - 40.0):
                xs = side * (2.0 + es_w * rng.uniform(0.6, 0.9))
                bend = rng.uniform(-0.15, 0.15)
                line = np.abs(cv.x[sl] - xs - bend * (cv.y[sl] - cy)) < rng.uniform(0.5, 0.9)
                cv.paint((sl, line & sub), _K.IMAT, -70.0, only=[_K.MUSCLE])

    # Psoas beside the vertebral body, quadratus lumborum beyond the transverse processes.
    ps_w, ps_d = rng.uniform(17.0, 21.0) * m, rng.uniform(15.0, 18.0) * m
    ps_x = vb_w + 0.55 * ps_w
    sp.psoas = (ps_x, ps_w, ps_d)
    ql_w, ql_d = rng.uniform(17.0, 23.0) * m, rng.uniform(7.0, 10.0) * m
    for side in (-1.0, 1.0):
        psoas = cv.ellipse(side * ps_x, y_vb - 0.1 * vb_d, ps_w, ps_d, angle=side * 0.35)
        cv.paint(psoas, _K.MUSCLE, b.muscle_hu + 3.0 + rng.normal(0.0, 2.0), only=[_K.VAT])
        ql = cv.ellipse(side * (tp_reach + 0.4 * ql_w), y_tp + 4.0, ql_w, ql_d, angle=-side * 0.45)
        cv.paint(ql, _K.MUSCLE, b.muscle_hu + rng.normal(0.0, 2.0), only=[_K.VAT])

    # Supraspinous ligament between the erector spinae, from the spinous tip to the fascia.
    lig = (np.abs(cv.x) < 1.8) & (cv.y > y_tip - 3.0) & (cv.y < y_back + 1.0)
    cv.paint(cv.where(lig), _K.FASCIA, 40.0, only=[_K.VAT, _K.MUSCLE])

    _paint_vertebra(rng, cv, b, sp)
    return sp


def _paint_vertebra(rng: np.random.Generator, cv: _Canvas, b: _Build, sp: _Spine) -> None:
    """L3: body (cortical shell, trabecular core, posterior concavity), arch and processes."""
    s = cv.spacing
    cortical_hu = rng.uniform(650.0, 900.0)
    element_hu = rng.uniform(300.0, 420.0)
    body = cv.ellipse(0.0, sp.y_body, sp.body_half_width, sp.body_half_depth, n=2.3)
    if body is None:
        return
    sl, sub = body
    y_notch = sp.y_body + 1.3 * sp.body_half_depth  # the concave back wall of the body
    notch = cv.ellipse(0.0, y_notch, 0.5 * sp.body_half_width, 0.5 * sp.body_half_depth, box=sl)
    if notch is not None:
        sub = sub & ~notch[1]
    depth = _local_depth_mm(sub, s)
    cortex = sub & (depth < rng.uniform(1.4, 2.2))
    cv.paint((sl, sub & ~cortex), _K.TRABECULAR, b.trabecular_hu)
    cv.paint((sl, cortex), _K.CORTICAL, cortical_hu)
    # Basivertebral vein entering the back of the body.
    cv.paint(cv.ellipse(0.0, sp.y_body + sp.body_half_depth - 3.5, 2.5, 3.0), _K.VESSEL, 45.0)

    # Posterior elements: pedicles and laminae (a ring round the canal), facets, processes.
    ring_w, ring_d = sp.canal_half_width + 6.5, sp.canal_half_depth + 6.0
    box = cv.box(0.0, sp.y_canal + 10.0, max(sp.tp_reach + 6.0, sp.y_tip - sp.y_canal))
    if box is None:
        return
    x, y = cv.x[box], cv.y[box]

    def ell(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0) -> np.ndarray:
        c, sn = np.cos(angle), np.sin(angle)
        u = (c * (x - cx) + sn * (y - cy)) / rx
        v = (-sn * (x - cx) + c * (y - cy)) / ry
        return np.asarray(u * u + v * v < 1.0)

    canal = ell(0.0, sp.y_canal, sp.canal_half_width, sp.canal_half_depth)
    ring = ell(0.0, sp.y_canal, ring_w, ring_d) & ~canal & (y > sp.y_body + sp.body_half_depth - 4.0)
    sp_start = sp.y_canal + sp.canal_half_depth + 2.0
    length = sp.y_tip - sp_start
    spinous_p = ell(0.0, sp_start + 0.5 * length, rng.uniform(3.0, 4.0), 0.5 * length + 1.0)
    spinous_p |= ell(0.0, sp.y_tip - 4.0, 4.5, 5.0)
    tp_len = sp.tp_reach - (sp.canal_half_width + 4.0)
    tilt = rng.uniform(0.05, 0.25)
    elements = ring | spinous_p
    for side in (-1.0, 1.0):
        tp_cx = side * (sp.canal_half_width + 4.0 + 0.5 * tp_len)
        elements |= ell(tp_cx, sp.y_tp, 0.5 * tp_len + 2.0, rng.uniform(3.0, 4.0), angle=side * tilt)
        base_x = side * (sp.canal_half_width + 4.0 + 0.2 * tp_len)
        elements |= ell(base_x, sp.y_tp + 0.5, 0.3 * tp_len, rng.uniform(4.5, 5.5), angle=side * tilt)
        elements |= ell(side * (ring_w - 2.0), sp.y_canal + ring_d - 1.0, 5.5, 6.5, angle=side * 0.5)
    elements &= ~canal
    depth = _local_depth_mm(elements, s)
    rim = elements & (depth < 1.3)
    cv.paint((box, elements & ~rim), _K.TRABECULAR, element_hu)
    cv.paint((box, rim), _K.CORTICAL, cortical_hu - 50.0)
    # Canal: epidural fat round the thecal sac.
    cv.paint((box, canal), _K.EPIDURAL_FAT, -90.0)
    sac = ell(0.0, sp.y_canal - 0.8, 0.78 * sp.canal_half_width, 0.78 * sp.canal_half_depth)
    cv.paint((box, sac), _K.CSF, 12.0)


def _paint_viscera(
    rng: np.random.Generator, cv: _Canvas, b: _Build, outline: _Outline, sp: _Spine, wall_t: float
) -> None:
    """Vessels, kidneys, liver tip, colon, small bowel and mesenteric vessels in the cavity."""
    s = cv.spacing
    cavity = [_K.VAT]
    blood = {"none": 42.0, "venous": 165.0, "arterial": 260.0}[b.phase]
    venous_blood = {"none": 40.0, "venous": 150.0, "arterial": 70.0}[b.phase]
    wall_hu = {"none": 38.0, "venous": 70.0, "arterial": 60.0}[b.phase]
    front = sp.y_body - sp.body_half_depth

    # Aorta (left of the midline) with calcified plaques in older patients, IVC on the right.
    r_ao = rng.uniform(8.5, 11.0) + 0.04 * max(b.age - 50.0, 0.0) + (1.0 if b.sex == "M" else 0.0)
    x_ao, y_ao = rng.uniform(6.0, 14.0), front - r_ao - 1.5
    cv.paint(cv.ellipse(x_ao, y_ao, r_ao, r_ao), _K.VESSEL, blood, only=cavity)
    if b.age > 50 and rng.random() < 0.3 + 0.015 * (b.age - 50.0):
        for _ in range(int(rng.integers(1, 5))):
            a = rng.uniform(0.0, _TWO_PI)
            cx, cy = x_ao + (r_ao - 0.8) * np.sin(a), y_ao - (r_ao - 0.8) * np.cos(a)
            cv.paint(cv.ellipse(cx, cy, rng.uniform(0.8, 1.6), 1.0, angle=a), _K.CALCIFICATION, 700.0)
    ivc_w = rng.uniform(9.0, 13.0)
    ivc_d = ivc_w * rng.uniform(0.55, 0.85)
    x_ivc = -rng.uniform(14.0, 22.0)
    cv.paint(
        cv.ellipse(x_ivc, front - ivc_d - 1.0, ivc_w, ivc_d, angle=rng.uniform(-0.3, 0.3)),
        _K.VESSEL,
        venous_blood,
        only=cavity,
    )
    # Superior mesenteric artery and vein in the fat in front of the aorta.
    y_sm = y_ao - r_ao - rng.uniform(10.0, 20.0)
    cv.paint(cv.ellipse(x_ao - 3.0, y_sm, 3.2, 3.2), _K.VESSEL, blood, only=cavity)
    cv.paint(
        cv.ellipse(x_ao - rng.uniform(11.0, 15.0), y_sm - 1.0, 5.0, 4.5), _K.VESSEL, venous_blood, only=cavity
    )

    # Lower poles of the kidneys (the right one lies lower, so it is more often cut at L3).
    ps_x, ps_w, _ = sp.psoas
    kidney_hu = {"none": 32.0, "venous": 160.0, "arterial": 150.0}[b.phase]
    for side, present in ((-1.0, 0.85), (1.0, 0.7)):
        if rng.random() > present:
            continue
        size = rng.uniform(0.55, 1.0) * b.frame
        kx, ky = 22.0 * size, 29.0 * size
        cx = side * (ps_x + ps_w + 0.8 * kx + rng.uniform(0.0, 8.0))
        cy = sp.y_body + rng.uniform(-4.0, 10.0)
        region = cv.ellipse(cx, cy, kx, ky, angle=side * rng.uniform(0.3, 0.6))
        cv.paint(region, _K.KIDNEY, kidney_hu, only=cavity)
        if b.phase == "arterial" and region is not None:
            sl, sub = region
            medulla = sub & (_local_depth_mm(sub, s) > 5.0)
            cv.paint((sl, medulla), _K.KIDNEY, 85.0, only=[_K.KIDNEY])

    def cavity_point(phi: float, inset: float) -> tuple[float, float]:
        """The point ``inset`` mm inside the abdominal wall along the direction ``phi``."""
        rad = float(np.interp(phi, outline.phi, outline.fascia, period=_TWO_PI)) - wall_t - inset
        return rad * np.sin(phi), -rad * np.cos(phi)

    # Inferior tip of the right liver lobe against the lateral wall.
    if rng.random() < 0.35:
        phi_l = -rng.uniform(1.2, 1.7)
        thick = rng.uniform(10.0, 20.0)
        lx, ly = cavity_point(phi_l, thick - 2.0)
        liver_hu = {"none": 58.0, "venous": 110.0, "arterial": 75.0}[b.phase]
        tangent = float(np.arctan2(np.cos(phi_l), -np.sin(phi_l)))  # rx along the wall
        region = cv.ellipse(lx, ly, rng.uniform(30.0, 50.0), thick, angle=tangent)
        cv.paint(region, _K.LIVER, liver_hu, only=cavity)

    # Colon: ascending (patient right, lateral), descending (left, posterolateral), sometimes transverse.
    colons = [
        (-rng.uniform(1.45, 1.9), rng.uniform(15.0, 25.0)),
        (rng.uniform(1.7, 2.1), rng.uniform(10.0, 16.0)),
    ]
    if rng.random() < 0.35:
        colons.append((rng.uniform(-0.5, 0.5), rng.uniform(14.0, 22.0)))
    for phi, radius in colons:
        radius *= b.frame
        cx, cy = cavity_point(phi, radius + 2.0)
        _paint_loop(
            rng,
            cv,
            b,
            cx,
            cy,
            radius,
            radius * rng.uniform(0.8, 1.0),
            rng.uniform(0, np.pi),
            wall_hu,
            colon=True,
        )

    # Small-bowel loops until the free cavity holds about the visceral fat the build asks for.
    free = cv.kind == _K.VAT
    pixel_cm2 = s * s / 100.0
    bowel_target_px = (np.count_nonzero(free) * pixel_cm2 - b.vat_target_cm2) / pixel_cm2
    clearance = ndimage.distance_transform_edt(free) * s
    candidates = np.flatnonzero(
        free.ravel() & (cv.y.ravel() < sp.y_body + sp.body_half_depth) & (clearance.ravel() > 4.0)
    )
    painted = 0
    tries = 0
    while painted < bowel_target_px and tries < 400 and candidates.size:
        tries += 1
        idx = int(candidates[rng.integers(candidates.size)])
        if cv.kind.flat[idx] != _K.VAT:
            continue
        radius = min(rng.uniform(10.0, 20.0), float(clearance.flat[idx]) + 4.0)
        if radius < 6.0:
            continue
        cx, cy = float(cv.x.flat[idx]), float(cv.y.flat[idx])
        painted += _paint_loop(
            rng, cv, b, cx, cy, radius, radius * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi), wall_hu
        )

    # Small mesenteric vessels in the remaining fat.
    fat = np.flatnonzero((cv.kind == _K.VAT).ravel() & (cv.y.ravel() < sp.y_body))
    for idx in (
        rng.choice(fat, size=min(fat.size, int(rng.integers(12, 40))), replace=False) if fat.size else []
    ):
        r = rng.uniform(0.7, 2.0)
        cv.paint(
            cv.ellipse(
                float(cv.x.flat[idx]),
                float(cv.y.flat[idx]),
                r,
                r * rng.uniform(0.6, 1.0),
                rng.uniform(0, np.pi),
            ),
            _K.VESSEL,
            venous_blood,
            only=cavity,
        )


def _paint_loop(
    rng: np.random.Generator,
    cv: _Canvas,
    b: _Build,
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    angle: float,
    wall_hu: float,
    colon: bool = False,
) -> int:
    """One bowel loop (wall, then contents) painted into free visceral fat; returns its pixels.

    The outline is an ellipse with a few random harmonics, so neighbouring loops pack like
    real, slightly deformed bowel rather than circles.
    """
    wobble = np.stack([rng.uniform(0.0, 0.12, 3) / np.arange(1, 4), rng.uniform(0, _TWO_PI, 3)], axis=1)
    region = cv.ellipse(cx, cy, rx, ry, angle, wobble=wobble)
    if region is None:
        return 0
    sl, sub = region
    sub = sub & (cv.kind[sl] == _K.VAT)
    n = cv.paint((sl, sub), _K.BOWEL_WALL, wall_hu + rng.normal(0.0, 5.0))
    wall = rng.uniform(1.2, 2.2) * (1.3 if colon else 1.0)
    inner = cv.ellipse(cx, cy, max(rx - wall, 0.5), max(ry - wall, 0.5), angle, box=sl, wobble=wobble)
    if inner is None:
        return n
    lumen = sub & inner[1]
    y = cv.y[sl]
    choice = rng.random()
    if colon:
        if choice < 0.65:
            cv.paint((sl, lumen), _K.STOOL, rng.uniform(-10.0, 40.0))
            for _ in range(int(rng.integers(8, 30))):
                bx = cx + rng.uniform(-0.7, 0.7) * rx
                by = cy + rng.uniform(-0.7, 0.7) * ry
                bubble = cv.ellipse(
                    bx, by, rng.uniform(0.8, 3.0), rng.uniform(0.8, 2.5), rng.uniform(0, np.pi)
                )
                cv.paint(bubble, _K.GAS, -1000.0, only=[_K.STOOL])
        else:
            level = cy + rng.uniform(-0.2, 0.7) * ry
            cv.paint((sl, lumen & (y < level)), _K.GAS, -1000.0)
            cv.paint((sl, lumen & (y >= level)), _K.LUMEN, rng.uniform(5.0, 25.0))
    elif choice < 0.25:  # collapsed: thick wall, a slit of fluid
        slit = cv.ellipse(cx, cy, 0.6 * rx, 0.15 * ry, angle, box=sl)
        if slit is not None:
            cv.paint((sl, lumen), _K.BOWEL_WALL, wall_hu - 10.0)
            cv.paint((sl, lumen & slit[1]), _K.LUMEN, 15.0)
    elif choice < 0.37:  # gas over fluid (supine: gas anterior)
        level = cy + rng.uniform(-0.3, 0.5) * ry
        cv.paint((sl, lumen & (y < level)), _K.GAS, -1000.0)
        cv.paint((sl, lumen & (y >= level)), _K.LUMEN, rng.uniform(5.0, 25.0))
    else:
        contrast = b.oral_contrast and rng.random() < 0.6
        content = rng.uniform(120.0, 320.0) if contrast else rng.uniform(5.0, 40.0)
        cv.paint((sl, lumen), _K.LUMEN, content)
    return n


def _paint_imat_blobs(rng: np.random.Generator, cv: _Canvas, b: _Build) -> None:
    """Intramuscular fat blobs, more with age and BMI (label MUSCLE, HU adipose)."""
    muscle = np.flatnonzero(cv.kind.ravel() == _K.MUSCLE)
    if not muscle.size:
        return
    count = rng.poisson(3.0 + 0.12 * max(b.age - 30.0, 0.0) + 0.3 * max(b.bmi - 22.0, 0.0))
    for idx in rng.choice(muscle, size=min(count, muscle.size), replace=False):
        r = rng.uniform(0.8, 3.0)
        blob = cv.ellipse(
            float(cv.x.flat[idx]), float(cv.y.flat[idx]), r * rng.uniform(1.0, 2.5), r, rng.uniform(0, np.pi)
        )
        cv.paint(blob, _K.IMAT, rng.uniform(-95.0, -60.0), only=[_K.MUSCLE])


def _paint_table(rng: np.random.Generator, cv: _Canvas, body: np.ndarray) -> None:
    """A curved carbon-fibre table top (two shells and a foam core) a few mm under the back."""
    s, size = cv.spacing, cv.size
    rows = np.arange(size)
    lowest = np.where(body.any(axis=0), np.max(np.where(body, rows[:, None], -1), axis=0), -1)  # (W,)
    X = cv.X1  # image frame, table is not rolled with the patient
    radius = rng.uniform(600.0, 1100.0)
    x_c = rng.uniform(-20.0, 20.0)
    rise = (X - x_c) ** 2 / (2.0 * radius)  # (W,) mm the top rises towards the edges
    body_cols = lowest >= 0
    gap = rng.uniform(3.0, 12.0)
    bottom_mm = cv.Y1[np.maximum(lowest, 0)]  # (W,)
    top_centre = float(np.max((bottom_mm + rise)[body_cols])) + gap + s
    top = top_centre - rise  # (W,) Y of the table surface
    shell, core = rng.uniform(2.0, 3.5), rng.uniform(25.0, 45.0)
    half_width = rng.uniform(210.0, 260.0)
    depth = cv.Y1[:, None] - top[None, :]  # (H, W) mm below the table surface
    within = (np.abs(X - x_c) < half_width)[None, :]
    slab = within & (depth >= 0.0) & (depth < 2 * shell + core)
    side = (np.abs(X - x_c) > half_width - shell)[None, :]
    shells = slab & ((depth < shell) | (depth >= shell + core) | side)
    cv.paint(cv.where(slab & ~shells), _K.TABLE_CORE, rng.uniform(-880.0, -780.0), only=[_K.AIR])
    cv.paint(cv.where(shells), _K.TABLE, rng.uniform(150.0, 350.0), only=[_K.AIR])


# ---------------------------------------------------------------------------------------------
# The slice


def generate_slice(
    rng: np.random.Generator, size: int = REFERENCE_SIZE, patient: dict[str, Any] | None = None
) -> PhantomSlice:
    """Draw one axial L3 CT slice with its tissue mask and truth areas.

    Args:
        rng: the random generator (the slice is a deterministic function of its state).
        size: matrix size H = W in pixels. The field of view (307-486 mm) does not depend on it:
            spacing is 0.6-0.95 mm at 512, ``512 / size`` times that otherwise.
        patient: a dict from :func:`generate_patient` (``sex``, ``height_m``, ``weight_kg``,
            optional ``age_years``); drawn from ``rng`` when None.

    Returns:
        A :class:`PhantomSlice`: (size, size) float32 HU and uint8 mask, spacing, truth areas.
    """
    if size < 64:
        raise ValueError(f"phantom slices need size >= 64 pixels, got {size}")
    if patient is None:
        patient = generate_patient(rng)
    b = _draw_build(rng, patient)
    outline = _draw_outline(rng, b)
    alpha = rng.normal(0.0, 0.03)  # patient roll on the table, rad

    # Field of view: the body plus margins and the table, about 10-30 % wider than the body.
    ca, sa = np.cos(alpha), np.sin(alpha)
    bx, by = outline.body * np.sin(outline.phi), -outline.body * np.cos(outline.phi)
    X, Y = ca * bx - sa * by, sa * bx + ca * by
    width, top, bottom = float(X.max() - X.min()), float(-Y.min()), float(Y.max())
    fov_needed = max(width + 30.0, top + bottom + 60.0)
    fov = max(fov_needed, width * rng.uniform(1.1, 1.3))
    fov = float(np.clip(round(fov), *FOV_RANGE_MM))
    shrink = min(1.0, (fov - 30.0) / (width + 1e-6), (fov - 60.0) / (top + bottom))
    if shrink < 1.0:  # a very large patient: scale the anatomy into the widest field of view
        outline.fascia *= shrink
        outline.body *= shrink
        outline.arc *= shrink
        width, top, bottom = width * shrink, top * shrink, bottom * shrink
    spacing = float(f"{fov / size:.10g}")  # exact in DICOM DS (fov is whole mm: exact at 512)
    spare = fov - (top + bottom) - 50.0  # room left once the table is under the body
    centre_row = (top + 12.0 + rng.uniform(0.0, 0.5) * max(spare - 12.0, 0.0)) / spacing - 0.5
    centre_col = size / 2.0 - 0.5 - (X.max() + X.min()) / 2.0 / spacing
    centre_col += rng.uniform(-1.0, 1.0) * max((fov - width) / 2.0 - 15.0, 0.0) * 0.4 / spacing
    cv = _Canvas(size, spacing, (centre_row, centre_col), alpha)

    # Body, skin, subcutaneous fat and the fascia.
    body = cv.r < _polar(outline, outline.body, cv.phi)
    inside_f = cv.r < _polar(outline, outline.fascia, cv.phi)
    cv.paint(cv.where(body), _K.SAT, b.sat_hu)
    r_f = _polar(outline, outline.fascia, cv.phi)
    r_b = _polar(outline, outline.body, cv.phi)
    rho = (cv.r - r_f) / np.maximum(r_b - r_f, 1e-3)  # 0 at the fascia, 1 at the skin
    scarpa_at = rng.uniform(0.35, 0.55) + 0.05 * np.sin(cv.phi * rng.uniform(3.0, 6.0))
    dashes = np.sin(cv.phi * rng.uniform(25.0, 45.0) + rng.uniform(0, _TWO_PI)) > -0.4
    scarpa = body & ~inside_f & (r_b - r_f > 12.0) & (np.abs(cv.phi) < 2.3) & dashes
    scarpa &= np.abs(rho - scarpa_at) * (r_b - r_f) < 0.5
    cv.paint(cv.where(scarpa), _K.SCARPA, -55.0, only=[_K.SAT])
    depth_b = ndimage.distance_transform_edt(body) * spacing
    cv.paint(cv.where(body & (depth_b <= rng.uniform(1.2, 2.5))), _K.SKIN, rng.uniform(30.0, 60.0))
    cv.paint(cv.where(inside_f), _K.VAT, b.vat_hu, only=[_K.SAT, _K.SCARPA])
    depth_f = np.asarray(ndimage.distance_transform_edt(inside_f) * spacing, dtype=np.float32)

    wall_t = _paint_wall(rng, cv, b, outline, depth_f, inside_f)
    spine = _paint_spine_and_back(rng, cv, b, outline)
    _paint_viscera(rng, cv, b, outline, spine, wall_t)
    _paint_imat_blobs(rng, cv, b)
    _paint_table(rng, cv, body)

    hu = _render(rng, cv, b, width)
    mask = _LABEL_OF[cv.kind]
    truth = truth_areas(hu, mask, (spacing, spacing))
    return PhantomSlice(
        hu=hu,
        mask=mask,
        spacing_mm=(spacing, spacing),
        body=body,
        patient=dict(patient),
        **truth,
    )


def _render(rng: np.random.Generator, cv: _Canvas, b: _Build, body_width_mm: float) -> np.ndarray:
    """Texture, CT blur and correlated noise, then keep every labelled pixel in its HU range."""
    s = cv.spacing
    amps = _TEXTURE[cv.kind]  # (H, W, 2)
    shape = (cv.size, cv.size)
    clean = (
        cv.base
        + amps[..., 0] * _unit_noise(rng, shape, 4.0 / s)
        + amps[..., 1] * _unit_noise(rng, shape, 1.0 / s)
    )
    blurred = ndimage.gaussian_filter(clean, 0.45 / s)  # scanner point-spread: partial volume
    sigma = 10.0 + 10.0 * float(np.clip((body_width_mm - 280.0) / 150.0, 0.0, 1.0)) + rng.normal(0.0, 0.8)
    sigma = float(np.clip(sigma, 10.0, 20.0))
    hu = blurred + np.float32(sigma) * _unit_noise(rng, shape, 0.55 / s)

    sat = (cv.kind == _K.SAT) | (cv.kind == _K.SCARPA)
    vat = cv.kind == _K.VAT
    compartment = (cv.kind == _K.MUSCLE) | (cv.kind == _K.IMAT)
    hu = np.rint(hu)
    hu[sat] = _fold(hu[sat], *ADIPOSE_HU)
    hu[vat] = _fold(hu[vat], *VAT_HU_DEFAULT)
    hu[compartment] = _fold(hu[compartment], *_COMPARTMENT_HU)
    return np.clip(hu, HU_MIN, HU_MAX).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Writing a cohort


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename it onto ``path``.

    Readers never see a half-written file; the temporary name keeps the suffixes (``.nii.gz``)
    that writers such as nibabel read the format from.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{''.join(path.suffixes)}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _image_position(sl: PhantomSlice, z_mm: float) -> list[float]:
    """ImagePositionPatient (LPS mm) of the centre of pixel (0, 0); the grid is centred on the
    scanner axis, rows running +y (posterior), columns +x (patient left)."""
    rows, cols = sl.hu.shape
    return [-sl.spacing_mm[1] * (cols - 1) / 2.0, -sl.spacing_mm[0] * (rows - 1) / 2.0, z_mm]


def _nifti_affine(sl: PhantomSlice, z_mm: float, thickness_mm: float) -> np.ndarray:
    """(4, 4) RAS affine of the NIfTI array indexed (i = column, j = row, k = 0).

    Same geometry as the DICOM file (ImageOrientationPatient [1, 0, 0, 0, 1, 0]): LPS +x and +y
    are RAS -x and -y, so the affine is diag(-s, -s, thickness) with the negated LPS origin, and
    ``nibabel.aff2axcodes`` reads ('L', 'P', 'S').
    """
    x0, y0, z0 = _image_position(sl, z_mm)
    return np.array(
        [
            [-sl.spacing_mm[1], 0.0, 0.0, -x0],
            [0.0, -sl.spacing_mm[0], 0.0, -y0],
            [0.0, 0.0, thickness_mm, z0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters) as close to ``value`` as fits."""
    for digits in range(15, 5, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.6g}"


def _write_dicom(
    path: Path,
    sl: PhantomSlice,
    case_id: str,
    seed: int,
    index: int,
    z_mm: float,
    thickness_mm: float,
    meta_rng: np.random.Generator,
) -> None:
    """One CT Image Storage file (explicit VR little endian, 12 of 16 bits, intercept -1024)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        UID,
        CTImageStorage,
        ExplicitVRLittleEndian,
        generate_uid,
    )

    def uid(tag: str) -> UID:  # deterministic: the same seed and case give the same UIDs
        return generate_uid(entropy_srcs=["lsmseg-phantom", str(seed), case_id, tag])

    patient = sl.patient
    ipp = _image_position(sl, z_mm)
    study = datetime.datetime(2020, 1, 1, 8, 0, 0) + datetime.timedelta(
        days=int(meta_rng.integers(0, 1500)), seconds=int(meta_rng.integers(0, 10 * 3600))
    )
    date, time = study.strftime("%Y%m%d"), study.strftime("%H%M%S")
    sop_uid = uid("sop")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "LSMSEG_PHANTOM"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
    ds.AccessionNumber = f"PH{seed:04d}{index:05d}"[-16:]
    ds.Modality = "CT"
    ds.Manufacturer = "lsmseg phantom"
    ds.ManufacturerModelName = "synthetic L3"
    ds.InstitutionName = "lsmseg"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic abdominal CT (L3 phantom)"
    ds.SeriesDescription = "L3 axial"
    ds.PatientName = f"Phantom^{case_id}"
    ds.PatientID = case_id
    ds.PatientBirthDate = ""
    ds.PatientSex = patient.get("sex", "O")
    ds.PatientAge = f"{int(patient.get('age_years', 0)):03d}Y"
    ds.PatientSize = f"{float(patient['height_m']):.2f}"
    ds.PatientWeight = f"{float(patient['weight_kg']):.1f}"
    ds.BodyPartExamined = "ABDOMEN"
    ds.SliceThickness = f"{thickness_mm:g}"
    ds.KVP = "120"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.StudyID = f"{index + 1}"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [_ds(v) for v in ipp]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = uid("frame")
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = _ds(z_mm)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = sl.hu.shape
    ds.PixelSpacing = [_ds(sl.spacing_mm[0]), _ds(sl.spacing_mm[1])]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    stored = (np.rint(sl.hu).astype(np.int32) - HU_MIN).astype(np.uint16)
    ds.PixelData = stored.tobytes()
    _atomic_write(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))


def _write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """An (H, W) array as a one-slice NIfTI-1 volume indexed (column, row, 0), RAS ``affine``."""
    import nibabel as nib

    img = nib.Nifti1Image(np.ascontiguousarray(array.T[:, :, None]), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    img.header.set_data_dtype(array.dtype)
    _atomic_write(path, lambda tmp: nib.save(img, str(tmp)))


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    _atomic_write(path, write)


def cohort_case_id(index: int) -> str:
    """Case id of the ``index``-th (0-based) case of a cohort: ``phantom_0001`` for index 0."""
    return f"phantom_{index + 1:04d}"


def cohort_slice(seed: int, index: int, size: int = REFERENCE_SIZE) -> PhantomSlice:
    """The ``index``-th (0-based) slice of the cohort ``seed``, as :func:`write_cohort` draws it.

    It depends on ``(seed, index)`` only, so cohorts of any size share their first cases.
    """
    rng = np.random.default_rng([seed, index])
    return generate_slice(rng, size=size, patient=generate_patient(rng, cohort_case_id(index)))


def write_cohort(
    out_dir: str | Path,
    n: int,
    fmt: Literal["dicom", "nifti"] = "dicom",
    seed: int = 0,
    size: int = REFERENCE_SIZE,
) -> list[str]:
    """Write ``n`` synthetic L3 cases with masks, patient table and truth areas.

    Layout: ``out_dir/images/<case_id>.dcm`` (CT Image Storage; PatientID = case_id) or
    ``.nii.gz`` (int16 HU), ``out_dir/masks/<case_id>.nii.gz`` (uint8 ``Tissue`` labels on the
    image grid and geometry), ``out_dir/patients.csv`` (``PATIENT_COLUMNS``) and
    ``out_dir/truth.csv`` (``TRUTH_COLUMNS``, cm^2 with 3 decimals). Case ``i`` is
    :func:`cohort_slice` ``(seed, i, size)``, so a larger cohort extends a smaller one; DICOM UIDs
    are derived from the seed and case id, so a rerun writes identical files. Every file is
    written atomically (temporary file, then rename).

    Returns:
        The case ids, ``phantom_0001`` ... in order.
    """
    if fmt not in ("dicom", "nifti"):
        raise ValueError(f"unknown phantom format {fmt!r}: use 'dicom' or 'nifti'")
    if n < 1:
        raise ValueError(f"the phantom cohort needs n >= 1 cases, got {n}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    patients: list[dict[str, Any]] = []
    truths: list[dict[str, Any]] = []
    case_ids: list[str] = []
    for i in range(n):
        case_id = cohort_case_id(i)
        sl = cohort_slice(seed, i, size=size)
        meta_rng = np.random.default_rng([seed, i, 1])
        z_mm = round(float(meta_rng.uniform(-250.0, -100.0)), 2)
        thickness_mm = float(meta_rng.choice([1.0, 2.5, 3.0, 5.0]))
        affine = _nifti_affine(sl, z_mm, thickness_mm)
        if fmt == "dicom":
            _write_dicom(
                out / "images" / f"{case_id}.dcm", sl, case_id, seed, i, z_mm, thickness_mm, meta_rng
            )
        else:
            _write_nifti(out / "images" / f"{case_id}.nii.gz", sl.hu.astype(np.int16), affine)
        _write_nifti(out / "masks" / f"{case_id}.nii.gz", sl.mask.astype(np.uint8), affine)
        patients.append(
            {
                "case_id": case_id,
                "height_m": f"{sl.patient['height_m']:.2f}",
                "weight_kg": f"{sl.patient['weight_kg']:.1f}",
                "sex": sl.patient["sex"],
            }
        )
        truths.append({"case_id": case_id, **{k: f"{v:.3f}" for k, v in sl.truth().items()}})
        case_ids.append(case_id)
    _write_csv(out / "patients.csv", PATIENT_COLUMNS, patients)
    _write_csv(out / "truth.csv", TRUTH_COLUMNS, truths)
    return case_ids


def phantom_cli(out_dir: str | Path, n: int, fmt: str = "dicom", seed: int = 0) -> str:
    """Body of ``lsmseg phantom DIR --n N [--format dicom|nifti] [--seed S]``: a one-line summary.

    Raises:
        ValueError: for an unknown format or n < 1 (the message is for the user).
    """
    if fmt not in ("dicom", "nifti"):
        raise ValueError(f"unknown phantom format {fmt!r}: use 'dicom' or 'nifti'")
    ids = write_cohort(out_dir, n, fmt=fmt, seed=seed)  # type: ignore[arg-type]
    return (
        f"wrote {len(ids)} synthetic L3 slices ({fmt}) to {out_dir}: images/, masks/, "
        f"patients.csv, truth.csv ({ids[0]} .. {ids[-1]})"
    )
