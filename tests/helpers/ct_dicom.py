"""Build small, valid CT DICOM datasets on the fly for the ingest tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def phantom_hu(shape: tuple[int, int] = (128, 144)) -> np.ndarray:
    """(H, W) HU: an elliptic body (fat rim, muscle, viscera) in air, clear of the border.

    The body is shifted towards the top-left so that flips and transposes are visible.
    """
    height, width = shape
    rr, cc = np.mgrid[0:height, 0:width]
    centre_r, centre_c = 0.45 * height, 0.45 * width
    ellipse = ((rr - centre_r) / (0.35 * height)) ** 2 + ((cc - centre_c) / (0.38 * width)) ** 2
    hu = np.full(shape, -1000.0)
    hu[ellipse <= 1.0] = -100.0  # subcutaneous fat
    hu[ellipse <= 0.7] = 45.0  # muscle
    hu[ellipse <= 0.4] = -60.0  # visceral fat
    hu[int(centre_r) : int(centre_r) + 3, int(centre_c) : int(centre_c) + 5] = 700.0  # bone
    return hu.astype(np.float32)


def make_ct_dataset(
    hu: np.ndarray | None = None,
    *,
    patient_id: str = "P1",
    study_uid: str | None = None,
    series_uid: str | None = None,
    series_number: int = 1,
    instance_number: int = 1,
    spacing_mm: Sequence[float] | None = (0.8, 0.7),
    orientation: Sequence[float] | None = AXIAL,
    position: Sequence[float] | None = (-120.0, -100.0, -300.0),
    slope: float = 1.0,
    intercept: float = -1024.0,
    modality: str = "CT",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
) -> FileDataset:
    """A single-frame CT Image Storage dataset whose stored pixels give ``hu`` after rescale.

    ``hu`` is in stored pixel order (what the orientation tags describe); None for
    :func:`phantom_hu`. Tags given as None are left out.
    """
    hu = phantom_hu() if hu is None else np.asarray(hu, dtype=np.float64)
    stored = np.round((hu - intercept) / slope).astype(np.int16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = modality
    ds.ImageType = list(image_type)
    ds.PatientID = patient_id
    ds.PatientName = f"Test^{patient_id}"
    ds.PatientSex = "F"
    ds.PatientSize = "1.65"
    ds.PatientWeight = "58.5"
    ds.PatientAge = "063Y"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.SliceThickness = "2.5"
    if spacing_mm is not None:
        ds.PixelSpacing = [f"{v:g}" for v in spacing_mm]
    if orientation is not None:
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    if position is not None:
        ds.ImagePositionPatient = [f"{v:g}" for v in position]
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = stored.tobytes()
    return ds


def write_ct(path: Path, ds: FileDataset | None = None, **kwargs: object) -> Path:
    """Save ``ds`` (or ``make_ct_dataset(**kwargs)``) as a DICOM file with preamble; returns path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    (ds if ds is not None else make_ct_dataset(**kwargs)).save_as(path, enforce_file_format=True)  # type: ignore[arg-type]
    return path
