"""NIfTI ingest: 2D and 3D files, orientation to the DICOM convention, non-finite pixels."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lsmseg.io import IngestError, read_nifti_slice
from lsmseg.io.nifti import RAS_TO_LPS
from tests.helpers.ct_dicom import phantom_hu

# The usual RAS affine of an axial CT: voxel i runs to the patient's left (-R), j to posterior
# (-A), k up; 0.8 x 0.7 mm pixels, 2.5 mm slices.
AXIAL_RAS = np.array(
    [[-0.8, 0.0, 0.0, 150.0], [0.0, -0.7, 0.0, 120.0], [0.0, 0.0, 2.5, -300.0], [0.0, 0.0, 0.0, 1.0]]
)


def _save(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


def test_2d_nifti_is_normalised_like_dicom(tmp_path: Path) -> None:
    anatomical = phantom_hu()  # rows anterior -> posterior, columns right -> left
    # voxel (i, j) = (column, row) of the anatomical image, as NIfTI writers store axial CT
    path = _save(tmp_path / "case7.nii.gz", anatomical.T.copy(), AXIAL_RAS)
    ct = read_nifti_slice(path)
    np.testing.assert_array_equal(ct.hu, anatomical)
    assert ct.case_id == "case7"
    assert ct.spacing_mm == pytest.approx((0.7, 0.8))
    assert ct.flips == (False, False, True)
    assert ct.dicom is None and ct.patient.patient_id is None
    # the affine is LPS and puts every pixel where the file's own RAS affine does
    rows, cols = np.indices(ct.hu.shape)
    src_i, src_j = np.indices(anatomical.T.shape)
    ones, zeros = np.ones(rows.size), np.zeros(rows.size)
    normalised = np.stack([ct.to_source_grid(rows).ravel(), ct.to_source_grid(cols).ravel(), zeros, ones])
    stored = np.stack([src_i.ravel(), src_j.ravel(), zeros, ones])
    np.testing.assert_allclose(ct.affine @ normalised, RAS_TO_LPS @ AXIAL_RAS @ stored, atol=1e-9)


def test_3d_nifti_needs_and_uses_slice_index(tmp_path: Path) -> None:
    volume = np.stack([phantom_hu().T + k for k in range(4)], axis=-1)  # (W, H, 4)
    path = _save(tmp_path / "vol.nii", volume, AXIAL_RAS)
    with pytest.raises(IngestError, match=r"has 4 slices: give the L3 slice index \(0 to 3\)"):
        read_nifti_slice(path)
    with pytest.raises(IngestError, match="slice index 4 is outside 0 to 3"):
        read_nifti_slice(path, slice_index=4)
    ct = read_nifti_slice(path, slice_index=2)
    np.testing.assert_array_equal(ct.hu, phantom_hu() + 2)
    assert ct.affine[2, 3] == pytest.approx(-300.0 + 2 * 2.5)
    assert ct.affine[2, 2] == pytest.approx(2.5)


def test_single_slice_3d_nifti_needs_no_index(tmp_path: Path) -> None:
    path = _save(tmp_path / "one.nii.gz", phantom_hu().T[..., None].copy(), AXIAL_RAS)
    np.testing.assert_array_equal(read_nifti_slice(path).hu, phantom_hu())


def test_nifti_with_nan_is_rejected_with_the_count(tmp_path: Path) -> None:
    hu = phantom_hu().T.copy()
    hu[3, 4] = np.nan
    hu[5, 6] = np.inf
    hu[7, 8] = -np.inf
    path = _save(tmp_path / "nan.nii.gz", hu, AXIAL_RAS)
    with pytest.raises(IngestError, match=r"has 3 non-finite \(NaN or inf\) pixels"):
        read_nifti_slice(path)


def test_corrupt_nifti_is_an_ingest_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"not a nifti file")
    with pytest.raises(IngestError, match="cannot be read as NIfTI"):
        read_nifti_slice(path)


@pytest.mark.parametrize("affine", [np.zeros((4, 4)), np.diag([0.8, 0.0, 2.5, 1.0])])
def test_degenerate_affine_is_named_not_called_non_axial(tmp_path: Path, affine: np.ndarray) -> None:
    img = nib.Nifti1Image(phantom_hu().T.copy(), None)
    img.set_sform(affine, code=2)
    img.set_qform(None, code=0)
    nib.save(img, tmp_path / "bad.nii.gz")
    with pytest.raises(IngestError, match=r"has a degenerate affine \(sform/qform with determinant 0\)"):
        read_nifti_slice(tmp_path / "bad.nii.gz")
