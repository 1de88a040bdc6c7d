"""Plausibility gate after measurement: are the numbers within what adult bodies and scanners give?

A measurement outside its ``error`` range cannot come from an adult L3 slice on a CT scanner (a
wrong PixelSpacing, a slice of something else): the case becomes an error row. Areas have no
lower error bound: a very small muscle area is either real (cachexia, amputation, a cut field of
view) or a segmentation failure, and only a reader of the overlay can tell, so it is a warning. Outside its
``warn`` range it is possible but rare: the case is kept with a quality warning asking for a look
at the overlay. Every message names the measurement, its value and the range.

Sources of the ranges:
    * pixel spacing: diagnostic CT reconstructs 512 x 512 pixels over 250-500 mm fields of view
      (0.49-0.98 mm); extended fields of view reach 700 mm (1.37 mm) (AAPM Report 96, 2008;
      vendor specifications). Below 0.2 or above 2 mm no scanner reconstructs a body slice.
    * skeletal muscle area at L3: adults 80-250 cm2, sex-specific means 115-175 cm2 (Mourtzakis
      et al., Appl Physiol Nutr Metab 2008; Derstine et al., Sci Rep 2018, n = 8,224 healthy
      adults, 5th-95th percentiles 92-239 cm2 in men, 64-152 cm2 in women).
    * SMI: Derstine 2018 5th-95th percentiles 41-69 cm2/m2 (men), 30-54 (women); cachexia
      reaches 25 (Martin et al., J Clin Oncol 2013).
    * muscle attenuation: 20-60 HU in adults (Martin 2013; Derstine 2018 mean 42 +- 9 HU);
      the Alberta range bounds it to -29..150 HU.
    * SAT and VAT at L3: 0-700 cm2 in severe obesity (Shen et al., J Appl Physiol 2004;
      Kaul et al., Obesity 2012).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """Plausible values of one measurement: ``error`` outside is impossible, ``warn`` outside rare."""

    column: str  # results column (or "pixel_spacing_mm")
    what: str  # how messages name it
    unit: str
    error: tuple[float, float]
    warn: tuple[float, float]


RANGES: tuple[Range, ...] = (
    Range("pixel_spacing_mm", "pixel spacing (PixelSpacing)", "mm", (0.2, 2.0), (0.4, 1.4)),
    Range("muscle_area_cm2", "skeletal muscle area", "cm2", (0.0, 400.0), (50.0, 300.0)),
    Range("smi_cm2_m2", "SMI", "cm2/m2", (0.0, 130.0), (20.0, 90.0)),
    Range("muscle_mean_hu", "muscle mean attenuation", "HU", (-29.0, 150.0), (0.0, 80.0)),
    Range("sat_area_cm2", "subcutaneous fat area", "cm2", (0.0, 1500.0), (0.0, 800.0)),
    Range("vat_area_cm2", "visceral fat area", "cm2", (0.0, 1200.0), (0.0, 600.0)),
)


@dataclass
class Plausibility:
    """What the gate found: ``errors`` make the case fail, ``warnings`` go to its quality column."""

    errors: list[str]
    warnings: list[str]


def _values(column: str, row: Mapping[str, Any], spacing_mm: tuple[float, float]) -> list[float]:
    if column == "pixel_spacing_mm":
        return [float(v) for v in spacing_mm]
    value = row.get(column)
    if value is None:
        return []
    try:
        number = float(value)
    except (TypeError, ValueError):
        return []
    return [number] if math.isfinite(number) else []


def check_plausibility(row: Mapping[str, Any], spacing_mm: tuple[float, float]) -> Plausibility:
    """Check a measured results row and its slice's (row, column) spacing against :data:`RANGES`.

    Missing values (None, NaN: e.g. no SMI without a height) are not checked.
    """
    result = Plausibility([], [])
    for r in RANGES:
        for value in _values(r.column, row, spacing_mm):
            for (lo, hi), out in ((r.error, result.errors), (r.warn, result.warnings)):
                if not lo <= value <= hi:
                    out.append(f"{r.what} {value:g} {r.unit} is outside {lo:g}-{hi:g} {r.unit}")
                    break
            else:
                continue
            break  # one message per measurement (spacing has two values)
    return result
