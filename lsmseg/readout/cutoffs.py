"""Named, versioned sarcopenia cut-off tables for L3 CT body composition.

Each published cut-off set is data (a frozen :class:`CutoffSet` in :data:`CUTOFF_SETS`), never an
``if`` buried in the readout: prevalence of "sarcopenia" swings from about 1 % to 50 % with the
choice of set, so every result row names the set it was judged by.

All thresholds are strict ``<`` as tabulated in the sources; a value exactly at a threshold is not
low. Sex is DICOM PatientSex ("M" / "F"); other values cannot be judged.

Sources:
    Prado CMM et al. Prevalence and clinical implications of sarcopenic obesity in patients with
    solid tumours of the respiratory and gastrointestinal tracts: a population-based study.
    Lancet Oncol 2008;9(7):629-635.
    Martin L et al. Cancer cachexia in the age of obesity: skeletal muscle depletion is a powerful
    prognostic factor, independent of body mass index. J Clin Oncol 2013;31(12):1539-1547.
    Derstine BA et al. Skeletal muscle cutoff values for sarcopenia diagnosis using T10 to L5
    measurements in a healthy US population. Sci Rep 2018;8:11369.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

MEN = "M"
WOMEN = "F"

_SEX_ALIASES = {
    "m": MEN,
    "male": MEN,
    "man": MEN,
    "men": MEN,
    "f": WOMEN,
    "female": WOMEN,
    "woman": WOMEN,
    "women": WOMEN,
    "w": WOMEN,
}


def normalize_sex(sex: str | None) -> str | None:
    """Map a sex given as DICOM PatientSex ("M", "F") or a word ("male", "female") to "M" / "F".

    Returns None for missing, empty, "O" (other) or anything unrecognised: no published cut-off
    set has a threshold for them.
    """
    if sex is None:
        return None
    return _SEX_ALIASES.get(str(sex).strip().lower())


def _missing(value: float | None) -> bool:
    return value is None or not math.isfinite(value)


@dataclass(frozen=True)
class BmiSplit:
    """A threshold that depends on body-mass index: ``lean`` if BMI < ``bmi_kg_m2``, else ``heavy``."""

    lean: float
    heavy: float
    bmi_kg_m2: float = 25.0  # WHO overweight boundary, as used by Martin 2013

    def pick(self, bmi: float) -> float:
        """The threshold that applies at ``bmi`` (kg/m^2)."""
        return self.lean if bmi < self.bmi_kg_m2 else self.heavy


Threshold = float | BmiSplit


@dataclass(frozen=True)
class BySex:
    """One threshold for men and one for women."""

    men: Threshold
    women: Threshold

    def for_sex(self, sex: str) -> Threshold:
        """Threshold for a normalised sex ("M" or "F")."""
        return self.men if sex == MEN else self.women


@dataclass(frozen=True)
class ExtraFlag:
    """An additional low-value flag reported next to the SMI verdict (e.g. low SMA, low SMRA).

    Attributes:
        column: result column prefix; the column is ``<column>_<set name>``.
        quantity: which measurement is compared: "muscle_area_cm2" or "muscle_mean_hu".
        unit: unit of the thresholds, for the reason text.
        thresholds: flag is True when quantity < threshold.
    """

    column: str
    quantity: str
    unit: str
    thresholds: BySex


@dataclass(frozen=True)
class CutoffResult:
    """Verdict of one cut-off set for one case.

    ``None`` means "cannot evaluate" (missing height, sex, BMI or measurement); ``reason`` then
    says what is missing, otherwise it spells out the comparison that was made.
    """

    sarcopenic: bool | None
    myosteatosis: bool | None
    reason: str
    flags: dict[str, bool | None] = field(default_factory=dict)


def _sex_or_problem(sex: str | None) -> tuple[str | None, str | None]:
    """("M" / "F", None), or (None, why no sex-specific threshold applies)."""
    sex_n = normalize_sex(sex)
    if sex is None or not str(sex).strip():
        return None, "sex missing"
    if sex_n is None:
        return None, f"sex {sex!r} has no threshold (need M or F)"
    return sex_n, None


@dataclass(frozen=True)
class CutoffSet:
    """A published table of L3 thresholds.

    Attributes:
        name: registry key and result-column suffix, e.g. "prado2008".
        version: version of this table in lsmseg (bumped if a value is ever corrected).
        citation: the publication the numbers come from.
        population: the population the thresholds were derived in.
        smi_cm2_m2: sarcopenia when SMI (cm^2/m^2) < threshold.
        myosteatosis_hu: myosteatosis when muscle mean HU < threshold (None: not defined).
        extra_flags: further low-value flags (column ``<flag.column>_<name>``).
    """

    name: str
    version: str
    citation: str
    population: str
    smi_cm2_m2: BySex
    myosteatosis_hu: BySex | None = None
    extra_flags: tuple[ExtraFlag, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The results.csv columns this set fills, in order."""
        cols = [f"sarcopenia_{self.name}"]
        if self.myosteatosis_hu is not None:
            cols.append(f"myosteatosis_{self.name}")
        cols += [f"{flag.column}_{self.name}" for flag in self.extra_flags]
        return tuple(cols)

    def describe(self) -> dict[str, str]:
        """Name, version and citation, for provenance records."""
        return {"name": self.name, "version": self.version, "citation": self.citation}

    def evaluate(
        self,
        smi: float | None,
        sex: str | None,
        bmi: float | None = None,
        muscle_mean_hu: float | None = None,
        muscle_area_cm2: float | None = None,
    ) -> CutoffResult:
        """Judge one case.

        Args:
            smi: skeletal muscle index in cm^2/m^2 (None when height is missing).
            sex: "M" / "F" (or a word that :func:`normalize_sex` understands).
            bmi: body-mass index in kg/m^2 (needed where a threshold depends on BMI).
            muscle_mean_hu: mean HU of the muscle pixels (SMRA), for myosteatosis / SMRA flags.
            muscle_area_cm2: L3 skeletal muscle area, for SMA flags.

        Returns:
            A :class:`CutoffResult`; each verdict is None with a reason when it cannot be made.
        """
        sex_n, sex_problem = _sex_or_problem(sex)
        reasons: list[str] = []

        def judge(
            label: str, thresholds: BySex, value: float | None, missing: str, what: str, unit: str
        ) -> bool | None:  # one verdict (None when it cannot be made); its reason goes to reasons
            if sex_problem or sex_n is None:
                reasons.append(f"{label}: {sex_problem}")
                return None
            if value is None or _missing(value):
                reasons.append(f"{label}: {missing}")
                return None
            verdict, why = self._compare(thresholds.for_sex(sex_n), value, bmi, what, unit)
            reasons.append(f"{label}: {why}")
            return verdict

        sarcopenic = judge("sarcopenia", self.smi_cm2_m2, smi, "no SMI (height missing)", "SMI", "cm2/m2")
        myosteatosis = None
        if self.myosteatosis_hu is not None:
            myosteatosis = judge(
                "myosteatosis",
                self.myosteatosis_hu,
                muscle_mean_hu,
                "muscle mean HU missing",
                "muscle HU",
                "HU",
            )
        values = {"muscle_area_cm2": muscle_area_cm2, "muscle_mean_hu": muscle_mean_hu}
        flags = {
            f"{flag.column}_{self.name}": judge(
                flag.column,
                flag.thresholds,
                values[flag.quantity],
                f"{flag.quantity} missing",
                flag.quantity,
                flag.unit,
            )
            for flag in self.extra_flags
        }
        return CutoffResult(sarcopenic, myosteatosis, "; ".join(reasons), flags)

    @staticmethod
    def _compare(
        threshold: Threshold, value: float, bmi: float | None, what: str, unit: str
    ) -> tuple[bool | None, str]:
        """``value < threshold`` (resolving a BMI split first), with the comparison spelled out."""
        bmi_note = ""
        if isinstance(threshold, BmiSplit):
            if _missing(bmi):
                return None, "BMI missing (threshold depends on BMI: need weight and height)"
            assert bmi is not None
            side = "<" if bmi < threshold.bmi_kg_m2 else ">="
            bmi_note = f" (BMI {bmi:.1f} {side} {threshold.bmi_kg_m2:g})"
            threshold = threshold.pick(bmi)
        low = value < threshold
        return low, f"{what} {value:.2f} {'<' if low else '>='} {threshold:g} {unit}{bmi_note}"


PRADO2008 = CutoffSet(
    name="prado2008",
    version="1",
    citation="Prado CMM et al. Lancet Oncol 2008;9(7):629-635",
    population="obese patients with solid tumours of the respiratory and gastrointestinal tracts",
    smi_cm2_m2=BySex(men=52.4, women=38.5),
)

MARTIN2013 = CutoffSet(
    name="martin2013",
    version="1",
    citation="Martin L et al. J Clin Oncol 2013;31(12):1539-1547",
    population="patients with lung or gastrointestinal cancer",
    smi_cm2_m2=BySex(men=BmiSplit(lean=43.0, heavy=53.0), women=41.0),
    myosteatosis_hu=BySex(men=BmiSplit(lean=41.0, heavy=33.0), women=BmiSplit(lean=41.0, heavy=33.0)),
)

DERSTINE2018 = CutoffSet(
    name="derstine2018",
    version="1",
    citation="Derstine BA et al. Sci Rep 2018;8:11369",
    population="healthy US adults (kidney donors); thresholds are mean - 2 SD",
    smi_cm2_m2=BySex(men=45.4, women=34.4),
    extra_flags=(
        ExtraFlag("low_sma", "muscle_area_cm2", "cm2", BySex(men=144.3, women=92.2)),
        ExtraFlag("low_smra", "muscle_mean_hu", "HU", BySex(men=38.5, women=34.3)),
    ),
)

CUTOFF_SETS: dict[str, CutoffSet] = {s.name: s for s in (PRADO2008, MARTIN2013, DERSTINE2018)}
"""Registry of the shipped cut-off sets, by name (in report column order)."""


def get_cutoff_sets(names: str | Sequence[str]) -> list[CutoffSet]:
    """Look up cut-off sets by name.

    Args:
        names: a name, a comma-separated string ("prado2008,martin2013"), a list of names, or
            "all" for every registered set. Case and surrounding spaces are ignored; duplicates
            are dropped, order is kept.

    Raises:
        ValueError: one line naming the unknown set and listing the valid names.
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    wanted: list[str] = []
    for item in items:
        key = item.strip().lower()
        if not key:
            continue
        for name in CUTOFF_SETS if key == "all" else [key]:
            if name not in CUTOFF_SETS:
                valid = ", ".join([*CUTOFF_SETS, "all"])
                raise ValueError(f"unknown cut-off set {item.strip()!r}: valid names are {valid}")
            if name not in wanted:
                wanted.append(name)
    return [CUTOFF_SETS[name] for name in wanted]
