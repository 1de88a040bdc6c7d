"""The gates a case passes around its measurement, and the row's ``quality`` column.

    ingest quality gate (io.quality, in load_case) -> anatomy gate (io.anatomy: refuse a head,
    thorax, legs, a body without fat; warn when L3 cannot be confirmed) -> network -> readout ->
    plausibility gate (readout.plausibility: implausible -> error row, borderline -> warning)

``quality`` is ``ok`` or ``warning: <reason>; <reason>`` for a measured case, empty for an
error row (its ``error`` says why). Every reason names the tag or measurement behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lsmseg.clinical.results import STATUS_ERROR, STATUS_OK
from lsmseg.io import CTSlice
from lsmseg.io.anatomy import check_anatomy
from lsmseg.readout.plausibility import check_plausibility

QUALITY_OK = "ok"


def gate_before(ct: CTSlice) -> None:
    """The anatomy gate: raises :class:`lsmseg.io.IngestError` for a slice that is not an
    abdomen; adds the level warnings to ``ct.warnings``."""
    ct.warnings.extend(check_anatomy(ct))


def quality_text(warnings: Sequence[str]) -> str:
    """``ok``, or ``warning: `` and the reasons joined by ``; ``."""
    return QUALITY_OK if not warnings else "warning: " + "; ".join(warnings)


def gate_after(row: dict[str, Any], ct: CTSlice, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Apply the plausibility gate to a measured row and set its ``quality`` column (in place).

    Args:
        row: the case's results row (status ok); it becomes an error row when a measurement
            cannot come from an adult L3 CT slice.
        ct: the slice (its spacing and its ingest / anatomy warnings).
        extra: further warnings (e.g. the out-of-distribution score).
    """
    if row.get("status") != STATUS_OK:
        row.setdefault("quality", None)
        return row
    found = check_plausibility(row, ct.spacing_mm)
    if found.errors:
        row.update(
            status=STATUS_ERROR,
            error="implausible measurement: "
            + "; ".join(found.errors)
            + " (check PixelSpacing and the overlay)",
            quality=None,
        )
        return row
    row["quality"] = quality_text([*ct.warnings, *found.warnings, *extra])
    return row
