"""Cut-off tables at their boundaries: strict "<", each sex, both BMI branches, missing data."""

from __future__ import annotations

import dataclasses

import pytest

from lsmseg.readout.cutoffs import (
    CUTOFF_SETS,
    DERSTINE2018,
    MARTIN2013,
    PRADO2008,
    get_cutoff_sets,
    normalize_sex,
)

BELOW = 0.01  # "just below" a threshold


@pytest.mark.parametrize(
    ("cutoff_set", "sex", "threshold"),
    [
        (PRADO2008, "M", 52.4),
        (PRADO2008, "F", 38.5),
        (DERSTINE2018, "M", 45.4),
        (DERSTINE2018, "F", 34.4),
        (MARTIN2013, "F", 41.0),
    ],
)
def test_smi_threshold_is_strict(cutoff_set, sex, threshold):
    assert cutoff_set.evaluate(threshold - BELOW, sex, bmi=22.0).sarcopenic is True
    at = cutoff_set.evaluate(threshold, sex, bmi=22.0)
    assert at.sarcopenic is False
    assert f"{threshold:g}" in at.reason
    assert cutoff_set.evaluate(threshold + 10, sex, bmi=22.0).sarcopenic is False


@pytest.mark.parametrize(("bmi", "threshold"), [(24.99, 43.0), (25.0, 53.0), (31.0, 53.0)])
def test_martin2013_men_depend_on_bmi(bmi, threshold):
    assert MARTIN2013.evaluate(threshold - BELOW, "M", bmi=bmi).sarcopenic is True
    result = MARTIN2013.evaluate(threshold, "M", bmi=bmi)
    assert result.sarcopenic is False
    assert "BMI" in result.reason


def test_martin2013_women_do_not_need_bmi():
    result = MARTIN2013.evaluate(40.99, "F", bmi=None, muscle_mean_hu=50.0)
    assert result.sarcopenic is True
    assert result.myosteatosis is None  # the myosteatosis threshold needs BMI
    assert "BMI missing" in result.reason


def test_martin2013_men_without_bmi_cannot_be_judged():
    result = MARTIN2013.evaluate(40.0, "M", bmi=None, muscle_mean_hu=50.0)
    assert result.sarcopenic is None
    assert result.myosteatosis is None
    assert "BMI missing" in result.reason


@pytest.mark.parametrize("sex", ["M", "F"])
@pytest.mark.parametrize(("bmi", "threshold"), [(24.99, 41.0), (25.0, 33.0)])
def test_martin2013_myosteatosis(sex, bmi, threshold):
    assert MARTIN2013.evaluate(50.0, sex, bmi=bmi, muscle_mean_hu=threshold - BELOW).myosteatosis is True
    assert MARTIN2013.evaluate(50.0, sex, bmi=bmi, muscle_mean_hu=threshold).myosteatosis is False


def test_martin2013_myosteatosis_needs_muscle_hu():
    result = MARTIN2013.evaluate(50.0, "M", bmi=22.0, muscle_mean_hu=float("nan"))
    assert result.sarcopenic is False
    assert result.myosteatosis is None
    assert "muscle mean HU missing" in result.reason


@pytest.mark.parametrize(
    ("sex", "sma", "smra"),
    [("M", 144.3, 38.5), ("F", 92.2, 34.3)],
)
def test_derstine2018_extra_flags(sex, sma, smra):
    low = DERSTINE2018.evaluate(50.0, sex, muscle_area_cm2=sma - BELOW, muscle_mean_hu=smra - BELOW)
    assert low.flags == {"low_sma_derstine2018": True, "low_smra_derstine2018": True}
    at = DERSTINE2018.evaluate(50.0, sex, muscle_area_cm2=sma, muscle_mean_hu=smra)
    assert at.flags == {"low_sma_derstine2018": False, "low_smra_derstine2018": False}
    missing = DERSTINE2018.evaluate(50.0, sex)
    assert missing.flags == {"low_sma_derstine2018": None, "low_smra_derstine2018": None}
    assert missing.myosteatosis is None  # derstine2018 defines no myosteatosis verdict


@pytest.mark.parametrize("cutoff_set", list(CUTOFF_SETS.values()))
def test_missing_height_gives_none_with_reason(cutoff_set):
    result = cutoff_set.evaluate(None, "F", bmi=None, muscle_mean_hu=40.0, muscle_area_cm2=100.0)
    assert result.sarcopenic is None
    assert "height missing" in result.reason


@pytest.mark.parametrize(("sex", "words"), [(None, "sex missing"), ("", "sex missing"), ("O", "'O'")])
@pytest.mark.parametrize("cutoff_set", list(CUTOFF_SETS.values()))
def test_unknown_sex_gives_none_with_reason(cutoff_set, sex, words):
    result = cutoff_set.evaluate(30.0, sex, bmi=22.0, muscle_mean_hu=20.0, muscle_area_cm2=50.0)
    assert result.sarcopenic is None
    assert result.myosteatosis is None
    assert all(v is None for v in result.flags.values())
    assert words in result.reason


@pytest.mark.parametrize(
    ("given", "expected"),
    [("M", "M"), ("f", "F"), (" Female ", "F"), ("male", "M"), ("O", None), ("", None), (None, None)],
)
def test_normalize_sex(given, expected):
    assert normalize_sex(given) == expected


def test_columns():
    assert PRADO2008.columns == ("sarcopenia_prado2008",)
    assert MARTIN2013.columns == ("sarcopenia_martin2013", "myosteatosis_martin2013")
    assert DERSTINE2018.columns == (
        "sarcopenia_derstine2018",
        "low_sma_derstine2018",
        "low_smra_derstine2018",
    )


def test_sets_are_frozen_and_described():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRADO2008.name = "other"  # type: ignore[misc]
    for name, cutoff_set in CUTOFF_SETS.items():
        described = cutoff_set.describe()
        assert described["name"] == name
        assert described["version"]
        assert "20" in described["citation"]


def test_get_cutoff_sets_forms():
    assert get_cutoff_sets("prado2008") == [PRADO2008]
    assert get_cutoff_sets(" Martin2013 , prado2008,martin2013") == [MARTIN2013, PRADO2008]
    assert get_cutoff_sets(["derstine2018", "prado2008"]) == [DERSTINE2018, PRADO2008]
    assert get_cutoff_sets("all") == [PRADO2008, MARTIN2013, DERSTINE2018]


def test_unknown_cutoff_name_lists_valid_names():
    with pytest.raises(ValueError, match="prado2013") as info:
        get_cutoff_sets("prado2008,prado2013")
    message = str(info.value)
    assert "\n" not in message
    for name in CUTOFF_SETS:
        assert name in message
