"""A clinician's one-page check of a case: the CT, the measured compartments, the numbers.

The picture shows exactly what was measured (the measured mask, :mod:`lsmseg.io.labels`
colours), the areas, muscle HU, sex, height, SMI and the cut-off verdicts of the results row,
the model with its validation figure, and a research-use note.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lsmseg.io.atomic import atomic_write
from lsmseg.io.ctslice import CTSlice
from lsmseg.io.labels import LABELS

PathLike = str | os.PathLike[str]

# Display colours (RGB 0..1) by label key, from the label table (kept for older imports).
TISSUE_COLOURS: dict[str, tuple[float, float, float]] = {label.key: label.rgb for label in LABELS}
OVERLAY_HU_WINDOW = (-250.0, 250.0)  # soft-tissue window, HU
RESEARCH_NOTE = "Research use only - not for diagnosis. Check the contours before using the numbers."
TEXT_WIDTH = 90  # characters per line of a long quality or caveat text (about 450 px at 6-7 pt)


def _format_value(value: Any, fmt: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    try:
        return f"{float(value):{fmt}}{unit}"
    except (TypeError, ValueError):
        return str(value)


def _colour_table() -> np.ndarray:
    """(256, 4) float32 RGBA per uint8 label: the label colours at 45 % opacity, else clear."""
    table = np.zeros((256, 4), dtype=np.float32)
    for label in LABELS:
        table[label.value, :3] = label.rgb
        table[label.value, 3] = 0.45
    return table


_COLOURS = _colour_table()


def _rgba(labels: np.ndarray) -> np.ndarray:
    """(H, W, 4) float32 RGBA overlay of (H, W) uint8 labels: each label in its colour at 45 %
    opacity (one table look-up instead of a mask per label: 2 instead of 12 ms for 512x512)."""
    return _COLOURS[labels]


def _verdicts(m: Mapping[str, Any]) -> list[str]:
    """One line per cut-off column of the row: ``sarcopenia prado2008: yes``."""
    lines = []
    for key, value in m.items():
        for kind in ("sarcopenia", "myosteatosis"):
            if key.startswith(f"{kind}_"):
                verdict = (
                    "n/a"
                    if value is None
                    else ("yes" if value is True else "no" if value is False else value)
                )
                lines.append(f"{kind} {key[len(kind) + 1 :]}: {verdict}")
    return lines


def _caption(measurements: Mapping[str, Any] | None, case_id: str) -> str:
    """The text box: case, areas, muscle HU, patient, SMI and verdicts (missing: "n/a")."""
    m = dict(measurements or {})
    height = _format_value(m.get("height_m"), ".2f", " m")
    lines = [
        str(m.get("case_id", case_id)),
        f"Muscle {_format_value(m.get('muscle_area_cm2'), '.2f', ' cm²')}"
        f"  HU {_format_value(m.get('muscle_mean_hu'), '.1f')}",
        f"IMAT {_format_value(m.get('imat_area_cm2'), '.2f', ' cm²')}",
        f"SAT {_format_value(m.get('sat_area_cm2'), '.2f', ' cm²')}",
        f"VAT {_format_value(m.get('vat_area_cm2'), '.2f', ' cm²')} (HU {m.get('vat_hu_range') or 'n/a'})",
        f"Sex {m.get('sex') or 'n/a'}  height {height} ({m.get('height_source') or 'n/a'})",
        f"SMI {_format_value(m.get('smi_cm2_m2'), '.2f', ' cm²/m²')}",
        *_verdicts(m),
        *textwrap.wrap(f"Quality {m.get('quality') or 'n/a'}", TEXT_WIDTH, subsequent_indent="  "),
    ]
    return "\n".join(lines)


def _footer(measurements: Mapping[str, Any] | None) -> str:
    """Model, its validation figure, the model's caveat (row key ``caveat``), the research-use note."""
    m = dict(measurements or {})
    model = m.get("model") or "model n/a"
    validation = m.get("model_validation") or "validation n/a"
    caveat = textwrap.wrap(str(m["caveat"]), TEXT_WIDTH) if m.get("caveat") else []
    return "\n".join([f"{model} | {validation}", *caveat, RESEARCH_NOTE])


def _render(
    ct: CTSlice,
    labels: np.ndarray,
    texts: tuple[str, str],
    hu_window: tuple[float, float],
    max_side_px: int,
) -> np.ndarray:
    """(h, w, 3) uint8 picture drawn with matplotlib's Agg canvas (no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    height_px, width_px = ct.hu.shape
    row_mm, col_mm = (float(s) for s in ct.spacing_mm)
    extent_h, extent_w = height_px * row_mm, width_px * col_mm
    scale = max_side_px / max(extent_h, extent_w)
    fig = Figure(figsize=(extent_w * scale / 100, extent_h * scale / 100), dpi=100, facecolor="black")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    aspect = row_mm / col_mm  # pixels drawn with their physical aspect ratio
    ax.imshow(
        ct.hu, cmap="gray", vmin=hu_window[0], vmax=hu_window[1], aspect=aspect, interpolation="nearest"
    )
    ax.imshow(_rgba(labels), aspect=aspect, interpolation="nearest")
    handles = [
        Patch(color=lb.rgb, alpha=0.8, label=lb.key.upper()) for lb in LABELS if np.any(labels == lb.value)
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.6)
    box = {"facecolor": "black", "alpha": 0.6, "edgecolor": "none"}
    ax.text(0.01, 0.99, texts[0], transform=ax.transAxes, fontsize=7, color="white", va="top", ha="left",
            family="monospace", bbox=box)  # fmt: skip
    ax.text(0.01, 0.01, texts[1], transform=ax.transAxes, fontsize=6, color="yellow", va="bottom", ha="left",
            bbox=box)  # fmt: skip
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]  # drop alpha: smaller file


def write_overlay_png(
    ct: CTSlice,
    mask: np.ndarray,
    path: PathLike,
    measurements: Mapping[str, Any] | None = None,
    *,
    hu_window: tuple[float, float] = OVERLAY_HU_WINDOW,
    max_side_px: int = 640,
) -> Path:
    """Write a clinician's check picture: windowed CT, measured compartments in colour, numbers.

    The CT is shown in a soft-tissue window (-250..250 HU) with the labels of ``mask`` filled
    semi-transparently in the label-table colours (muscle red, IMAT green, SAT cyan, VAT yellow)
    and a legend. Top left: case id, areas (cm^2, 0.01), muscle mean HU, VAT HU range, sex,
    height and its source, SMI (cm^2/m^2), every ``sarcopenia_*`` / ``myosteatosis_*`` verdict
    and the ``quality`` (ok / warning: ...) of ``measurements`` (a results row; missing values
    read "n/a"). Bottom: the model (row key ``model``), its validation figure
    (``model_validation``), its research-use caveat (``caveat``, when it has one) and the
    research-use note.
    Pixels keep their physical aspect ratio; the longer side is ``max_side_px``; RGB PNG.

    Args:
        ct: the slice; ``ct.hu`` is (H, W) HU in radiological display orientation.
        mask: (H, W) measured labels (:class:`lsmseg.keys.Measured`) on the same grid.
        path: output ``.png`` file.
        measurements: the case's results row.
    """
    from PIL import Image

    labels = ct.label_mask(mask)
    texts = (_caption(measurements, ct.case_id), _footer(measurements))
    rgb = _render(ct, labels, texts, hu_window, max_side_px)
    with atomic_write(path) as tmp:
        # zlib level 3: a file as small as optimize=True gives (the overlay is mostly flat colour and
        # CT noise) for an eighth of the CPU time (23 vs 184 ms for 640x640)
        Image.fromarray(rgb).save(tmp, format="PNG", compress_level=3)
    return Path(path)
