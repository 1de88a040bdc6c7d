"""Plausibility gate: implausible -> error, borderline -> warning, each naming the measurement."""

from __future__ import annotations

from lsmseg.readout.plausibility import check_plausibility

TYPICAL = {"muscle_area_cm2": 150.0, "smi_cm2_m2": 50.0, "muscle_mean_hu": 40.0, "sat_area_cm2": 200.0}


def test_a_typical_adult_passes() -> None:
    found = check_plausibility(TYPICAL, (0.8, 0.8))
    assert found.errors == [] and found.warnings == []


def test_pixel_spacing_of_50_mm_is_an_error() -> None:
    """The issue's case: PixelSpacing 50 mm gave muscle 600,725 cm2 and SMI 231,752."""
    row = {"muscle_area_cm2": 600725.0, "smi_cm2_m2": 231752.0, "muscle_mean_hu": 40.0}
    assert check_plausibility(row, (50.0, 50.0)).errors == [
        "pixel spacing (PixelSpacing) 50 mm is outside 0.2-2 mm",
        "skeletal muscle area 600725 cm2 is outside 0-400 cm2",
        "SMI 231752 cm2/m2 is outside 0-130 cm2/m2",
    ]


def test_borderline_values_are_warnings() -> None:
    row = dict(TYPICAL, muscle_area_cm2=35.0, smi_cm2_m2=12.0)
    found = check_plausibility(row, (1.6, 1.6))
    assert found.errors == []
    assert found.warnings == [
        "pixel spacing (PixelSpacing) 1.6 mm is outside 0.4-1.4 mm",
        "skeletal muscle area 35 cm2 is outside 50-300 cm2",
        "SMI 12 cm2/m2 is outside 20-90 cm2/m2",
    ]


def test_missing_values_are_not_checked() -> None:
    assert check_plausibility({"smi_cm2_m2": None, "muscle_mean_hu": float("nan")}, (0.8, 0.8)).errors == []
