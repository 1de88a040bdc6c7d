"""One synthetic L3 slice: the anatomy painted on a canvas, then rendered to CT numbers.

:func:`generate_slice` places the body in a field of view, paints it from the outside in (body
layers, muscles and spine, viscera, intramuscular fat, table), and renders the painted kinds to
HU: per-tissue texture, scanner blur (partial volume) and correlated noise, each labelled pixel
kept inside the HU range of its label so the truth is exact (see :func:`truth_areas`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from lsmseg.data.phantom.anatomy import Build, Outline, draw_build, draw_outline, generate_patient
from lsmseg.data.phantom.body import (
    paint_body_layers,
    paint_imat_blobs,
    paint_spine_and_back,
    paint_table,
    paint_wall,
)
from lsmseg.data.phantom.canvas import LABEL_OF, N_KINDS, Canvas, Kind, fold, unit_noise
from lsmseg.data.phantom.viscera import paint_viscera
from lsmseg.keys import ADIPOSE_HU, MUSCLE_HU, VAT_HU_DEFAULT, Tissue

REFERENCE_SIZE = 512  # matrix size at which the pixel spacing is 0.6-0.95 mm
FOV_RANGE_MM = (0.6 * REFERENCE_SIZE, 0.95 * REFERENCE_SIZE)  # reconstruction field of view
HU_MIN, HU_MAX = -1024, 3071  # 12-bit CT range (stored value = HU + 1024)

_COMPARTMENT_HU = (ADIPOSE_HU[0], MUSCLE_HU[1])  # muscle compartment: IMAT or muscle

_TEXTURE = np.zeros((N_KINDS, 2), np.float32)
for _kind, _amps in {
    Kind.SAT: (4, 4),
    Kind.SCARPA: (3, 3),
    Kind.VAT: (5, 5),
    Kind.MUSCLE: (3, 4),
    Kind.IMAT: (4, 6),
    Kind.BOWEL_WALL: (6, 6),
    Kind.LUMEN: (5, 6),
    Kind.STOOL: (20, 30),
    Kind.KIDNEY: (4, 5),
    Kind.LIVER: (3, 4),
    Kind.VESSEL: (3, 3),
    Kind.TRABECULAR: (25, 45),
    Kind.CORTICAL: (60, 80),
    Kind.CSF: (2, 3),
    Kind.EPIDURAL_FAT: (5, 8),
    Kind.SKIN: (4, 6),
    Kind.FASCIA: (4, 6),
    Kind.TABLE_CORE: (5, 5),
}.items():
    _TEXTURE[_kind] = _amps


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
    b = draw_build(rng, patient)
    outline = draw_outline(rng, b)
    cv, width = _place_on_grid(rng, outline, size)

    body, inside_f, depth_f = paint_body_layers(rng, cv, b, outline)
    wall_t = paint_wall(rng, cv, b, outline, depth_f, inside_f)
    spine = paint_spine_and_back(rng, cv, b, outline)
    paint_viscera(rng, cv, b, outline, spine, wall_t)
    paint_imat_blobs(rng, cv, b)
    paint_table(rng, cv, body)

    hu = _render(rng, cv, b, width)
    mask = LABEL_OF[cv.kind]
    truth = truth_areas(hu, mask, (cv.spacing, cv.spacing))
    return PhantomSlice(
        hu=hu,
        mask=mask,
        spacing_mm=(cv.spacing, cv.spacing),
        body=body,
        patient=dict(patient),
        **truth,
    )


def _place_on_grid(rng: np.random.Generator, outline: Outline, size: int) -> tuple[Canvas, float]:
    """The canvas: a field of view 10-30 % wider than the body, with room for the table below.

    The patient is rolled by a small random angle and placed off centre. A patient too large for
    the widest field of view has ``outline`` scaled down in place.

    Returns:
        The (size, size) canvas and the body width (mm) after any scaling.
    """
    alpha = rng.normal(0.0, 0.03)  # patient roll on the table, rad
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
    return Canvas(size, spacing, (centre_row, centre_col), alpha), width


def _render(rng: np.random.Generator, cv: Canvas, b: Build, body_width_mm: float) -> np.ndarray:
    """Texture, CT blur and correlated noise, then keep every labelled pixel in its HU range."""
    s = cv.spacing
    amps = _TEXTURE[cv.kind]  # (H, W, 2)
    shape = (cv.size, cv.size)
    clean = (
        cv.base
        + amps[..., 0] * unit_noise(rng, shape, 4.0 / s)
        + amps[..., 1] * unit_noise(rng, shape, 1.0 / s)
    )
    blurred = ndimage.gaussian_filter(clean, 0.45 / s)  # scanner point-spread: partial volume
    sigma = 10.0 + 10.0 * float(np.clip((body_width_mm - 280.0) / 150.0, 0.0, 1.0)) + rng.normal(0.0, 0.8)
    sigma = float(np.clip(sigma, 10.0, 20.0))
    hu = blurred + np.float32(sigma) * unit_noise(rng, shape, 0.55 / s)

    sat = (cv.kind == Kind.SAT) | (cv.kind == Kind.SCARPA)
    vat = cv.kind == Kind.VAT
    compartment = (cv.kind == Kind.MUSCLE) | (cv.kind == Kind.IMAT)
    hu = np.rint(hu)
    hu[sat] = fold(hu[sat], *ADIPOSE_HU)
    hu[vat] = fold(hu[vat], *VAT_HU_DEFAULT)
    hu[compartment] = fold(hu[compartment], *_COMPARTMENT_HU)
    return np.clip(hu, HU_MIN, HU_MAX).astype(np.float32)
