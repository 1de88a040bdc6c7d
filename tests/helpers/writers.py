"""Shared pieces of the io writer tests: pydicom's CT_small as a CTSlice, a measured mask."""

from __future__ import annotations

import copy

import numpy as np

from lsmseg.io.ctslice import CTSlice, DicomRef
from lsmseg.keys import Measured, Tissue


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


def measured_labels(shape=(128, 128)) -> np.ndarray:
    """:func:`tissue_mask` with a block of IMAT inside the muscle (a measured mask)."""
    mask = tissue_mask(shape)
    mask[92:95, 80:90] = Measured.IMAT
    return mask
