"""The patient and the body habitus the slice is drawn from: sex, age, height and weight set the
muscle size, the fat depots and the tissue attenuations (:class:`Build`), which set the polar
outlines of the muscle fascia and the skin (:class:`Outline`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lsmseg.data.phantom.canvas import TWO_PI, fourier, superellipse_radius


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


@dataclass
class Build:
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


def draw_build(rng: np.random.Generator, patient: dict[str, Any]) -> Build:
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
    return Build(
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
class Outline:
    """Polar outlines around the body centre, sampled on ``phi`` (anatomical frame, mm)."""

    phi: np.ndarray  # (N,) angles in [-pi, pi)
    fascia: np.ndarray  # (N,) radius of the muscle fascia (inner border of SAT)
    body: np.ndarray  # (N,) radius of the skin surface
    arc: np.ndarray  # (N,) arc length (mm) along the fascia from the anterior midline
    arc_fraction: np.ndarray  # (N,) arc / half perimeter of that side: 0 anterior, 1 posterior


def draw_outline(rng: np.random.Generator, b: Build, n_angles: int = 1024) -> Outline:
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
    fascia = superellipse_radius(phi, half_width, depth, exponent)
    fascia *= 1.0 + fourier(rng, phi, 0.03, range(2, 6))

    # Subcutaneous fat: thicker anteriorly and over the flanks (more in women), thin over the spine.
    flank = 0.25 if not male else 0.1
    profile = (
        1.0
        + 0.15 * np.cos(phi)
        + flank * np.exp(-(((np.abs(phi) - 1.8) / 0.6) ** 2))
        - 0.25 * np.exp(-(((np.abs(phi) - np.pi) / 0.25) ** 2))
    )
    profile *= 1.0 + fourier(rng, phi, 0.12, range(1, 5))
    sat = b.sat_mm * np.clip(profile, 0.3, None)
    sat_cm2 = 0.5 * np.sum((fascia + sat) ** 2 - fascia**2) * (TWO_PI / n_angles) / 100.0
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
    return Outline(phi=phi, fascia=fascia, body=body, arc=arc, arc_fraction=frac)


def polar(outline: Outline, values: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Periodic interpolation of (N,) ``values`` sampled on ``outline.phi`` at the angles ``phi``."""
    return np.asarray(np.interp(phi, outline.phi, values, period=TWO_PI), dtype=np.float32)


@dataclass
class Spine:
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
