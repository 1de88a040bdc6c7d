"""A phantom cohort on disk: the files, their geometry, the truth table, and pinned figures."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest

from lsmseg.data.phantom import PATIENT_COLUMNS, TRUTH_COLUMNS, cohort_slice, write_cohort
from tests.helpers.data import alberta_areas, read_csv


def test_write_cohort_dicom(tmp_path):
    out = tmp_path / "cohort"
    ids = write_cohort(out, 2, fmt="dicom", seed=5, size=128)
    assert ids == ["phantom_0001", "phantom_0002"]
    assert not [p for p in out.rglob(".*")], "temporary files left behind"

    header, patients = read_csv(out / "patients.csv")
    assert header == list(PATIENT_COLUMNS)
    header, truths = read_csv(out / "truth.csv")
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
        for key, value in alberta_areas(hu, mask, spacing).items():
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
    header, _ = read_csv(tmp_path / "truth.csv")
    assert header == list(TRUTH_COLUMNS)


def test_larger_cohort_extends_a_smaller_one(tmp_path):
    write_cohort(tmp_path / "a", 1, fmt="nifti", seed=2, size=96)
    write_cohort(tmp_path / "b", 2, fmt="nifti", seed=2, size=96)
    rows_a = read_csv(tmp_path / "a" / "truth.csv")[1]
    rows_b = read_csv(tmp_path / "b" / "truth.csv")[1]
    assert rows_a[0] == rows_b[0] and len(rows_b) == 2


def test_cohort_figures_are_pinned(tmp_path):
    """The first cases of cohort seed 3 at 128 px, as the generator drew them before the package
    split: a change here changes every figure benchmarked on the phantom."""
    write_cohort(tmp_path, 2, fmt="nifti", seed=3, size=128)
    _, truths = read_csv(tmp_path / "truth.csv")
    assert truths == [
        {
            "case_id": "phantom_0001",
            "muscle_area_cm2": "156.836",
            "imat_area_cm2": "4.835",
            "sat_area_cm2": "125.195",
            "vat_area_cm2": "42.678",
        },
        {
            "case_id": "phantom_0002",
            "muscle_area_cm2": "110.575",
            "imat_area_cm2": "8.055",
            "sat_area_cm2": "295.110",
            "vat_area_cm2": "143.423",
        },
    ]


@pytest.mark.parametrize(("n", "fmt", "message"), [(1, "png", "format"), (0, "dicom", "n >= 1")])
def test_write_cohort_refuses_bad_arguments(tmp_path, n, fmt, message):
    with pytest.raises(ValueError, match=message):
        write_cohort(tmp_path, n, fmt=fmt)  # type: ignore[arg-type]
    assert not (tmp_path / "truth.csv").exists()
