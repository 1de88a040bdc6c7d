"""L3 body composition from a tissue mask: areas, muscle attenuation, SMI, BMI and the result row.

The maths follows the Alberta protocol as taught with Slice-O-Matic (Mitsiopoulos 1998,
Mourtzakis 2008): a tissue is counted where the predicted compartment and the tissue's Hounsfield
range agree, areas are pixel count x pixel area on the native grid, and skeletal muscle index is
muscle area / height^2.

Sources:
    Mitsiopoulos N et al. Cadaver validation of skeletal muscle measurement by magnetic resonance
    imaging and computerized tomography. J Appl Physiol 1998;85(1):115-122.
    Mourtzakis M et al. A practical and precise approach to quantification of body composition in
    cancer patients using computed tomography images acquired during routine care. Appl Physiol
    Nutr Metab 2008;33(5):997-1006.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from lsmseg.keys import ADIPOSE_HU, MUSCLE_HU, VAT_HU_DEFAULT, Tissue
from lsmseg.readout.cutoffs import CutoffResult, CutoffSet, normalize_sex

HuRange = tuple[float, float]

MAX_HEIGHT_M = 3.0  # anything taller is a unit error (centimetres given as metres)
MAX_WEIGHT_KG = 500.0
# SMI and BMI are rounded to this many decimals so that float noise does not flip a strict "<"
# at a boundary the inputs hit exactly (64 kg at 1.60 m is BMI 25.0, not 24.999999999999996).
_DECIMALS = 10


@dataclass(frozen=True)
class TissuePixels:
    """Per-tissue boolean masks, each (H, W), after (optional) HU-range refinement.

    ``imat`` is None when refinement is off: intermuscular fat is only defined by its HU range.
    """

    muscle: np.ndarray
    imat: np.ndarray | None
    sat: np.ndarray
    vat: np.ndarray


@dataclass(frozen=True)
class BodyComposition:
    """What one L3 slice measures.

    Attributes:
        muscle_area_cm2: skeletal muscle area (SMA), cm^2.
        muscle_mean_hu: mean HU of the muscle pixels (muscle attenuation, SMRA); NaN if none.
        muscle_sd_hu: population standard deviation (ddof=0) of the muscle HU; NaN if none.
        imat_area_cm2: intermuscular adipose tissue, cm^2; NaN when ``refined`` is False
            (IMAT is defined by its HU range, so an unrefined mask does not measure it).
        sat_area_cm2: subcutaneous adipose tissue, cm^2.
        vat_area_cm2: visceral adipose tissue, cm^2.
        vat_hu_range: HU range applied to VAT; None when ``refined`` is False.
        refined: whether the Alberta HU ranges were applied.
        spacing_mm: (row, column) pixel spacing the areas were computed with, mm.
        muscle_hu_range: HU range applied to muscle (None when not refined).
        adipose_hu_range: HU range applied to SAT and IMAT (None when not refined).
    """

    muscle_area_cm2: float
    muscle_mean_hu: float
    muscle_sd_hu: float
    imat_area_cm2: float
    sat_area_cm2: float
    vat_area_cm2: float
    vat_hu_range: HuRange | None
    refined: bool
    spacing_mm: tuple[float, float]
    muscle_hu_range: HuRange | None = None
    adipose_hu_range: HuRange | None = None


def _check_range(name: str, hu_range: Sequence[float]) -> HuRange:
    lo, hi = (float(v) for v in hu_range)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be (min, max) HU with min <= max, got {tuple(hu_range)}")
    return lo, hi


def _check_inputs(mask: np.ndarray, hu: np.ndarray, spacing_mm: Sequence[float]) -> tuple[float, float]:
    """Validate a mask/HU pair and its spacing; return the spacing as two floats (mm)."""
    mask = np.asarray(mask)
    hu = np.asarray(hu)
    if mask.shape != hu.shape:
        raise ValueError(
            f"mask shape {mask.shape} does not match HU image shape {hu.shape}: "
            "map the mask back to the native pixel grid first"
        )
    if mask.ndim != 2:
        raise ValueError(f"expected one (H, W) slice, got mask of shape {mask.shape}")
    if len(spacing_mm) != 2:
        raise ValueError(f"spacing_mm must be (row, column) in mm, got {spacing_mm!r}")
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]))
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"pixel spacing must be finite and > 0 mm, got {spacing}: cannot compute areas")
    if not np.issubdtype(hu.dtype, np.number) or np.issubdtype(hu.dtype, np.complexfloating):
        raise ValueError(f"HU image must be real numbers, got dtype {hu.dtype}")
    if not np.all(np.isfinite(hu)):
        raise ValueError(f"HU image has {int(np.sum(~np.isfinite(hu)))} NaN/inf pixels: cannot measure")
    if mask.dtype != bool and not np.issubdtype(mask.dtype, np.integer):
        if not np.issubdtype(mask.dtype, np.floating) or not np.all(mask == np.round(mask)):
            raise ValueError(f"mask must hold integer Tissue labels, got dtype {mask.dtype}")
    bad = sorted(set(np.unique(mask).tolist()) - {t.value for t in Tissue})
    if bad:
        valid = ", ".join(f"{t.value} {t.name.lower()}" for t in Tissue)
        raise ValueError(f"mask has labels {bad} outside the Tissue labels ({valid})")
    return spacing


def _in_range(hu: np.ndarray, hu_range: HuRange) -> np.ndarray:
    """Inclusive ``lo <= hu <= hi``, as Slice-O-Matic thresholds are."""
    return (hu >= hu_range[0]) & (hu <= hu_range[1])


def tissue_pixels(
    mask: np.ndarray,
    hu: np.ndarray,
    *,
    refine: bool = True,
    vat_hu: Sequence[float] = VAT_HU_DEFAULT,
    muscle_hu: Sequence[float] = MUSCLE_HU,
    adipose_hu: Sequence[float] = ADIPOSE_HU,
) -> TissuePixels:
    """Which pixels count as each tissue (no validation; :func:`measure` validates).

    With ``refine`` (Alberta protocol): muscle = muscle compartment with HU in ``muscle_hu``;
    IMAT = muscle compartment with HU in ``adipose_hu``; SAT = SAT compartment with HU in
    ``adipose_hu``; VAT = VAT compartment with HU in ``vat_hu``. Ranges are inclusive, in HU.
    Without it, each tissue is its predicted compartment and IMAT is None.

    Args:
        mask: (H, W) Tissue labels on the native grid.
        hu: (H, W) Hounsfield units on the same grid.
    """
    mask = np.asarray(mask)
    hu = np.asarray(hu)
    muscle_cmp = mask == Tissue.MUSCLE
    sat_cmp = mask == Tissue.SAT
    vat_cmp = mask == Tissue.VAT
    if not refine:
        return TissuePixels(muscle=muscle_cmp, imat=None, sat=sat_cmp, vat=vat_cmp)
    adipose = _in_range(hu, _check_range("adipose_hu", adipose_hu))
    return TissuePixels(
        muscle=muscle_cmp & _in_range(hu, _check_range("muscle_hu", muscle_hu)),
        imat=muscle_cmp & adipose,
        sat=sat_cmp & adipose,
        vat=vat_cmp & _in_range(hu, _check_range("vat_hu", vat_hu)),
    )


def measure(
    mask: np.ndarray,
    hu: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    refine: bool = True,
    vat_hu: Sequence[float] = VAT_HU_DEFAULT,
    muscle_hu: Sequence[float] = MUSCLE_HU,
    adipose_hu: Sequence[float] = ADIPOSE_HU,
) -> BodyComposition:
    """Body composition of one L3 slice (Alberta protocol; Mitsiopoulos 1998, Mourtzakis 2008).

    Areas are ``pixel count * spacing_mm[0] * spacing_mm[1] / 100`` (cm^2) on the native grid.
    With ``refine`` each tissue is its compartment restricted to its HU range (see
    :func:`tissue_pixels`); IMAT is measured inside the muscle compartment. With
    ``refine=False`` the raw model areas are reported, muscle HU statistics cover the whole
    muscle compartment and ``imat_area_cm2`` is NaN (not measured, rather than a false 0).

    Args:
        mask: (H, W) integer Tissue labels (0 background, 1 SAT, 2 VAT, 3 muscle).
        hu: (H, W) Hounsfield units, same shape, no NaN.
        spacing_mm: (row, column) pixel spacing in mm, finite and > 0.
        refine: apply the HU ranges.
        vat_hu: VAT range in HU (default -150..-50; several tools use -190..-30).
        muscle_hu: skeletal-muscle range in HU (default -29..150).
        adipose_hu: SAT and IMAT range in HU (default -190..-30).

    Raises:
        ValueError: shape mismatch, non-finite HU, bad spacing, unknown labels or bad ranges.
    """
    spacing = _check_inputs(mask, hu, spacing_mm)
    hu = np.asarray(hu, dtype=np.float64)
    px = tissue_pixels(mask, hu, refine=refine, vat_hu=vat_hu, muscle_hu=muscle_hu, adipose_hu=adipose_hu)
    pixel_cm2 = spacing[0] * spacing[1] / 100.0

    def area(pixels: np.ndarray) -> float:
        return int(np.count_nonzero(pixels)) * pixel_cm2

    muscle_values = hu[px.muscle]
    mean_hu = float(muscle_values.mean()) if muscle_values.size else math.nan
    sd_hu = float(muscle_values.std()) if muscle_values.size else math.nan
    return BodyComposition(
        muscle_area_cm2=area(px.muscle),
        muscle_mean_hu=mean_hu,
        muscle_sd_hu=sd_hu,
        imat_area_cm2=area(px.imat) if px.imat is not None else math.nan,
        sat_area_cm2=area(px.sat),
        vat_area_cm2=area(px.vat),
        vat_hu_range=_check_range("vat_hu", vat_hu) if refine else None,
        refined=refine,
        spacing_mm=spacing,
        muscle_hu_range=_check_range("muscle_hu", muscle_hu) if refine else None,
        adipose_hu_range=_check_range("adipose_hu", adipose_hu) if refine else None,
    )


def _check_height(height_m: float) -> float:
    height = float(height_m)
    if not math.isfinite(height) or height <= 0:
        raise ValueError(f"height must be a positive number of metres, got {height_m!r}")
    if height > MAX_HEIGHT_M:
        raise ValueError(f"height {height:g} m is not plausible: give height in metres, not centimetres")
    return height


def smi(muscle_area_cm2: float, height_m: float) -> float:
    """Skeletal muscle index, cm^2/m^2: L3 muscle area / height^2 (Mourtzakis 2008, Prado 2008).

    Rounded to 1e-10 (see ``_DECIMALS``).

    Raises:
        ValueError: height not in (0, 3] m (a height in centimetres is caught here) or a negative
            or non-finite area.
    """
    area = float(muscle_area_cm2)
    if not math.isfinite(area) or area < 0:
        raise ValueError(f"muscle area must be a finite number of cm2 >= 0, got {muscle_area_cm2!r}")
    return round(area / _check_height(height_m) ** 2, _DECIMALS)


def _check_weight(weight_kg: float) -> float:
    weight = float(weight_kg)
    if not math.isfinite(weight) or weight <= 0 or weight > MAX_WEIGHT_KG:
        raise ValueError(f"weight must be in kilograms, 0 < weight <= {MAX_WEIGHT_KG:g}, got {weight_kg!r}")
    return weight


def bmi(weight_kg: float, height_m: float) -> float:
    """Body-mass index, kg/m^2: weight / height^2, rounded to 1e-10 (see ``_DECIMALS``).

    Raises:
        ValueError: weight not in (0, 500] kg or height not in (0, 3] m.
    """
    return round(_check_weight(weight_kg) / _check_height(height_m) ** 2, _DECIMALS)


class HeightSource(str, Enum):
    """Where a case's height came from (reported in every row)."""

    DICOM = "dicom"  # PatientSize of the source image
    CSV = "csv"  # the user's patients CSV
    MISSING = "missing"


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _format_range(hu_range: HuRange | None) -> str | None:
    return None if hu_range is None else f"{hu_range[0]:g}..{hu_range[1]:g}"


@dataclass(frozen=True)
class Readout:
    """Body composition joined with the patient's height, weight and sex and the cut-off verdicts.

    Build it with :func:`build_readout`; :meth:`to_row` flattens it for results.csv.
    """

    composition: BodyComposition
    height_m: float | None
    weight_kg: float | None
    sex: str | None
    height_source: HeightSource
    smi_cm2_m2: float | None
    bmi: float | None
    cutoff_sets: tuple[CutoffSet, ...] = ()
    cutoffs: dict[str, CutoffResult] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """Flat dict of the measurement columns of results.csv (NaN becomes None).

        Keys: pixel_spacing_mm ("row x column", mm), muscle_area_cm2, muscle_mean_hu,
        muscle_sd_hu, imat_area_cm2, sat_area_cm2, vat_area_cm2, vat_hu_range ("min..max" HU,
        "off" when not refined), refined, height_m, height_source, weight_kg, sex, bmi,
        smi_cm2_m2, then each cut-off set's columns (:attr:`CutoffSet.columns`) and
        cutoff_notes (the comparison made, or why a verdict is missing). The caller adds
        case_id, status, error, source, runtime_s and model.
        """
        c = self.composition
        row: dict[str, Any] = {
            "pixel_spacing_mm": f"{c.spacing_mm[0]:g}x{c.spacing_mm[1]:g}",
            "muscle_area_cm2": c.muscle_area_cm2,
            "muscle_mean_hu": c.muscle_mean_hu,
            "muscle_sd_hu": c.muscle_sd_hu,
            "imat_area_cm2": c.imat_area_cm2,
            "sat_area_cm2": c.sat_area_cm2,
            "vat_area_cm2": c.vat_area_cm2,
            "vat_hu_range": _format_range(c.vat_hu_range) if c.refined else "off",
            "refined": c.refined,
            "height_m": self.height_m,
            "height_source": self.height_source.value,
            "weight_kg": self.weight_kg,
            "sex": self.sex,
            "bmi": self.bmi,
            "smi_cm2_m2": self.smi_cm2_m2,
        }
        notes = []
        for cutoff_set in self.cutoff_sets:
            result = self.cutoffs[cutoff_set.name]
            row[f"sarcopenia_{cutoff_set.name}"] = result.sarcopenic
            if cutoff_set.myosteatosis_hu is not None:
                row[f"myosteatosis_{cutoff_set.name}"] = result.myosteatosis
            row.update(result.flags)
            notes.append(f"{cutoff_set.name}: {result.reason}")
        row["cutoff_notes"] = " | ".join(notes)
        return {key: _finite_or_none(value) for key, value in row.items()}


def _height_source(height_m: float | None, height_source: HeightSource | str | None) -> HeightSource:
    """Where the height came from, checked against whether there is one."""
    if height_source is None:
        source = HeightSource.MISSING
    else:
        try:
            source = HeightSource(height_source)
        except ValueError:
            valid = ", ".join(s.value for s in HeightSource)
            raise ValueError(f"unknown height_source {height_source!r}: valid values are {valid}") from None
    if height_m is None and source is not HeightSource.MISSING:
        raise ValueError(f"height_source is {source.value!r} but no height was given")
    if height_m is not None and source is HeightSource.MISSING:
        raise ValueError("a height was given without its source: pass height_source='dicom' or 'csv'")
    return source


def build_readout(
    composition: BodyComposition,
    *,
    height_m: float | None = None,
    weight_kg: float | None = None,
    sex: str | None = None,
    height_source: HeightSource | str | None = None,
    cutoff_sets: Sequence[CutoffSet] = (),
) -> Readout:
    """Combine a slice's body composition with patient data and judge it by each cut-off set.

    Args:
        composition: output of :func:`measure`.
        height_m: height in metres (None if unknown: SMI and BMI are then None).
        weight_kg: weight in kilograms (None if unknown: BMI is then None).
        sex: "M" / "F" (DICOM PatientSex) or "male" / "female"; other values are kept in the
            row but no cut-off can judge them.
        height_source: "dicom" or "csv" when a height is given; "missing" (the default) when not.
        cutoff_sets: sets to evaluate, e.g. ``get_cutoff_sets("prado2008,martin2013")``.

    Raises:
        ValueError: implausible height/weight, or a height_source that contradicts height_m.
    """
    if height_m is not None and not math.isfinite(float(height_m)):
        height_m = None
    if weight_kg is not None and not math.isfinite(float(weight_kg)):
        weight_kg = None
    source = _height_source(height_m, height_source)
    height = _check_height(height_m) if height_m is not None else None
    weight = _check_weight(weight_kg) if weight_kg is not None else None
    smi_value = smi(composition.muscle_area_cm2, height) if height is not None else None
    bmi_value = bmi(weight, height) if height is not None and weight is not None else None
    sex_text = str(sex).strip() if sex is not None else ""
    sex_value = (normalize_sex(sex_text) or sex_text) if sex_text else None
    results = {
        s.name: s.evaluate(
            smi_value,
            sex,
            bmi=bmi_value,
            muscle_mean_hu=composition.muscle_mean_hu,
            muscle_area_cm2=composition.muscle_area_cm2,
        )
        for s in cutoff_sets
    }
    return Readout(
        composition=composition,
        height_m=height,
        weight_kg=weight,
        sex=sex_value,
        height_source=source,
        smi_cm2_m2=smi_value,
        bmi=bmi_value,
        cutoff_sets=tuple(cutoff_sets),
        cutoffs=results,
    )
