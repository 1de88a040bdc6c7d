"""Shared helpers for the data-layer tests: reading the files a cohort writes, and the Alberta
readout written out independently of the phantom generator."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from lsmseg.keys import Tissue


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def alberta_areas(hu: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]) -> dict[str, float]:
    """Areas (cm^2) of an (H, W) HU slice and its 4-class mask by the Alberta HU thresholds:
    muscle -29..150, IMAT and SAT -190..-30, VAT -150..-50."""
    pixel_cm2 = spacing[0] * spacing[1] / 100.0
    compartment = mask == Tissue.MUSCLE
    return {
        "muscle_area_cm2": np.count_nonzero(compartment & (hu >= -29) & (hu <= 150)) * pixel_cm2,
        "imat_area_cm2": np.count_nonzero(compartment & (hu >= -190) & (hu <= -30)) * pixel_cm2,
        "sat_area_cm2": np.count_nonzero((mask == Tissue.SAT) & (hu >= -190) & (hu <= -30)) * pixel_cm2,
        "vat_area_cm2": np.count_nonzero((mask == Tissue.VAT) & (hu >= -150) & (hu <= -50)) * pixel_cm2,
    }
