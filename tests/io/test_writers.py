"""Writers: NIfTI mask geometry, overlay PNG, DICOM SEG round trip, atomicity."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lsmseg.io.atomic import _UMASK
from lsmseg.io.ctslice import CTSlice, DicomRef
from lsmseg.io.writers import atomic_write, write_dicom_seg, write_mask_nifti, write_overlay_png
from lsmseg.keys import Tissue
from lsmseg.readout.sarcopenia import build_readout, measure


def ct_small(flips=(False, False, False), drop_pixels=True) -> CTSlice:
    """pydicom's CT_small.dcm (128 x 128, 0.661468 mm) as a CTSlice, built by hand."""
    import pydicom
    from pydicom.data import get_testdata_file

    path = str(get_testdata_file("CT_small.dcm"))
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    spacing = (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1]))
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    affine = np.eye(4)
    affine[:3, 0] = iop[3:] * spacing[0]  # row index runs along the column direction cosines
    affine[:3, 1] = iop[:3] * spacing[1]
    affine[:3, 2] = np.cross(iop[:3], iop[3:]) * float(ds.SliceThickness)
    affine[:3, 3] = np.array(ds.ImagePositionPatient, dtype=float)
    ref = copy.deepcopy(ds)
    if drop_pixels:
        del ref.PixelData  # ingest may keep only the header
    ct = CTSlice(
        hu=stored,
        spacing_mm=spacing,
        case_id=str(ds.PatientID),
        source=path,
        affine=affine,
        dicom=DicomRef(
            dataset=ref,
            study_uid=ds.StudyInstanceUID,
            series_uid=ds.SeriesInstanceUID,
            sop_instance_uid=ds.SOPInstanceUID,
            sop_class_uid=ds.SOPClassUID,
        ),
        flips=flips,
    )
    ct.hu = ct.from_source_grid(stored)
    return ct


def tissue_mask(shape=(128, 128)) -> np.ndarray:
    """Asymmetric blocks of each tissue, so a flipped or transposed mask cannot pass."""
    mask = np.zeros(shape, dtype=np.uint8)
    mask[5:20, 10:60] = Tissue.SAT
    mask[40:70, 30:50] = Tissue.VAT
    mask[90:100, 70:120] = Tissue.MUSCLE
    return mask


def test_nifti_mask_round_trip(tmp_path):
    import nibabel as nib
    import SimpleITK as sitk

    ct = ct_small()
    mask = tissue_mask()
    path = write_mask_nifti(mask, ct, tmp_path / "case" / "mask.nii.gz")
    image = nib.Nifti1Image.from_filename(path)
    assert image.shape == (128, 128, 1)
    assert image.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(image.dataobj)[:, :, 0], mask)
    np.testing.assert_allclose(image.header.get_zooms()[:2], np.asarray(ct.spacing_mm), rtol=1e-6)
    assert image.get_sform(coded=True)[1] == 1 and image.get_qform(coded=True)[1] == 1
    # ITK works in LPS: each voxel must land where the CTSlice affine puts it.
    itk = sitk.ReadImage(str(path))
    for r, c in [(0, 0), (127, 0), (0, 127), (90, 70)]:
        expected = (ct.affine @ np.array([r, c, 0, 1.0]))[:3]
        np.testing.assert_allclose(itk.TransformIndexToPhysicalPoint((r, c, 0)), expected, atol=1e-3)
    assert sitk.GetArrayFromImage(itk)[0, 70, 90] == mask[90, 70]  # ITK array is (k, j, i)


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


def test_overlay_png(tmp_path):
    from PIL import Image

    ct = ct_small()
    mask = tissue_mask()
    comp = measure(mask, ct.hu, ct.spacing_mm)
    row = build_readout(comp, height_m=1.7, height_source="dicom").to_row()
    imat = np.zeros(mask.shape, bool)
    imat[92:95, 80:90] = True
    path = write_overlay_png(ct, mask, tmp_path / "overlay.png", row, imat=imat)
    assert path.exists()
    assert 1_000 < path.stat().st_size < 1_000_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.mode == "RGB"
        assert image.size == (640, 640)
        pixels = np.asarray(image)
    assert pixels.std() > 10  # an image, not a blank canvas


def test_overlay_png_keeps_physical_aspect(tmp_path):
    from PIL import Image

    ct = ct_small()
    ct.spacing_mm = (1.0, 0.5)  # rows twice as far apart as columns
    path = write_overlay_png(ct, tissue_mask(), tmp_path / "o.png", None)
    with Image.open(path) as image:
        width, height = image.size
    assert (width, height) == (320, 640)


def read_seg_pixels(path, sop_instance_uid):
    import highdicom as hd

    seg = hd.seg.segread(path)
    pixels = seg.get_pixels_by_source_instance([sop_instance_uid])  # (1, rows, cols, segments)
    return seg, pixels[0]


@pytest.mark.parametrize("flips", [(False, False, False), (True, False, False), (False, True, True)])
def test_dicom_seg_round_trip(tmp_path, flips):
    import pydicom

    ct = ct_small(flips=flips)
    mask = tissue_mask()
    path = write_dicom_seg(
        mask,
        ct,
        tmp_path / "seg.dcm",
        algorithm_name="lsm_sss",
        algorithm_version="1",
        software_version="0.1.0",
    )
    assert ct.dicom is not None
    source = ct.dicom.dataset
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SEG"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    assert (ds.Rows, ds.Columns) == (source.Rows, source.Columns)
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    referenced = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert referenced.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert [s.SegmentLabel for s in ds.SegmentSequence] == [
        "Subcutaneous adipose tissue",
        "Visceral adipose tissue",
        "Skeletal muscle",
    ]
    assert ds.SegmentSequence[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "127954009"

    seg, pixels = read_seg_pixels(path, source.SOPInstanceUID)
    assert seg.get_segment_numbers() == [1, 2, 3]
    on_source = ct.to_source_grid(mask)
    for index, tissue in enumerate((Tissue.SAT, Tissue.VAT, Tissue.MUSCLE)):
        np.testing.assert_array_equal(pixels[:, :, index], on_source == tissue)
    # and back on the normalised grid the SEG equals the mask
    labels = np.zeros(on_source.shape, np.uint8)
    for index, tissue in enumerate((Tissue.SAT, Tissue.VAT, Tissue.MUSCLE)):
        labels[pixels[:, :, index] > 0] = tissue
    np.testing.assert_array_equal(ct.from_source_grid(labels), mask)


def test_dicom_seg_only_present_tissues(tmp_path):
    ct = ct_small()
    mask = np.zeros((128, 128), np.uint8)
    mask[10:20, 10:20] = Tissue.MUSCLE
    path = write_dicom_seg(
        mask, ct, tmp_path / "seg.dcm", algorithm_name="a", algorithm_version="1", software_version="0"
    )
    assert ct.dicom is not None
    seg, pixels = read_seg_pixels(path, ct.dicom.dataset.SOPInstanceUID)
    assert seg.get_segment_numbers() == [1]
    assert seg.get_segment_description(1).segment_label == "Skeletal muscle"
    np.testing.assert_array_equal(pixels[:, :, 0], mask == Tissue.MUSCLE)


def test_dicom_seg_needs_dicom_and_a_non_empty_mask(tmp_path):
    ct = ct_small()
    kwargs: dict[str, Any] = {"algorithm_name": "a", "algorithm_version": "1", "software_version": "0"}
    with pytest.raises(ValueError, match="no SAT, VAT or muscle"):
        write_dicom_seg(np.zeros((128, 128), np.uint8), ct, tmp_path / "seg.dcm", **kwargs)
    ct.dicom = None
    with pytest.raises(ValueError, match="DICOM source"):
        write_dicom_seg(tissue_mask(), ct, tmp_path / "seg.dcm", **kwargs)
    assert not (tmp_path / "seg.dcm").exists()


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
