"""NIfTI mask writer: one array convention, geometry, label intent; atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lsmseg.io.atomic import _UMASK
from lsmseg.io.writers import atomic_write, write_mask_nifti
from tests.helpers.writers import ct_small, tissue_mask


@pytest.mark.parametrize("flips", [(False, False, False), (True, False, False), (False, True, True)])
def test_nifti_mask_is_column_row_of_the_dicom_pixels_with_its_geometry(tmp_path, flips):
    """DICOM input: the array is (column, row, 0) of the stored DICOM pixels, and every voxel
    lands (through the affine, as ITK reads it) where the CTSlice puts that pixel."""
    import nibabel as nib
    import SimpleITK as sitk

    ct = ct_small(flips=flips)
    mask = tissue_mask()
    path = write_mask_nifti(mask, ct, tmp_path / "case" / "mask.nii.gz", description="measured")
    image = nib.Nifti1Image.from_filename(path)
    assert image.shape == (128, 128, 1)
    assert image.get_data_dtype() == np.uint8
    assert image.header.get_intent()[0] == "label"
    assert image.header["descrip"].tobytes().rstrip(b"\0") == b"measured"
    np.testing.assert_array_equal(np.asarray(image.dataobj)[:, :, 0], ct.to_source_grid(mask).T)
    np.testing.assert_allclose(sorted(image.header.get_zooms()[:2]), sorted(ct.spacing_mm), rtol=1e-6)
    assert image.get_sform(coded=True)[1] == 1 and image.get_qform(coded=True)[1] == 1
    itk = sitk.ReadImage(str(path))
    itk_array = sitk.GetArrayFromImage(itk)[0]  # (j, i) = stored (row, column)
    for r, c in [(0, 0), (127, 0), (0, 127), (90, 70), (93, 85)]:
        stored = ct.to_source_grid(np.arange(128 * 128).reshape(128, 128))
        row_s, col_s = np.argwhere(stored == r * 128 + c)[0]
        expected = (ct.affine @ np.array([r, c, 0, 1.0]))[:3]
        np.testing.assert_allclose(
            itk.TransformIndexToPhysicalPoint((int(col_s), int(row_s), 0)), expected, atol=1e-3
        )
        assert itk_array[row_s, col_s] == mask[r, c]


def test_nifti_mask_of_phantom_equals_its_truth_mask_array(tmp_path):
    """One array convention: segment's mask.nii.gz of a phantom case is array-equal to the
    phantom's own truth mask (DICOM and NIfTI input), not transposed."""
    import nibabel as nib

    from lsmseg.data.phantom.cohort import write_cohort
    from lsmseg.io import read_dicom_slice, read_nifti_slice
    from lsmseg.io.nifti import read_nifti_slice as read_mask

    for fmt in ("dicom", "nifti"):
        root = tmp_path / fmt
        (case_id,) = write_cohort(root, 1, fmt=fmt, size=96)
        suffix = ".dcm" if fmt == "dicom" else ".nii.gz"
        reader = read_dicom_slice if fmt == "dicom" else read_nifti_slice
        ct = reader(root / "images" / f"{case_id}{suffix}", case_id, check=False)
        truth_path = root / "masks" / f"{case_id}.nii.gz"
        truth = read_mask(truth_path, check=False).hu.astype(np.uint8)  # normalised grid
        out = write_mask_nifti(truth, ct, tmp_path / f"{fmt}.nii.gz")
        written = np.asarray(nib.load(out).dataobj)
        np.testing.assert_array_equal(written, np.asarray(nib.load(truth_path).dataobj))
        np.testing.assert_allclose(nib.load(out).affine[:, :2], nib.load(truth_path).affine[:, :2], atol=1e-4)


def test_nifti_rejects_wrong_shape_and_suffix(tmp_path):
    ct = ct_small()
    with pytest.raises(ValueError, match=r"\(64, 64\).*\(128, 128\)"):
        write_mask_nifti(np.zeros((64, 64), np.uint8), ct, tmp_path / "m.nii.gz")
    with pytest.raises(ValueError, match=r"\.nii"):
        write_mask_nifti(tissue_mask(), ct, tmp_path / "m.nrrd")


def test_nifti_single_slice_without_slice_step(tmp_path):
    import nibabel as nib

    ct = ct_small()
    ct.affine[:3, 2] = 0.0  # a lone slice may carry no slice spacing
    image = nib.Nifti1Image.from_filename(write_mask_nifti(tissue_mask(), ct, tmp_path / "m.nii"))
    assert image.shape == (128, 128, 1)
    assert image.header.get_zooms()[2] == pytest.approx(1.0)


def test_atomic_write_keeps_old_file_when_writer_raises(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half a ")
        raise RuntimeError("writer died mid-way")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]  # no temp file left


def test_atomic_write_replaces_and_keeps_the_extension(tmp_path):
    target = tmp_path / "sub" / "mask.nii.gz"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp.name.endswith(".nii.gz")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o666 & ~_UMASK  # as open() would create it


def test_writers_leave_old_files_intact_on_failure(tmp_path, monkeypatch):
    import nibabel as nib

    ct = ct_small()
    nifti = tmp_path / "mask.nii.gz"
    write_mask_nifti(tissue_mask(), ct, nifti)
    before = nifti.read_bytes()

    def broken_save(image, filename):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_mask_nifti(np.zeros((128, 128), np.uint8), ct, nifti)
    assert nifti.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.nii.gz"]
