"""Names defined once: row modes, tissue labels, dictionary keys and HU ranges."""

from __future__ import annotations

from enum import IntEnum


class Mode(IntEnum):
    """Which views a training row carries (paper section 4.3).

    For two domains X (e.g. CT image) and Y (e.g. tissue mask): a PAIRED row has both, an X_ONLY
    row has only the image, a Y_ONLY row only the mask. The hidden view of a row is zero-filled
    and every loss term that would read it is masked out.
    """

    PAIRED = 0
    X_ONLY = 1
    Y_ONLY = 2

    @property
    def has_x(self) -> bool:
        return self in (Mode.PAIRED, Mode.X_ONLY)

    @property
    def has_y(self) -> bool:
        return self in (Mode.PAIRED, Mode.Y_ONLY)


class Tissue(IntEnum):
    """Labels of the 4-class L3 body-composition mask (SSS data set)."""

    BACKGROUND = 0
    SAT = 1  # subcutaneous adipose tissue
    VAT = 2  # visceral adipose tissue
    MUSCLE = 3  # skeletal muscle


TISSUE_NAMES: dict[int, str] = {t.value: t.name.lower() for t in Tissue}


class Measured(IntEnum):
    """Labels of the measured mask (``mask.nii.gz``, ``seg.dcm``): the compartments after the
    Alberta HU ranges, exactly the pixels whose areas are reported.

    SAT, VAT and MUSCLE keep their :class:`Tissue` values, so a measured mask read as
    compartments only has to fold IMAT back into muscle (IMAT lies inside the muscle compartment).
    """

    BACKGROUND = 0
    SAT = 1
    VAT = 2
    MUSCLE = 3
    IMAT = 4  # intermuscular adipose tissue: muscle compartment with adipose HU


class Keys:
    """Dictionary keys shared by data, engines and bundles."""

    IMAGE = "image"  # domain X: (C, H, W) float in [0, 1]
    LABEL = "label"  # domain Y: (1, H, W) integer class map, or (136,) landmarks in [0, 1]
    MODE = "mode"  # int Mode of the row
    PRED = "pred"
    CASE_ID = "case_id"


# Hounsfield-unit ranges of the Alberta protocol (Mitsiopoulos 1998, Mourtzakis 2008).
MUSCLE_HU = (-29.0, 150.0)
ADIPOSE_HU = (-190.0, -30.0)  # SAT and IMAT
VAT_HU_DEFAULT = (-150.0, -50.0)
