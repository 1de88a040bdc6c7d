"""The clinical path: L3 CT slices in, body composition, masks and reports out (``lsmseg segment``).

model     a trained bundle loaded once, from its model record (network, weights, preprocessing)
patients  the patients CSV; height, weight and sex of a case (DICOM first)
case      one case: ingest, preprocess, measure, write its files
results   results rows, results.csv / results.json, provenance, resume state
cohort    segment_cohort: the run over a cohort (or a shard of it, or one torchrun rank's)
pipeline  ingest workers -> the network on batches -> writer workers
shard     --shard K/N and torchrun ranks; merge: shard results -> one run's results
"""

from lsmseg.clinical.cohort import DEFAULT_CUTOFFS, parse_hu_range, segment_cohort
from lsmseg.clinical.merge import merge_shards
from lsmseg.clinical.model import DEFAULT_BUNDLE, SegmentationModel, load_bundle
from lsmseg.clinical.patients import PatientRecord, PatientTable
from lsmseg.clinical.results import SegmentReport
from lsmseg.clinical.shard import Shard, parse_shard

__all__ = [
    "DEFAULT_BUNDLE",
    "DEFAULT_CUTOFFS",
    "PatientRecord",
    "PatientTable",
    "SegmentReport",
    "SegmentationModel",
    "Shard",
    "load_bundle",
    "merge_shards",
    "parse_hu_range",
    "parse_shard",
    "segment_cohort",
]
