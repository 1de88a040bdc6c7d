"""The patient and the body habitus of the phantom: adult patients, anatomy that follows them."""

from __future__ import annotations

import numpy as np

from lsmseg.data.phantom import generate_patient, generate_slice


def test_patient_is_an_adult_with_consistent_fields():
    for seed in range(20):
        p = generate_patient(np.random.default_rng(seed), case_id=f"c{seed}")
        assert p["case_id"] == f"c{seed}"
        assert p["sex"] in ("M", "F")
        assert 25 <= p["age_years"] <= 85
        assert 1.4 < p["height_m"] < 2.0
        assert 16.9 < p["weight_kg"] / p["height_m"] ** 2 < 37.1


def test_anatomy_follows_the_patient():
    slices = [generate_slice(np.random.default_rng(seed), size=128) for seed in range(24)]
    bmi = np.array([s.patient["weight_kg"] / s.patient["height_m"] ** 2 for s in slices])
    sat = np.array([s.sat_area_cm2 for s in slices])
    male = np.array([s.patient["sex"] == "M" for s in slices])
    muscle = np.array([s.muscle_area_cm2 for s in slices])
    assert np.corrcoef(bmi, sat)[0, 1] > 0.6
    assert male.any() and (~male).any()
    assert muscle[male].mean() > muscle[~male].mean() + 20
