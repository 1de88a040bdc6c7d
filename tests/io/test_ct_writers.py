"""Writing CT slices: what the DICOM and NIfTI writers store is what the readers give back."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from lsmseg.io.ct_writers import (
    axial_affine_ras,
    decimal_string,
    stored_ct_pixels,
    write_ct_dicom,
    write_slice_nifti,
)
from lsmseg.io.dicom import read_dicom_slice
from lsmseg.io.nifti import read_nifti_slice

SPACING_MM = (0.75, 0.75)
POSITION_MM = (-23.625, -23.625, -150.5)  # centre of pixel (0, 0) of a 64x64 grid centred on the axis


def _hu() -> np.ndarray:
    """(64, 64) integer HU: air, a soft-tissue disc and one bright pixel at (10, 20)."""
    rows, cols = np.mgrid[:64, :64]
    hu = np.where((rows - 32) ** 2 + (cols - 32) ** 2 < 20**2, 40.0, -1000.0).astype(np.float32)
    hu[10, 20] = 3071.0
    return hu


def test_decimal_string_fits_16_characters():
    assert decimal_string(0.75) == "0.75"
    assert decimal_string(-150.5) == "-150.5"
    text = decimal_string(-1234.567890123456789)
    assert len(text) <= 16 and float(text) == pytest.approx(-1234.567890123456789, rel=1e-12)


def test_stored_pixels_are_hu_plus_1024_and_refuse_out_of_range():
    np.testing.assert_array_equal(stored_ct_pixels(np.array([[-1024.0, 0.4, 3071.0]])), [[0, 1024, 4095]])
    with pytest.raises(ValueError, match=r"-1024\.\.3071"):
        stored_ct_pixels(np.array([[3072.0]]))
    with pytest.raises(ValueError, match="2-D"):
        stored_ct_pixels(np.zeros((2, 2, 2)))


def test_dicom_round_trip(tmp_path):
    path = tmp_path / "ct.dcm"
    tags = {"SOPInstanceUID": "1.2.3.4", "PatientID": "case7", "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]}
    write_ct_dicom(path, _hu(), SPACING_MM, POSITION_MM, tags)
    ct = read_dicom_slice(path, check=False)
    assert ct.case_id == "case7"
    assert ct.spacing_mm == pytest.approx(SPACING_MM)
    np.testing.assert_array_equal(ct.hu, _hu())
    # Pixel (0, 0) sits at ImagePositionPatient; one column step moves +x (patient left).
    np.testing.assert_allclose(ct.affine[:3, 3], POSITION_MM)
    np.testing.assert_allclose(ct.affine[:3, 1], [SPACING_MM[1], 0.0, 0.0])
    assert not list(tmp_path.glob(".*")), "temporary file left behind"


def test_dicom_needs_a_sop_instance_uid(tmp_path):
    with pytest.raises(ValueError, match="SOPInstanceUID"):
        write_ct_dicom(tmp_path / "ct.dcm", _hu(), SPACING_MM, POSITION_MM, {"PatientID": "x"})
    assert not list(tmp_path.iterdir())


def test_nifti_round_trip_shares_the_dicom_geometry(tmp_path):
    affine = axial_affine_ras(POSITION_MM, SPACING_MM, 2.5)
    assert nib.aff2axcodes(affine) == ("L", "P", "S")
    path = write_slice_nifti(tmp_path / "ct.nii.gz", _hu().astype(np.int16), affine)
    img = nib.load(path)
    assert img.shape == (64, 64, 1) and img.get_data_dtype() == np.int16
    assert img.header.get_zooms() == pytest.approx((0.75, 0.75, 2.5))
    ct = read_nifti_slice(path, check=False)
    np.testing.assert_array_equal(ct.hu, _hu())
    np.testing.assert_allclose(ct.affine[:3, 3], POSITION_MM, atol=1e-6)
