"""The abdominal cavity: great vessels, kidneys, liver tip, colon, small bowel and mesenteric
vessels, painted into the visceral fat until the fat left is about what the build asks for.

Every step draws from the same random generator in a fixed order, so a slice stays a
deterministic function of its seed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lsmseg.data.phantom.anatomy import Build, Outline, Spine
from lsmseg.data.phantom.canvas import TWO_PI, Canvas, Kind, local_depth_mm

_CAVITY = [Kind.VAT]  # organs are painted over free visceral fat only
# Attenuation (HU) by contrast phase: unenhanced, portal venous, arterial.
_ARTERIAL_HU = {"none": 42.0, "venous": 165.0, "arterial": 260.0}
_VENOUS_HU = {"none": 40.0, "venous": 150.0, "arterial": 70.0}
_BOWEL_WALL_HU = {"none": 38.0, "venous": 70.0, "arterial": 60.0}
_KIDNEY_HU = {"none": 32.0, "venous": 160.0, "arterial": 150.0}
_LIVER_HU = {"none": 58.0, "venous": 110.0, "arterial": 75.0}


def paint_viscera(
    rng: np.random.Generator, cv: Canvas, b: Build, outline: Outline, sp: Spine, wall_t: float
) -> None:
    """Vessels, kidneys, liver tip, colon, small bowel and mesenteric vessels in the cavity.

    Args:
        wall_t: thickness (mm) of the oblique muscles, which the colon and liver keep clear of.
    """
    _paint_great_vessels(rng, cv, b, sp)
    _paint_kidneys(rng, cv, b, sp)
    _paint_liver_tip(rng, cv, b, outline, wall_t)
    _paint_colon(rng, cv, b, outline, wall_t)
    _paint_small_bowel(rng, cv, b, sp)
    _paint_mesenteric_vessels(rng, cv, b, sp)


def _cavity_point(outline: Outline, wall_t: float, phi: float, inset: float) -> tuple[float, float]:
    """The point (x, y) mm ``inset`` mm inside the abdominal wall along the direction ``phi``."""
    rad = float(np.interp(phi, outline.phi, outline.fascia, period=TWO_PI)) - wall_t - inset
    return rad * np.sin(phi), -rad * np.cos(phi)


def _paint_great_vessels(rng: np.random.Generator, cv: Canvas, b: Build, sp: Spine) -> None:
    """Aorta (left of the midline, calcified plaques in older patients), IVC on the right, and
    the superior mesenteric artery and vein in the fat in front of the aorta."""
    blood, venous_blood = _ARTERIAL_HU[b.phase], _VENOUS_HU[b.phase]
    front = sp.y_body - sp.body_half_depth
    r_ao = rng.uniform(8.5, 11.0) + 0.04 * max(b.age - 50.0, 0.0) + (1.0 if b.sex == "M" else 0.0)
    x_ao, y_ao = rng.uniform(6.0, 14.0), front - r_ao - 1.5
    cv.paint(cv.ellipse(x_ao, y_ao, r_ao, r_ao), Kind.VESSEL, blood, only=_CAVITY)
    if b.age > 50 and rng.random() < 0.3 + 0.015 * (b.age - 50.0):
        for _ in range(int(rng.integers(1, 5))):
            a = rng.uniform(0.0, TWO_PI)
            cx, cy = x_ao + (r_ao - 0.8) * np.sin(a), y_ao - (r_ao - 0.8) * np.cos(a)
            cv.paint(cv.ellipse(cx, cy, rng.uniform(0.8, 1.6), 1.0, angle=a), Kind.CALCIFICATION, 700.0)
    ivc_w = rng.uniform(9.0, 13.0)
    ivc_d = ivc_w * rng.uniform(0.55, 0.85)
    x_ivc = -rng.uniform(14.0, 22.0)
    cv.paint(
        cv.ellipse(x_ivc, front - ivc_d - 1.0, ivc_w, ivc_d, angle=rng.uniform(-0.3, 0.3)),
        Kind.VESSEL,
        venous_blood,
        only=_CAVITY,
    )
    y_sm = y_ao - r_ao - rng.uniform(10.0, 20.0)
    cv.paint(cv.ellipse(x_ao - 3.0, y_sm, 3.2, 3.2), Kind.VESSEL, blood, only=_CAVITY)
    cv.paint(
        cv.ellipse(x_ao - rng.uniform(11.0, 15.0), y_sm - 1.0, 5.0, 4.5),
        Kind.VESSEL,
        venous_blood,
        only=_CAVITY,
    )


def _paint_kidneys(rng: np.random.Generator, cv: Canvas, b: Build, sp: Spine) -> None:
    """Lower poles of the kidneys (the right one lies lower, so it is more often cut at L3)."""
    ps_x, ps_w, _ = sp.psoas
    for side, present in ((-1.0, 0.85), (1.0, 0.7)):
        if rng.random() > present:
            continue
        size = rng.uniform(0.55, 1.0) * b.frame
        kx, ky = 22.0 * size, 29.0 * size
        cx = side * (ps_x + ps_w + 0.8 * kx + rng.uniform(0.0, 8.0))
        cy = sp.y_body + rng.uniform(-4.0, 10.0)
        region = cv.ellipse(cx, cy, kx, ky, angle=side * rng.uniform(0.3, 0.6))
        cv.paint(region, Kind.KIDNEY, _KIDNEY_HU[b.phase], only=_CAVITY)
        if b.phase == "arterial" and region is not None:  # corticomedullary phase: darker medulla
            sl, sub = region
            medulla = sub & (local_depth_mm(sub, cv.spacing) > 5.0)
            cv.paint((sl, medulla), Kind.KIDNEY, 85.0, only=[Kind.KIDNEY])


def _paint_liver_tip(rng: np.random.Generator, cv: Canvas, b: Build, outline: Outline, wall_t: float) -> None:
    """Inferior tip of the right liver lobe against the lateral wall, in about a third of patients."""
    if rng.random() >= 0.35:
        return
    phi_l = -rng.uniform(1.2, 1.7)
    thick = rng.uniform(10.0, 20.0)
    lx, ly = _cavity_point(outline, wall_t, phi_l, thick - 2.0)
    tangent = float(np.arctan2(np.cos(phi_l), -np.sin(phi_l)))  # rx along the wall
    region = cv.ellipse(lx, ly, rng.uniform(30.0, 50.0), thick, angle=tangent)
    cv.paint(region, Kind.LIVER, _LIVER_HU[b.phase], only=_CAVITY)


def _paint_colon(rng: np.random.Generator, cv: Canvas, b: Build, outline: Outline, wall_t: float) -> None:
    """Ascending (patient right, lateral), descending (left, posterolateral), sometimes transverse."""
    colons = [
        (-rng.uniform(1.45, 1.9), rng.uniform(15.0, 25.0)),
        (rng.uniform(1.7, 2.1), rng.uniform(10.0, 16.0)),
    ]
    if rng.random() < 0.35:
        colons.append((rng.uniform(-0.5, 0.5), rng.uniform(14.0, 22.0)))
    for phi, radius in colons:
        radius *= b.frame
        cx, cy = _cavity_point(outline, wall_t, phi, radius + 2.0)
        ry = radius * rng.uniform(0.8, 1.0)
        angle = rng.uniform(0, np.pi)
        paint_loop(rng, cv, b, cx, cy, radius, ry, angle, _BOWEL_WALL_HU[b.phase], colon=True)


def _paint_small_bowel(rng: np.random.Generator, cv: Canvas, b: Build, sp: Spine) -> None:
    """Small-bowel loops until the free cavity holds about the visceral fat the build asks for."""
    s = cv.spacing
    free = cv.kind == Kind.VAT
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
        if cv.kind.flat[idx] != Kind.VAT:
            continue
        radius = min(rng.uniform(10.0, 20.0), float(clearance.flat[idx]) + 4.0)
        if radius < 6.0:
            continue
        cx, cy = float(cv.x.flat[idx]), float(cv.y.flat[idx])
        ry = radius * rng.uniform(0.6, 1.0)
        angle = rng.uniform(0, np.pi)
        painted += paint_loop(rng, cv, b, cx, cy, radius, ry, angle, _BOWEL_WALL_HU[b.phase])


def _paint_mesenteric_vessels(rng: np.random.Generator, cv: Canvas, b: Build, sp: Spine) -> None:
    """12-40 small vessels (0.7-2 mm) in the fat left in front of the vertebral body."""
    fat = np.flatnonzero((cv.kind == Kind.VAT).ravel() & (cv.y.ravel() < sp.y_body))
    if not fat.size:
        return
    for idx in rng.choice(fat, size=min(fat.size, int(rng.integers(12, 40))), replace=False):
        r = rng.uniform(0.7, 2.0)
        ry = r * rng.uniform(0.6, 1.0)
        angle = rng.uniform(0, np.pi)
        vessel = cv.ellipse(float(cv.x.flat[idx]), float(cv.y.flat[idx]), r, ry, angle)
        cv.paint(vessel, Kind.VESSEL, _VENOUS_HU[b.phase], only=_CAVITY)


def paint_loop(
    rng: np.random.Generator,
    cv: Canvas,
    b: Build,
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    angle: float,
    wall_hu: float,
    colon: bool = False,
) -> int:
    """One bowel loop (wall, then contents) painted into free visceral fat; returns its pixels.

    The outline is an ellipse centred at (cx, cy) mm with half-axes (rx, ry) mm and a few random
    harmonics, so neighbouring loops pack like real, slightly deformed bowel rather than circles.
    """
    wobble = np.stack([rng.uniform(0.0, 0.12, 3) / np.arange(1, 4), rng.uniform(0, TWO_PI, 3)], axis=1)
    region = cv.ellipse(cx, cy, rx, ry, angle, wobble=wobble)
    if region is None:
        return 0
    sl, sub = region
    sub = sub & (cv.kind[sl] == Kind.VAT)
    n = cv.paint((sl, sub), Kind.BOWEL_WALL, wall_hu + rng.normal(0.0, 5.0))
    wall = rng.uniform(1.2, 2.2) * (1.3 if colon else 1.0)
    inner = cv.ellipse(cx, cy, max(rx - wall, 0.5), max(ry - wall, 0.5), angle, box=sl, wobble=wobble)
    if inner is None:
        return n
    lumen = (sl, sub & inner[1])
    if colon:
        _fill_colon(rng, cv, lumen, cx, cy, rx, ry)
    else:
        _fill_small_bowel(rng, cv, b, lumen, cx, cy, rx, ry, angle, wall_hu)
    return n


def _fill_colon(
    rng: np.random.Generator,
    cv: Canvas,
    lumen: tuple[tuple[slice, slice], np.ndarray],
    cx: float,
    cy: float,
    rx: float,
    ry: float,
) -> None:
    """Colon contents: stool with gas bubbles, or gas over fluid (supine: gas anterior)."""
    sl, inside = lumen
    y = cv.y[sl]
    if rng.random() < 0.65:
        cv.paint(lumen, Kind.STOOL, rng.uniform(-10.0, 40.0))
        for _ in range(int(rng.integers(8, 30))):
            bx = cx + rng.uniform(-0.7, 0.7) * rx
            by = cy + rng.uniform(-0.7, 0.7) * ry
            bubble = cv.ellipse(bx, by, rng.uniform(0.8, 3.0), rng.uniform(0.8, 2.5), rng.uniform(0, np.pi))
            cv.paint(bubble, Kind.GAS, -1000.0, only=[Kind.STOOL])
    else:
        level = cy + rng.uniform(-0.2, 0.7) * ry
        cv.paint((sl, inside & (y < level)), Kind.GAS, -1000.0)
        cv.paint((sl, inside & (y >= level)), Kind.LUMEN, rng.uniform(5.0, 25.0))


def _fill_small_bowel(
    rng: np.random.Generator,
    cv: Canvas,
    b: Build,
    lumen: tuple[tuple[slice, slice], np.ndarray],
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    angle: float,
    wall_hu: float,
) -> None:
    """Small-bowel contents: collapsed (a slit of fluid), gas over fluid, or fluid / oral contrast."""
    sl, inside = lumen
    y = cv.y[sl]
    choice = rng.random()
    if choice < 0.25:  # collapsed: thick wall, a slit of fluid
        slit = cv.ellipse(cx, cy, 0.6 * rx, 0.15 * ry, angle, box=sl)
        if slit is not None:
            cv.paint(lumen, Kind.BOWEL_WALL, wall_hu - 10.0)
            cv.paint((sl, inside & slit[1]), Kind.LUMEN, 15.0)
    elif choice < 0.37:  # gas over fluid (supine: gas anterior)
        level = cy + rng.uniform(-0.3, 0.5) * ry
        cv.paint((sl, inside & (y < level)), Kind.GAS, -1000.0)
        cv.paint((sl, inside & (y >= level)), Kind.LUMEN, rng.uniform(5.0, 25.0))
    else:
        contrast = b.oral_contrast and rng.random() < 0.6
        content = rng.uniform(120.0, 320.0) if contrast else rng.uniform(5.0, 40.0)
        cv.paint(lumen, Kind.LUMEN, content)
