"""The measured mask: one label map holding exactly the pixels whose areas are reported.

:func:`lsmseg.readout.sarcopenia.measure` counts the pixels of :func:`tissue_pixels`; the map
built here from the same pixels is what ``mask.nii.gz`` and ``seg.dcm`` store, so that each
label's pixel count x pixel area is the reported area of its compartment. Folding it back into
compartments (:func:`compartments`) and measuring again gives the same numbers, because the HU
ranges of muscle (-29..150) and adipose tissue (-190..-30) do not overlap: a corrected measured
mask can be re-measured like a model mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lsmseg.keys import VAT_HU_DEFAULT, Measured, Tissue
from lsmseg.readout.sarcopenia import TissuePixels, tissue_pixels


def label_map(px: TissuePixels) -> np.ndarray:
    """(H, W) uint8 :class:`Measured` labels of the counted pixels (IMAT only when refined).

    The four pixel sets are disjoint (different compartments, or the muscle compartment split
    by non-overlapping HU ranges), so the order of assignment does not matter.
    """
    labels = np.zeros(px.muscle.shape, dtype=np.uint8)
    labels[px.sat] = Measured.SAT
    labels[px.vat] = Measured.VAT
    labels[px.muscle] = Measured.MUSCLE
    if px.imat is not None:
        labels[px.imat] = Measured.IMAT
    return labels


def measured_mask(
    mask: np.ndarray, hu: np.ndarray, *, refine: bool = True, vat_hu: Sequence[float] = VAT_HU_DEFAULT
) -> np.ndarray:
    """(H, W) uint8 measured mask of a compartment mask and its HU image (see :func:`label_map`).

    With ``refine=False`` it is the compartment mask itself (no IMAT), as measured then.
    """
    return label_map(tissue_pixels(mask, hu, refine=refine, vat_hu=vat_hu))


def compartments(labels: np.ndarray) -> np.ndarray:
    """(H, W) :class:`Tissue` compartments of a measured (or model) mask: IMAT folds into muscle.

    Raises:
        ValueError: a value that is neither a :class:`Measured` nor a :class:`Tissue` label.
    """
    labels = np.asarray(labels)
    bad = sorted(set(np.unique(labels).tolist()) - {m.value for m in Measured})
    if bad:
        valid = ", ".join(f"{m.value} {m.name.lower()}" for m in Measured)
        raise ValueError(f"mask has labels {bad}: valid labels are {valid}")
    out = labels.astype(np.uint8, copy=True)
    out[labels == Measured.IMAT] = Tissue.MUSCLE
    return out
