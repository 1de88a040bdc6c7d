"""The body wall and the spine: skin, subcutaneous fat, the muscles (abdominal wall, back,
psoas, quadratus lumborum) with their intramuscular fat, the L3 vertebra, and the CT table."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lsmseg.data.phantom.anatomy import Build, Outline, Spine, polar
from lsmseg.data.phantom.canvas import TWO_PI, Canvas, Kind, fourier, local_depth_mm, smoothstep


def paint_body_layers(
    rng: np.random.Generator, cv: Canvas, b: Build, outline: Outline
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skin, subcutaneous fat with Scarpa's fascia, and the visceral fat filling the fascia.

    Returns:
        body: (H, W) bool, the patient inside the skin; inside_f: (H, W) bool, inside the muscle
        fascia; depth_f: (H, W) float32 depth (mm) below the fascia.
    """
    spacing = cv.spacing
    body = cv.r < polar(outline, outline.body, cv.phi)
    inside_f = cv.r < polar(outline, outline.fascia, cv.phi)
    cv.paint(cv.where(body), Kind.SAT, b.sat_hu)
    r_f = polar(outline, outline.fascia, cv.phi)
    r_b = polar(outline, outline.body, cv.phi)
    rho = (cv.r - r_f) / np.maximum(r_b - r_f, 1e-3)  # 0 at the fascia, 1 at the skin
    scarpa_at = rng.uniform(0.35, 0.55) + 0.05 * np.sin(cv.phi * rng.uniform(3.0, 6.0))
    dashes = np.sin(cv.phi * rng.uniform(25.0, 45.0) + rng.uniform(0, TWO_PI)) > -0.4
    scarpa = body & ~inside_f & (r_b - r_f > 12.0) & (np.abs(cv.phi) < 2.3) & dashes
    scarpa &= np.abs(rho - scarpa_at) * (r_b - r_f) < 0.5
    cv.paint(cv.where(scarpa), Kind.SCARPA, -55.0, only=[Kind.SAT])
    depth_b = ndimage.distance_transform_edt(body) * spacing
    cv.paint(cv.where(body & (depth_b <= rng.uniform(1.2, 2.5))), Kind.SKIN, rng.uniform(30.0, 60.0))
    cv.paint(cv.where(inside_f), Kind.VAT, b.vat_hu, only=[Kind.SAT, Kind.SCARPA])
    depth_f = np.asarray(ndimage.distance_transform_edt(inside_f) * spacing, dtype=np.float32)
    return body, inside_f, depth_f


def paint_wall(
    rng: np.random.Generator,
    cv: Canvas,
    b: Build,
    outline: Outline,
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
    rectus = rect_t * smoothstep((s - r0) / 5.0) * smoothstep((r1 - s) / 18.0)
    rectus *= 1.0 + 0.15 * np.sin(np.pi * np.clip((s - r0) / rect_w, 0.0, 1.0))
    s_obl = r1 + rng.uniform(4.0, 14.0)
    oblique = obl_t * smoothstep((s - s_obl) / 45.0) * (1.0 + 0.1 * np.sin(np.pi * u))
    posterior = lat_t + (oblique - lat_t) * smoothstep((0.78 - u) / 0.16)
    oblique = np.where(u > 0.5, np.maximum(posterior, lat_t * (u > 0.62)), oblique)
    thickness = np.maximum(rectus, oblique)
    thickness *= 1.0 + fourier(rng, outline.phi, 0.06, range(3, 9))

    t_px = polar(outline, thickness, cv.phi)
    band = inside_f & (depth_f < t_px)
    cv.paint(cv.where(band), Kind.MUSCLE, b.muscle_hu + rng.normal(0.0, 2.0), only=[Kind.VAT])

    # Fat planes between external oblique, internal oblique and transversus (IMAT).
    s_px = polar(outline, s, cv.phi)
    u_px = polar(outline, u, cv.phi)
    planes = band & (s_px > s_obl + 20.0) & (u_px < 0.66) & (t_px > 9.0)
    wave = 0.04 * np.sin(cv.phi * rng.uniform(6.0, 10.0) + rng.uniform(0, TWO_PI))
    width = 0.45 + 0.25 * (b.bmi > 28)
    for frac in (rng.uniform(0.3, 0.4), rng.uniform(0.6, 0.7)):
        dashes = np.sin(cv.phi * rng.uniform(10.0, 20.0) + rng.uniform(0, TWO_PI)) > rng.uniform(-0.5, 0.3)
        plane = planes & dashes & (np.abs(depth_f - (frac + wave) * t_px) < width)
        cv.paint(cv.where(plane), Kind.IMAT, -75.0, only=[Kind.MUSCLE])

    # Linea alba and linea semilunaris: fibrous (background), with preperitoneal fat behind.
    fascia_zone = (s_px < r0 + 2.0) | ((s_px > r1 - 6.0) & (s_px < s_obl + 12.0))
    fascia_t = rng.uniform(1.5, 2.5)
    cv.paint(cv.where(fascia_zone & inside_f & (depth_f < fascia_t)), Kind.FASCIA, 35.0)
    return float(obl_t)


def paint_spine_and_back(rng: np.random.Generator, cv: Canvas, b: Build, outline: Outline) -> Spine:
    """Erector spinae, psoas and quadratus lumborum pairs, then the L3 vertebra over them."""
    f, m = b.frame * (1.0 if b.sex == "M" else 0.92), b.muscle_scale
    vb_w, vb_d = rng.uniform(22.0, 26.0) * f, rng.uniform(15.5, 18.0) * f
    canal_w, canal_d = rng.uniform(10.0, 12.5), rng.uniform(7.0, 9.0)
    spinous = rng.uniform(26.0, 32.0) * f
    y_back = float(np.interp(np.pi, outline.phi, outline.fascia, period=TWO_PI))
    y_tip = y_back - rng.uniform(6.0, 11.0)
    y_canal = y_tip - spinous - canal_d - 5.0
    y_vb = y_canal - canal_d - vb_d + 1.0
    y_tp = y_canal - 1.0
    tp_reach = canal_w + 6.0 + rng.uniform(20.0, 28.0) * f
    sp = Spine(y_vb, vb_w, vb_d, y_canal, canal_w, canal_d, y_tip, tp_reach, y_tp)
    inside_f = cv.kind == Kind.VAT  # the cavity before deep muscles (the wall is muscle already)

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
            cv.paint((sl, sub), Kind.MUSCLE, hu, only=[Kind.VAT, Kind.MUSCLE])
            # Fat plane between multifidus and longissimus, commoner with age.
            if rng.random() < 0.4 + 0.01 * (b.age - 40.0):
                xs = side * (2.0 + es_w * rng.uniform(0.6, 0.9))
                bend = rng.uniform(-0.15, 0.15)
                line = np.abs(cv.x[sl] - xs - bend * (cv.y[sl] - cy)) < rng.uniform(0.5, 0.9)
                cv.paint((sl, line & sub), Kind.IMAT, -70.0, only=[Kind.MUSCLE])

    # Psoas beside the vertebral body, quadratus lumborum beyond the transverse processes.
    ps_w, ps_d = rng.uniform(17.0, 21.0) * m, rng.uniform(15.0, 18.0) * m
    ps_x = vb_w + 0.55 * ps_w
    sp.psoas = (ps_x, ps_w, ps_d)
    ql_w, ql_d = rng.uniform(17.0, 23.0) * m, rng.uniform(7.0, 10.0) * m
    for side in (-1.0, 1.0):
        psoas = cv.ellipse(side * ps_x, y_vb - 0.1 * vb_d, ps_w, ps_d, angle=side * 0.35)
        cv.paint(psoas, Kind.MUSCLE, b.muscle_hu + 3.0 + rng.normal(0.0, 2.0), only=[Kind.VAT])
        ql = cv.ellipse(side * (tp_reach + 0.4 * ql_w), y_tp + 4.0, ql_w, ql_d, angle=-side * 0.45)
        cv.paint(ql, Kind.MUSCLE, b.muscle_hu + rng.normal(0.0, 2.0), only=[Kind.VAT])

    # Supraspinous ligament between the erector spinae, from the spinous tip to the fascia.
    lig = (np.abs(cv.x) < 1.8) & (cv.y > y_tip - 3.0) & (cv.y < y_back + 1.0)
    cv.paint(cv.where(lig), Kind.FASCIA, 40.0, only=[Kind.VAT, Kind.MUSCLE])

    paint_vertebra(rng, cv, b, sp)
    return sp


def paint_vertebra(rng: np.random.Generator, cv: Canvas, b: Build, sp: Spine) -> None:
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
    depth = local_depth_mm(sub, s)
    cortex = sub & (depth < rng.uniform(1.4, 2.2))
    cv.paint((sl, sub & ~cortex), Kind.TRABECULAR, b.trabecular_hu)
    cv.paint((sl, cortex), Kind.CORTICAL, cortical_hu)
    # Basivertebral vein entering the back of the body.
    cv.paint(cv.ellipse(0.0, sp.y_body + sp.body_half_depth - 3.5, 2.5, 3.0), Kind.VESSEL, 45.0)

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
    depth = local_depth_mm(elements, s)
    rim = elements & (depth < 1.3)
    cv.paint((box, elements & ~rim), Kind.TRABECULAR, element_hu)
    cv.paint((box, rim), Kind.CORTICAL, cortical_hu - 50.0)
    # Canal: epidural fat round the thecal sac.
    cv.paint((box, canal), Kind.EPIDURAL_FAT, -90.0)
    sac = ell(0.0, sp.y_canal - 0.8, 0.78 * sp.canal_half_width, 0.78 * sp.canal_half_depth)
    cv.paint((box, sac), Kind.CSF, 12.0)


def paint_imat_blobs(rng: np.random.Generator, cv: Canvas, b: Build) -> None:
    """Intramuscular fat blobs, more with age and BMI (label MUSCLE, HU adipose)."""
    muscle = np.flatnonzero(cv.kind.ravel() == Kind.MUSCLE)
    if not muscle.size:
        return
    count = rng.poisson(3.0 + 0.12 * max(b.age - 30.0, 0.0) + 0.3 * max(b.bmi - 22.0, 0.0))
    for idx in rng.choice(muscle, size=min(count, muscle.size), replace=False):
        r = rng.uniform(0.8, 3.0)
        blob = cv.ellipse(
            float(cv.x.flat[idx]), float(cv.y.flat[idx]), r * rng.uniform(1.0, 2.5), r, rng.uniform(0, np.pi)
        )
        cv.paint(blob, Kind.IMAT, rng.uniform(-95.0, -60.0), only=[Kind.MUSCLE])


def paint_table(rng: np.random.Generator, cv: Canvas, body: np.ndarray) -> None:
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
    cv.paint(cv.where(slab & ~shells), Kind.TABLE_CORE, rng.uniform(-880.0, -780.0), only=[Kind.AIR])
    cv.paint(cv.where(shells), Kind.TABLE, rng.uniform(150.0, 350.0), only=[Kind.AIR])
