"""The measured mask: each HU range goes to its label, IMAT only inside the muscle compartment."""

from __future__ import annotations

import numpy as np
import pytest

from lsmseg.keys import Measured, Tissue
from lsmseg.readout.labelmap import compartments, label_map, measured_mask
from lsmseg.readout.sarcopenia import measure, tissue_pixels

# One row per compartment, one column per HU value: air, fat (-100), VAT-only fat (-170 is
# adipose but outside the VAT default -150..-50), muscle (40), bone (400).
HU_ROW = np.array([-1000.0, -100.0, -170.0, 40.0, 400.0], np.float32)
HU = np.tile(HU_ROW, (4, 1))  # (4, 5)
COMPARTMENTS = np.array([Tissue.BACKGROUND, Tissue.SAT, Tissue.VAT, Tissue.MUSCLE], np.uint8)[:, None].repeat(
    5, axis=1
)  # (4, 5): row r is compartment r

_, S, V, M, I = (int(v) for v in Measured)  # noqa: E741
EXPECTED = np.array(
    [
        [0, 0, 0, 0, 0],  # background stays background whatever its HU
        [0, S, S, 0, 0],  # SAT: -190..-30 HU only (air and soft tissue out)
        [0, V, 0, 0, 0],  # VAT: -150..-50 HU only (-170 is outside)
        [0, I, I, M, 0],  # muscle compartment: fat -> IMAT, -29..150 -> muscle, bone out
    ],
    np.uint8,
)


def test_each_hu_range_goes_to_its_label() -> None:
    np.testing.assert_array_equal(measured_mask(COMPARTMENTS, HU), EXPECTED)


def test_imat_lies_only_inside_the_muscle_compartment() -> None:
    labels = measured_mask(COMPARTMENTS, HU)
    assert set(np.flatnonzero(labels.ravel() == Measured.IMAT) // 5) == {Tissue.MUSCLE}


def test_vat_range_is_the_one_given() -> None:
    labels = measured_mask(COMPARTMENTS, HU, vat_hu=(-190.0, -30.0))
    np.testing.assert_array_equal(labels[2], [0, V, V, 0, 0])


def test_without_refinement_the_mask_is_the_compartments() -> None:
    np.testing.assert_array_equal(measured_mask(COMPARTMENTS, HU, refine=False), COMPARTMENTS)


def test_label_map_counts_are_the_measured_areas() -> None:
    """Pixel count x pixel area of each label is the reported area (spacing 2 x 0.5 mm = 0.01 cm2)."""
    labels = label_map(tissue_pixels(COMPARTMENTS, HU))
    comp = measure(COMPARTMENTS, HU, (2.0, 0.5))
    assert comp.muscle_area_cm2 == pytest.approx(0.01 * np.count_nonzero(labels == Measured.MUSCLE))
    assert comp.imat_area_cm2 == pytest.approx(0.02)
    assert comp.sat_area_cm2 == pytest.approx(0.02)
    assert comp.vat_area_cm2 == pytest.approx(0.01)


def test_measuring_the_measured_mask_again_gives_the_same_numbers() -> None:
    """compartments() folds IMAT into muscle; the disjoint HU ranges make re-measuring idempotent."""
    again = compartments(measured_mask(COMPARTMENTS, HU))
    np.testing.assert_array_equal(measured_mask(again, HU), EXPECTED)
    assert measure(again, HU, (1.0, 1.0)) == measure(COMPARTMENTS, HU, (1.0, 1.0))


def test_compartments_fold_imat_and_refuse_unknown_labels() -> None:
    np.testing.assert_array_equal(compartments(np.array([[0, 1, 2, 3, 4]])), [[0, 1, 2, 3, 3]])
    with pytest.raises(ValueError, match=r"labels \[7\]: valid labels are 0 background, 1 sat"):
        compartments(np.array([[0, 7]]))
