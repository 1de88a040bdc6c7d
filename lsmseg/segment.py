"""Compatibility: the clinical path now lives in :mod:`lsmseg.clinical`; these names stay importable."""

from lsmseg.clinical.cohort import DEFAULT_CUTOFFS, parse_hu_range, segment_cohort
from lsmseg.clinical.model import DEFAULT_BUNDLE, SegmentationModel, load_bundle
from lsmseg.clinical.patients import PatientRecord, PatientTable
from lsmseg.clinical.results import SegmentReport
from lsmseg.errors import UsageError as SegmentError

__all__ = [
    "DEFAULT_BUNDLE",
    "DEFAULT_CUTOFFS",
    "PatientRecord",
    "PatientTable",
    "SegmentError",
    "SegmentReport",
    "SegmentationModel",
    "load_bundle",
    "parse_hu_range",
    "segment_cohort",
]
