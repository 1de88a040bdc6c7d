"""One phantom slice: determinism, geometry, label/HU consistency, exact truth, the table."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lsmseg.data.phantom import PhantomSlice, generate_slice, truth_areas
from lsmseg.keys import Tissue
from tests.helpers.data import alberta_areas

SMALL = 256  # fast slices; same field of view as 512, pixels twice as large
SEEDS = range(8)


@pytest.fixture(scope="module")
def small_slices() -> list[PhantomSlice]:
    return [generate_slice(np.random.default_rng(seed), size=SMALL) for seed in SEEDS]


@pytest.fixture(scope="module")
def full_slice() -> PhantomSlice:
    return generate_slice(np.random.default_rng(123))


def test_same_seed_same_slice_other_seed_other_slice():
    a = generate_slice(np.random.default_rng(7), size=SMALL)
    b = generate_slice(np.random.default_rng(7), size=SMALL)
    c = generate_slice(np.random.default_rng(8), size=SMALL)
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.truth() == b.truth() and a.spacing_mm == b.spacing_mm
    assert not np.array_equal(a.mask, c.mask)


def test_full_size_slice_geometry_and_types(full_slice):
    sl = full_slice
    assert sl.hu.shape == sl.mask.shape == sl.body.shape == (512, 512)
    assert sl.hu.dtype == np.float32 and sl.mask.dtype == np.uint8 and sl.body.dtype == bool
    assert sl.spacing_mm[0] == sl.spacing_mm[1]
    assert 0.6 <= sl.spacing_mm[0] <= 0.95
    assert sl.pixel_area_mm2 == pytest.approx(sl.spacing_mm[0] ** 2)
    assert set(np.unique(sl.mask)) == {int(t) for t in Tissue}
    assert sl.hu.min() >= -1024 and sl.hu.max() <= 3071
    np.testing.assert_array_equal(sl.hu, np.rint(sl.hu))  # integer HU, as stored in DICOM
    # Air outside the body, bone in it, and no body on the image border.
    assert np.median(sl.hu[~ndimage.binary_dilation(sl.body, iterations=3)]) < -900
    assert sl.hu[sl.body].max() > 500
    assert not (sl.body[0].any() or sl.body[-1].any() or sl.body[:, 0].any() or sl.body[:, -1].any())


def test_size_keeps_the_field_of_view():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    big, small = generate_slice(rng_a, size=512), generate_slice(rng_b, size=SMALL)
    assert small.spacing_mm[0] == pytest.approx(big.spacing_mm[0] * 2)
    assert small.sat_area_cm2 == pytest.approx(big.sat_area_cm2, rel=0.05)


def test_labels_stay_in_their_hu_ranges(small_slices, full_slice):
    for sl in [*small_slices, full_slice]:
        sat, vat, muscle = (sl.hu[sl.mask == t] for t in (Tissue.SAT, Tissue.VAT, Tissue.MUSCLE))
        assert sat.size and vat.size and muscle.size
        assert sat.min() >= -190 and sat.max() <= -30
        assert vat.min() >= -150 and vat.max() <= -50
        assert muscle.min() >= -190 and muscle.max() <= 150  # muscle-HU or IMAT, nothing else
        assert np.count_nonzero(muscle >= -29) > 10 * np.count_nonzero(muscle <= -30)


def test_truth_is_what_a_perfect_segmentation_reads(small_slices, full_slice):
    for sl in [*small_slices, full_slice]:
        expected = alberta_areas(sl.hu, sl.mask, sl.spacing_mm)
        for key, value in sl.truth().items():
            assert value == pytest.approx(expected[key], abs=1e-9), key
        assert truth_areas(sl.hu, sl.mask, sl.spacing_mm) == sl.truth()
        compartment_cm2 = np.count_nonzero(sl.mask == Tissue.MUSCLE) * sl.pixel_area_mm2 / 100.0
        assert sl.muscle_area_cm2 + sl.imat_area_cm2 == pytest.approx(compartment_cm2)
        assert sl.imat_area_cm2 > 0


def test_areas_are_plausible_for_adults(small_slices):
    for sl in small_slices:
        assert 80 <= sl.muscle_area_cm2 <= 250
        assert 20 <= sl.sat_area_cm2 <= 400
        assert 10 <= sl.vat_area_cm2 <= 350
        assert 0.2 <= sl.imat_area_cm2 <= 40


def test_table_lies_under_the_body_without_touching_it(small_slices, full_slice):
    for sl in [*small_slices, full_slice]:
        dense_outside = (sl.hu > -600) & ~ndimage.binary_dilation(sl.body)
        assert dense_outside.any(), "no table"
        rows = np.nonzero(dense_outside)[0]
        lowest_body_row = np.nonzero(sl.body.any(axis=1))[0].max()
        assert rows.max() > lowest_body_row  # the table is posterior (below) the back
        gap_mm = ndimage.distance_transform_edt(~sl.body)[dense_outside].min() * sl.spacing_mm[0]
        assert gap_mm >= 2.5
        # No dense bridge joins the table to the body.
        labels, _ = ndimage.label(sl.hu > -600)
        body_labels = set(np.unique(labels[sl.body])) - {0}
        table_labels = set(np.unique(labels[dense_outside & (sl.hu > 0)])) - {0}
        assert not body_labels & table_labels
