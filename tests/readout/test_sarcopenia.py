"""Body-composition readout on synthetic slices with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lsmseg.keys import Tissue
from lsmseg.readout.cutoffs import get_cutoff_sets
from lsmseg.readout.sarcopenia import HeightSource, bmi, build_readout, measure, smi, tissue_pixels

SPACING = (0.7, 0.8)  # mm, anisotropic on purpose
PIXEL_CM2 = 0.7 * 0.8 / 100


def square_ring(size=64, outer=40, inner=20, label=Tissue.MUSCLE):
    """A square ring of outer**2 - inner**2 pixels centred in a size x size mask."""
    mask = np.zeros((size, size), dtype=np.uint8)
    a = (size - outer) // 2
    mask[a : a + outer, a : a + outer] = label
    b = (size - inner) // 2
    mask[b : b + inner, b : b + inner] = Tissue.BACKGROUND
    return mask


def test_ring_area_is_exact():
    mask = square_ring()
    hu = np.full(mask.shape, 40.0, dtype=np.float32)
    comp = measure(mask, hu, SPACING)
    assert np.count_nonzero(mask) == 40 * 40 - 20 * 20
    assert comp.muscle_area_cm2 == pytest.approx(1200 * 0.56 / 100, abs=1e-9)
    assert comp.muscle_mean_hu == 40.0
    assert comp.muscle_sd_hu == 0.0
    assert comp.sat_area_cm2 == comp.vat_area_cm2 == comp.imat_area_cm2 == 0.0
    assert comp.spacing_mm == SPACING


def test_ring_area_scales_with_each_spacing_axis():
    mask = square_ring(label=Tissue.SAT)
    hu = np.full(mask.shape, -100.0)
    assert measure(mask, hu, (0.5, 2.0)).sat_area_cm2 == pytest.approx(1200 * 1.0 / 100, abs=1e-9)
    assert measure(mask, hu, (1.0, 1.0)).sat_area_cm2 == pytest.approx(12.0, abs=1e-9)


def known_slice():
    """A 20 x 20 slice whose tissues have known HU per pixel (see the counts in each test)."""
    mask = np.zeros((20, 20), dtype=np.uint8)
    hu = np.full((20, 20), -1000.0, dtype=np.float32)  # air
    # muscle compartment: rows 0-4 (100 px): 60 muscle @50, 5 @-29 (boundary, muscle),
    # 25 fat @-100 (IMAT), 10 bone @200 (neither)
    mask[0:5] = Tissue.MUSCLE
    flat_hu = np.array([50.0] * 60 + [-29.0] * 5 + [-100.0] * 25 + [200.0] * 10)
    hu[0:5] = flat_hu.reshape(5, 20)
    # SAT compartment: rows 5-8 (80 px): 60 @-100, 5 @-190 and 5 @-30 (boundaries), 10 @0
    mask[5:9] = Tissue.SAT
    hu[5:9] = np.array([-100.0] * 60 + [-190.0] * 5 + [-30.0] * 5 + [0.0] * 10).reshape(4, 20)
    # VAT compartment: rows 9-11 (60 px): 30 @-100, 15 @-170, 5 @-40, 10 @40
    mask[9:12] = Tissue.VAT
    hu[9:12] = np.array([-100.0] * 30 + [-170.0] * 15 + [-40.0] * 5 + [40.0] * 10).reshape(3, 20)
    # background fat with adipose HU: must not count as IMAT, SAT or VAT
    hu[12:15] = -100.0
    return mask, hu


def test_refinement_counts_exactly_the_in_range_pixels():
    mask, hu = known_slice()
    comp = measure(mask, hu, SPACING)
    assert comp.refined
    assert comp.muscle_area_cm2 == pytest.approx(65 * PIXEL_CM2, abs=1e-12)
    assert comp.imat_area_cm2 == pytest.approx(25 * PIXEL_CM2, abs=1e-12)
    assert comp.sat_area_cm2 == pytest.approx(70 * PIXEL_CM2, abs=1e-12)
    assert comp.vat_area_cm2 == pytest.approx(30 * PIXEL_CM2, abs=1e-12)
    muscle_hu = np.array([50.0] * 60 + [-29.0] * 5)
    assert comp.muscle_mean_hu == pytest.approx(muscle_hu.mean(), abs=1e-12)
    assert comp.muscle_sd_hu == pytest.approx(muscle_hu.std(), abs=1e-12)
    assert comp.vat_hu_range == (-150.0, -50.0)


def test_imat_only_inside_the_muscle_compartment():
    mask, hu = known_slice()
    px = tissue_pixels(mask, hu)
    assert px.imat is not None
    assert np.count_nonzero(px.imat) == 25
    assert not np.any(px.imat & (mask != Tissue.MUSCLE))
    assert not np.any(px.imat & px.muscle)


def test_vat_range_change_changes_vat():
    mask, hu = known_slice()
    wide = measure(mask, hu, SPACING, vat_hu=(-190, -30))
    assert wide.vat_area_cm2 == pytest.approx(50 * PIXEL_CM2, abs=1e-12)
    assert wide.vat_hu_range == (-190.0, -30.0)
    narrow = measure(mask, hu, SPACING, vat_hu=(-120, -80))
    assert narrow.vat_area_cm2 == pytest.approx(30 * PIXEL_CM2, abs=1e-12)
    none = measure(mask, hu, SPACING, vat_hu=(-60, -55))
    assert none.vat_area_cm2 == 0.0
    # the other tissues do not move
    assert wide.muscle_area_cm2 == narrow.muscle_area_cm2 == measure(mask, hu, SPACING).muscle_area_cm2


def test_no_refine_reports_raw_compartments():
    mask, hu = known_slice()
    comp = measure(mask, hu, SPACING, refine=False)
    assert not comp.refined
    assert comp.muscle_area_cm2 == pytest.approx(100 * PIXEL_CM2, abs=1e-12)
    assert comp.sat_area_cm2 == pytest.approx(80 * PIXEL_CM2, abs=1e-12)
    assert comp.vat_area_cm2 == pytest.approx(60 * PIXEL_CM2, abs=1e-12)
    assert math.isnan(comp.imat_area_cm2)
    assert comp.vat_hu_range is None
    assert comp.muscle_mean_hu == pytest.approx(float(hu[0:5].astype(np.float64).mean()), abs=1e-12)


def test_empty_muscle_gives_nan_statistics():
    mask = np.zeros((8, 8), dtype=np.uint8)
    comp = measure(mask, np.zeros((8, 8)), (1.0, 1.0))
    assert comp.muscle_area_cm2 == 0.0
    assert math.isnan(comp.muscle_mean_hu) and math.isnan(comp.muscle_sd_hu)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(5, 4\)"):
        measure(np.zeros((4, 5), np.uint8), np.zeros((5, 4)), (1.0, 1.0))


@pytest.mark.parametrize(
    "spacing", [(0.0, 1.0), (1.0, -1.0), (float("nan"), 1.0), (1.0, float("inf")), (1.0,)]
)
def test_bad_spacing_is_an_error(spacing):
    with pytest.raises(ValueError, match="spacing"):
        measure(np.zeros((4, 4), np.uint8), np.zeros((4, 4)), spacing)


def test_nan_hu_is_an_error():
    hu = np.zeros((4, 4))
    hu[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        measure(np.zeros((4, 4), np.uint8), hu, (1.0, 1.0))


def test_unknown_label_is_an_error():
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 7
    with pytest.raises(ValueError, match=r"\[7\]"):
        measure(mask, np.zeros((4, 4)), (1.0, 1.0))


def test_inverted_range_is_an_error():
    with pytest.raises(ValueError, match="vat_hu"):
        measure(np.zeros((4, 4), np.uint8), np.zeros((4, 4)), (1.0, 1.0), vat_hu=(-50, -150))


def test_smi_and_bmi():
    assert smi(160.0, 2.0) == 40.0
    assert smi(150.0, 1.75) == pytest.approx(150.0 / 1.75**2, abs=1e-9)
    assert bmi(80.0, 2.0) == 20.0
    with pytest.raises(ValueError, match="centimetres"):
        smi(150.0, 175.0)
    with pytest.raises(ValueError, match="height"):
        bmi(70.0, 0.0)
    with pytest.raises(ValueError, match="kilograms"):
        bmi(-1.0, 1.7)


def test_readout_row():
    mask, hu = known_slice()
    comp = measure(mask, hu, SPACING)
    readout = build_readout(
        comp,
        height_m=1.6,
        weight_kg=64.0,
        sex="female",
        height_source="csv",
        cutoff_sets=get_cutoff_sets("all"),
    )
    row = readout.to_row()
    assert readout.height_source is HeightSource.CSV
    assert row["height_source"] == "csv"
    assert row["sex"] == "F"
    assert row["bmi"] == 25.0  # exactly: the BMI >= 25 branch of martin2013 applies
    assert row["smi_cm2_m2"] == pytest.approx(65 * PIXEL_CM2 / 1.6**2)
    assert row["pixel_spacing_mm"] == "0.7x0.8"
    assert row["vat_hu_range"] == "-150..-50"
    assert row["sarcopenia_prado2008"] is True  # a tiny slice: SMI far below every threshold
    assert row["myosteatosis_martin2013"] is False  # mean HU 43.9 >= 33
    assert "myosteatosis: muscle HU 43.92 >= 33 HU (BMI 25.0 >= 25)" in row["cutoff_notes"]
    assert row["low_sma_derstine2018"] is True
    assert "prado2008: sarcopenia: SMI" in row["cutoff_notes"]


def test_readout_without_height():
    comp = measure(square_ring(), np.full((64, 64), 40.0), SPACING, refine=False)
    readout = build_readout(comp, sex="M", cutoff_sets=get_cutoff_sets("prado2008,martin2013"))
    row = readout.to_row()
    assert row["height_source"] == "missing"
    assert row["smi_cm2_m2"] is None and row["bmi"] is None
    assert row["imat_area_cm2"] is None  # NaN (not measured) becomes an empty cell
    assert row["vat_hu_range"] == "off"
    assert row["sarcopenia_prado2008"] is None
    assert row["sarcopenia_martin2013"] is None
    assert "height missing" in readout.cutoffs["prado2008"].reason


def test_readout_height_source_must_match():
    comp = measure(square_ring(), np.full((64, 64), 40.0), SPACING)
    with pytest.raises(ValueError, match="source"):
        build_readout(comp, height_m=1.7)
    with pytest.raises(ValueError, match="no height"):
        build_readout(comp, height_source="dicom")
    with pytest.raises(ValueError, match="valid values"):
        build_readout(comp, height_m=1.7, height_source="guess")
    with pytest.raises(ValueError, match="centimetres"):
        build_readout(comp, height_m=170.0, height_source="dicom")
