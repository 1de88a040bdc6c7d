"""The gates around a measurement and the quality column."""

from __future__ import annotations

import pytest

from lsmseg.clinical.gates import gate_after, gate_before
from lsmseg.io import IngestError
from tests.helpers import anatomy


def test_head_is_stopped_before_the_network() -> None:
    with pytest.raises(IngestError, match="a head slice"):
        gate_before(anatomy.head())


def test_quality_column_collects_ingest_anatomy_and_plausibility_warnings() -> None:
    ct = anatomy.l3_phantom(0)
    ct.spacing_mm = (0.8, 0.8)  # a scanner's 512 px grid (the 256 px phantom has coarser pixels)
    ct.warnings.append("lossy compressed pixels (LossyImageCompression 01): HU statistics may be altered")
    gate_before(ct)
    row = gate_after({"status": "ok", "muscle_area_cm2": 35.0}, ct)
    assert row["status"] == "ok"
    assert row["quality"] == (
        "warning: lossy compressed pixels (LossyImageCompression 01): HU statistics may be altered; "
        "skeletal muscle area 35 cm2 is outside 50-300 cm2"
    )
    ct.warnings.clear()
    assert gate_after({"status": "ok", "muscle_area_cm2": 150.0}, ct)["quality"] == "ok"


def test_implausible_measurement_becomes_an_error_row() -> None:
    ct = anatomy.l3_phantom(0)
    ct.spacing_mm = (50.0, 50.0)
    row = gate_after({"status": "ok", "muscle_area_cm2": 600725.0}, ct)
    assert row["status"] == "error" and row["quality"] is None
    assert row["error"].startswith(
        "implausible measurement: pixel spacing (PixelSpacing) 50 mm is outside 0.2-2 mm"
    )
