"""Ingest of L3 CT slices: DICOM and NIfTI files in, :class:`CTSlice` out, through a quality gate."""

from lsmseg.io.ctslice import CTSlice, DicomRef, IngestError, PatientInfo
from lsmseg.io.dicom import (
    normalised_geometry,
    orientation_flips,
    patient_info,
    read_dataset,
    read_dicom_slice,
    safe_case_id,
    slice_from_dataset,
)
from lsmseg.io.discover import CaseSource, discover_cases, load_case, read_dicom_series
from lsmseg.io.nifti import is_nifti, nifti_stem, read_nifti_slice
from lsmseg.io.quality import DEFAULT_CHECKS, check_slice

__all__ = [
    "DEFAULT_CHECKS",
    "CTSlice",
    "CaseSource",
    "DicomRef",
    "IngestError",
    "PatientInfo",
    "check_slice",
    "discover_cases",
    "is_nifti",
    "load_case",
    "nifti_stem",
    "normalised_geometry",
    "orientation_flips",
    "patient_info",
    "read_dataset",
    "read_dicom_series",
    "read_dicom_slice",
    "read_nifti_slice",
    "safe_case_id",
    "slice_from_dataset",
]
