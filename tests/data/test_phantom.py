"""The synthetic L3 phantom: determinism, label/HU consistency, exact truth, plausible anatomy, files."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from lsmseg.data.phantom import (
    PATIENT_COLUMNS,
    TRUTH_COLUMNS,
    PhantomSlice,
    cohort_slice,
    generate_patient,
    generate_slice,
    phantom_cli,
    truth_areas,
    write_cohort,
)
from lsmseg.keys import Tissue

SMALL = 256  # fast slices; same field of view as 512, pixels twice as large
SEEDS = range(8)


@pytest.fixture(scope="module")
def small_slices() -> list[PhantomSlice]:
    return [generate_slice(np.random.default_rng(seed), size=SMALL) for seed in SEEDS]


@pytest.fixture(scope="module")
def full_slice() -> PhantomSlice:
    return generate_slice(np.random.default_rng(123))


def _recomputed_truth(hu: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]) -> dict[str, float]:
    """The Alberta readout written out independently of the generator."""
    pixel_cm2 = spacing[0] * spacing[1] / 100.0
    compartment = mask == Tissue.MUSCLE
    return {
        "muscle_area_cm2": np.count_nonzero(compartment & (hu >= -29) & (hu <= 150)) * pixel_cm2,
        "imat_area_cm2": np.count_nonzero(compartment & (hu >= -190) & (hu <= -30)) * pixel_cm2,
        "sat_area_cm2": np.count_nonzero((mask == Tissue.SAT) & (hu >= -190) & (hu <= -30)) * pixel_cm2,
        "vat_area_cm2": np.count_nonzero((mask == Tissue.VAT) & (hu >= -150) & (hu <= -50)) * pixel_cm2,
    }


def test_patient_is_an_adult_with_consistent_fields():
    for seed in range(20):
        p = generate_patient(np.random.default_rng(seed), case_id=f"c{seed}")
        assert p["case_id"] == f"c{seed}"
        assert p["sex"] in ("M", "F")
        assert 25 <= p["age_years"] <= 85
        assert 1.4 < p["height_m"] < 2.0
        assert 16.9 < p["weight_kg"] / p["height_m"] ** 2 < 37.1


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
        expected = _recomputed_truth(sl.hu, sl.mask, sl.spacing_mm)
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


def test_anatomy_follows_the_patient():
    slices = [generate_slice(np.random.default_rng(seed), size=128) for seed in range(24)]
    bmi = np.array([s.patient["weight_kg"] / s.patient["height_m"] ** 2 for s in slices])
    sat = np.array([s.sat_area_cm2 for s in slices])
    male = np.array([s.patient["sex"] == "M" for s in slices])
    muscle = np.array([s.muscle_area_cm2 for s in slices])
    assert np.corrcoef(bmi, sat)[0, 1] > 0.6
    assert male.any() and (~male).any()
    assert muscle[male].mean() > muscle[~male].mean() + 20


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


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def test_write_cohort_dicom(tmp_path):
    out = tmp_path / "cohort"
    ids = write_cohort(out, 2, fmt="dicom", seed=5, size=128)
    assert ids == ["phantom_0001", "phantom_0002"]
    assert not [p for p in out.rglob(".*")], "temporary files left behind"

    header, patients = _read_csv(out / "patients.csv")
    assert header == list(PATIENT_COLUMNS)
    header, truths = _read_csv(out / "truth.csv")
    assert header == list(TRUTH_COLUMNS)
    assert [row["case_id"] for row in truths] == ids
    assert all(len(row["sat_area_cm2"].split(".")[1]) == 3 for row in truths)

    for index, (case_id, patient, truth) in enumerate(zip(ids, patients, truths, strict=True)):
        sl = cohort_slice(5, index, size=128)
        ds = pydicom.dcmread(out / "images" / f"{case_id}.dcm")
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
        assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.Modality == "CT" and list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert ds.PatientID == case_id and ds.PatientSex == patient["sex"]
        assert float(ds.PatientSize) == pytest.approx(float(patient["height_m"]))
        assert float(ds.PatientWeight) == pytest.approx(float(patient["weight_kg"]))
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert (ds.Rows, ds.Columns) == sl.hu.shape
        assert tuple(float(v) for v in ds.PixelSpacing) == sl.spacing_mm
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(hu, sl.hu)

        mask_img = nib.load(out / "masks" / f"{case_id}.nii.gz")
        assert mask_img.get_data_dtype() == np.uint8
        mask = np.asarray(mask_img.dataobj)[:, :, 0].T  # (column, row) -> (row, column)
        np.testing.assert_array_equal(mask, sl.mask)
        assert nib.aff2axcodes(mask_img.affine) == ("L", "P", "S")
        # The mask's first voxel sits where the DICOM puts pixel (0, 0) (RAS = -LPS in x, y).
        ipp = [float(v) for v in ds.ImagePositionPatient]
        np.testing.assert_allclose(mask_img.affine[:3, 3], [-ipp[0], -ipp[1], ipp[2]], atol=1e-3)

        # The truth file is what the Alberta readout gets from the written files.
        spacing = (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1]))
        for key, value in _recomputed_truth(hu, mask, spacing).items():
            assert float(truth[key]) == pytest.approx(value, abs=6e-4), key

    # Deterministic UIDs: a rerun gives the same, another seed other ones.
    again = tmp_path / "again"
    write_cohort(again, 1, fmt="dicom", seed=5, size=128)
    other = tmp_path / "other"
    write_cohort(other, 1, fmt="dicom", seed=6, size=128)
    uids = [pydicom.dcmread(d / "images" / "phantom_0001.dcm").SOPInstanceUID for d in (out, again, other)]
    assert uids[0] == uids[1] != uids[2]


def test_write_cohort_nifti(tmp_path):
    ids = write_cohort(tmp_path, 2, fmt="nifti", seed=1, size=128)
    for index, case_id in enumerate(ids):
        sl = cohort_slice(1, index, size=128)
        img = nib.load(tmp_path / "images" / f"{case_id}.nii.gz")
        mask_img = nib.load(tmp_path / "masks" / f"{case_id}.nii.gz")
        assert img.shape == mask_img.shape == (128, 128, 1)
        assert img.get_data_dtype() == np.int16
        assert img.header.get_zooms()[:2] == pytest.approx(sl.spacing_mm)
        np.testing.assert_allclose(img.affine, mask_img.affine)
        np.testing.assert_array_equal(np.asarray(img.dataobj)[:, :, 0].T, sl.hu)
        np.testing.assert_array_equal(np.asarray(mask_img.dataobj)[:, :, 0].T, sl.mask)
    header, _ = _read_csv(tmp_path / "truth.csv")
    assert header == list(TRUTH_COLUMNS)


def test_larger_cohort_extends_a_smaller_one(tmp_path):
    write_cohort(tmp_path / "a", 1, fmt="nifti", seed=2, size=96)
    write_cohort(tmp_path / "b", 2, fmt="nifti", seed=2, size=96)
    rows_a = _read_csv(tmp_path / "a" / "truth.csv")[1]
    rows_b = _read_csv(tmp_path / "b" / "truth.csv")[1]
    assert rows_a[0] == rows_b[0] and len(rows_b) == 2


def test_phantom_cli_summary_and_errors(tmp_path):
    summary = phantom_cli(tmp_path / "cli", 1, "nifti", 0)
    assert "1" in summary and str(tmp_path / "cli") in summary
    assert (tmp_path / "cli" / "truth.csv").exists()
    with pytest.raises(ValueError, match="format"):
        phantom_cli(tmp_path / "bad", 1, "png", 0)
    with pytest.raises(ValueError, match="n >= 1"):
        phantom_cli(tmp_path / "bad", 0, "dicom", 0)
