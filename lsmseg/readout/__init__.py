"""Sarcopenia readout: areas, HU statistics, HU-range refinement, SMI, BMI and cut-off tables."""

from lsmseg.readout.cutoffs import (
    CUTOFF_SETS,
    BmiSplit,
    BySex,
    CutoffResult,
    CutoffSet,
    ExtraFlag,
    get_cutoff_sets,
    normalize_sex,
)
from lsmseg.readout.sarcopenia import (
    BodyComposition,
    HeightSource,
    Readout,
    TissuePixels,
    bmi,
    build_readout,
    measure,
    smi,
    tissue_pixels,
)

__all__ = [
    "CUTOFF_SETS",
    "BmiSplit",
    "BodyComposition",
    "BySex",
    "CutoffResult",
    "CutoffSet",
    "ExtraFlag",
    "HeightSource",
    "Readout",
    "TissuePixels",
    "bmi",
    "build_readout",
    "get_cutoff_sets",
    "measure",
    "normalize_sex",
    "smi",
    "tissue_pixels",
]
