"""DICOM ingest: HU, spacing, patient fields, compression, series and orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from lsmseg.io import IngestError, read_dicom_series, read_dicom_slice
from tests.helpers.ct_dicom import make_ct_dataset, phantom_hu, write_ct


def test_pydicom_ct_small_hu_spacing_and_patient() -> None:
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    # this 128 x 128 crop of an abdomen fills its field of view: the gate would reject it
    ct = read_dicom_slice(path, check=False)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(ct.hu, expected.astype(np.float32))
    assert ct.hu.dtype == np.float32
    assert ct.spacing_mm == pytest.approx((0.661468, 0.661468))
    assert ct.case_id == "1CT1"
    assert ct.flips == (False, False, False)
    np.testing.assert_allclose(ct.affine[:3, 3], [-158.135803, -179.035797, -75.699997])
    assert ct.patient.patient_id == "1CT1"
    assert ct.patient.sex == "O"
    assert ct.patient.age == "000Y"
    assert ct.patient.weight_kg is None  # stored as 0.0, a placeholder for "unknown"
    assert ct.patient.height_m is None
    assert ct.dicom is not None
    assert ct.dicom.sop_instance_uid == ds.SOPInstanceUID
    assert ct.dicom.series_uid == ds.SeriesInstanceUID
    assert ct.dicom.study_uid == ds.StudyInstanceUID
    assert (ct.dicom.series_number, ct.dicom.instance_number) == (1, 1)
    assert "PixelData" in ct.dicom.dataset  # the full dataset, for highdicom


def test_written_slice_applies_slope_and_intercept(tmp_path: Path) -> None:
    hu = phantom_hu()
    path = write_ct(tmp_path / "a.dcm", hu=hu, slope=0.5, intercept=-1000.0, patient_id="PX 1/2")
    ct = read_dicom_slice(path)
    np.testing.assert_allclose(ct.hu, hu, atol=0.25)
    assert ct.spacing_mm == (0.8, 0.7)
    assert ct.pixel_area_mm2 == pytest.approx(0.56)
    assert ct.case_id == "PX_1_2"  # safe for an output folder name
    assert ct.patient.sex == "F"
    assert ct.patient.height_m == pytest.approx(1.65)
    assert ct.patient.weight_kg == pytest.approx(58.5)
    assert read_dicom_slice(path, case_id="mine").case_id == "mine"


def test_missing_rescale_is_refused_by_the_gate(tmp_path: Path) -> None:
    """CT requires RescaleSlope/Intercept: without them the gate says so (not "touches the
    border"); unchecked ingest still reads the stored values with the defaults 1 and 0."""
    ds = make_ct_dataset(intercept=0.0)
    del ds.RescaleSlope, ds.RescaleIntercept
    path = write_ct(tmp_path / "absent.dcm", ds)
    np.testing.assert_allclose(read_dicom_slice(path, check=False).hu, phantom_hu())
    with pytest.raises(IngestError, match="has no RescaleSlope or RescaleIntercept: the stored pixel values"):
        read_dicom_slice(path)
    ds = make_ct_dataset()
    ds.RescaleSlope = None
    with pytest.raises(IngestError, match="empty or invalid RescaleSlope"):
        read_dicom_slice(write_ct(tmp_path / "empty.dcm", ds))


def test_missing_pixel_spacing_is_an_error(tmp_path: Path) -> None:
    path = write_ct(tmp_path / "nospacing.dcm", spacing_mm=None)
    with pytest.raises(IngestError, match="has no PixelSpacing: cannot compute muscle area in cm2"):
        read_dicom_slice(path, check=False)


@pytest.mark.parametrize("implicit_vr", [True, False])
def test_file_without_preamble_is_read(tmp_path: Path, implicit_vr: bool) -> None:
    ds = make_ct_dataset()
    ds.preamble, ds.file_meta = None, FileMetaDataset()  # a bare dataset, as old scanners wrote
    path = tmp_path / "raw"
    ds.save_as(path, enforce_file_format=False, implicit_vr=implicit_vr, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"
    np.testing.assert_allclose(read_dicom_slice(path).hu, phantom_hu())


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=lambda s: s.name)
def test_compressed_transfer_syntaxes_decode(tmp_path: Path, syntax: pydicom.uid.UID) -> None:
    ds = make_ct_dataset()
    try:
        ds.compress(syntax)
    except (RuntimeError, NotImplementedError) as err:  # no encoder plugin here
        pytest.skip(f"cannot encode {syntax.name}: {err}")
    path = write_ct(tmp_path / "c.dcm", ds)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(read_dicom_slice(path).hu, phantom_hu())


def test_undecodable_pixels_are_an_ingest_error(tmp_path: Path) -> None:
    ds = make_ct_dataset()
    ds.PixelData = ds.PixelData[:100]
    with pytest.raises(IngestError, match="pixel data cannot be decoded"):
        read_dicom_slice(write_ct(tmp_path / "short.dcm", ds))


def _stored_affine(ds: pydicom.Dataset) -> np.ndarray:
    """Index (row, column) -> LPS of the stored grid, straight from the DICOM tags."""
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    affine = np.eye(4)
    affine[:3, 0] = iop[3:] * float(ds.PixelSpacing[0])
    affine[:3, 1] = iop[:3] * float(ds.PixelSpacing[1])
    affine[:3, 3] = np.asarray(ds.ImagePositionPatient, dtype=float)
    return affine


# (stored pixels from the anatomical image, orientation that describes them)
ORIENTATIONS = {
    "axial": (lambda a: a, (1, 0, 0, 0, 1, 0)),
    "flipped_lr": (lambda a: a[:, ::-1], (-1, 0, 0, 0, 1, 0)),
    "flipped_ap": (lambda a: a[::-1, :], (1, 0, 0, 0, -1, 0)),
    "transposed": (lambda a: a.T, (0, 1, 0, 1, 0, 0)),
    "rotated_90": (lambda a: np.rot90(a), (0, 1, 0, -1, 0, 0)),  # counter-clockwise
    "rotated_180": (lambda a: a[::-1, ::-1], (-1, 0, 0, 0, -1, 0)),
}


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_orientation_is_normalised(tmp_path: Path, name: str) -> None:
    anatomical = phantom_hu((128, 160))  # rows anterior -> posterior, columns right -> left
    to_stored, iop = ORIENTATIONS[name]
    stored = np.ascontiguousarray(to_stored(anatomical))
    ds = make_ct_dataset(stored, orientation=iop, spacing_mm=(0.7, 0.9))
    ct = read_dicom_slice(write_ct(tmp_path / f"{name}.dcm", ds))
    np.testing.assert_array_equal(ct.hu, anatomical)
    np.testing.assert_array_equal(ct.to_source_grid(ct.hu), stored)
    # rows run towards posterior (+y), columns towards the patient's left (+x), slices up (+z)
    np.testing.assert_allclose(ct.affine[:3, 0] / ct.spacing_mm[0], [0, 1, 0], atol=1e-9)
    np.testing.assert_allclose(ct.affine[:3, 1] / ct.spacing_mm[1], [1, 0, 0], atol=1e-9)
    assert ct.affine[2, 2] > 0
    # every pixel keeps its position in the patient
    rows, cols = np.indices(ct.hu.shape)
    src_rows, src_cols = np.indices(stored.shape)
    norm_rows, norm_cols = ct.to_source_grid(rows), ct.to_source_grid(cols)
    ones, zeros = np.ones(stored.size), np.zeros(stored.size)
    normalised = ct.affine @ np.stack([norm_rows.ravel(), norm_cols.ravel(), zeros, ones])
    source = _stored_affine(ds) @ np.stack([src_rows.ravel(), src_cols.ravel(), zeros, ones])
    np.testing.assert_allclose(normalised, source, atol=1e-6)


def _write_series(folder: Path, n: int = 5, patient_id: str = "S1") -> list[np.ndarray]:
    series_uid, study_uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    slices = []
    for k in range(n):
        hu = phantom_hu()
        hu[hu == 45.0] = 40.0 + k  # each slice's muscle says which slice it is
        slices.append(hu)
        ds = make_ct_dataset(
            hu,
            patient_id=patient_id,
            study_uid=study_uid,
            series_uid=series_uid,
            instance_number=k + 1,
            position=(-120.0, -100.0, -300.0 + 2.5 * k),
        )
        write_ct(folder / f"IM{(n - k):04d}", ds)  # file order differs from InstanceNumber order
    return slices


def test_series_slice_chosen_by_instance_number(tmp_path: Path) -> None:
    slices = _write_series(tmp_path / "series")
    ct = read_dicom_series(tmp_path / "series", 3)
    np.testing.assert_array_equal(ct.hu, slices[2])
    assert ct.dicom is not None and ct.dicom.instance_number == 3
    assert ct.case_id == "S1"
    with pytest.raises(IngestError, match=r"InstanceNumber 9 is not in series .* \(available: 1-5\)"):
        read_dicom_series(tmp_path / "series", 9)
