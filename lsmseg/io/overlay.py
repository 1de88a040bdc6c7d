"""The quality-control picture of a case: windowed CT, tissues in colour, the key numbers."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lsmseg.io.atomic import atomic_write
from lsmseg.io.ctslice import CTSlice
from lsmseg.keys import Tissue

PathLike = str | os.PathLike[str]

# Display colours (RGB 0..1), the Slice-O-Matic convention: muscle red, IMAT green, VAT yellow,
# SAT cyan.
TISSUE_COLOURS: dict[str, tuple[float, float, float]] = {
    "muscle": (0.90, 0.10, 0.10),
    "imat": (0.10, 0.80, 0.10),
    "vat": (1.00, 0.85, 0.00),
    "sat": (0.00, 0.80, 0.90),
}
OVERLAY_HU_WINDOW = (-250.0, 250.0)  # soft-tissue window, HU


def _format_value(value: Any, fmt: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    try:
        return f"{float(value):{fmt}}{unit}"
    except (TypeError, ValueError):
        return str(value)


def _layers(labels: np.ndarray, imat: np.ndarray | None) -> dict[str, np.ndarray]:
    """(H, W) bool pixels per drawn tissue, IMAT last so it lies over the muscle colour."""
    layers = {
        "sat": labels == Tissue.SAT,
        "vat": labels == Tissue.VAT,
        "muscle": labels == Tissue.MUSCLE,
    }
    if imat is not None:
        imat = np.asarray(imat, dtype=bool)
        if imat.shape != labels.shape:
            raise ValueError(f"IMAT mask shape {imat.shape} does not match the CT slice {labels.shape}")
        layers["imat"] = imat
    return layers


def _rgba(layers: Mapping[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 4) float32 RGBA overlay: each tissue in its colour at 45 % opacity."""
    overlay = np.zeros((*shape, 4), dtype=np.float32)
    for name, pixels in layers.items():
        overlay[pixels, :3] = TISSUE_COLOURS[name]
        overlay[pixels, 3] = 0.45
    return overlay


def _caption(measurements: Mapping[str, Any] | None, case_id: str) -> str:
    """The text box: case id, muscle area, SMI, muscle HU, IMAT, SAT, VAT (missing: "n/a")."""
    m = dict(measurements or {})
    lines = [
        str(m.get("case_id", case_id)),
        f"Muscle {_format_value(m.get('muscle_area_cm2'), '.1f', ' cm²')}",
        f"SMI {_format_value(m.get('smi_cm2_m2'), '.1f', ' cm²/m²')}",
        f"Muscle HU {_format_value(m.get('muscle_mean_hu'), '.1f')}",
        f"IMAT {_format_value(m.get('imat_area_cm2'), '.1f', ' cm²')}",
        f"SAT {_format_value(m.get('sat_area_cm2'), '.1f', ' cm²')}",
        f"VAT {_format_value(m.get('vat_area_cm2'), '.1f', ' cm²')}",
    ]
    if m.get("vat_hu_range"):
        lines.append(f"VAT HU {m['vat_hu_range']}")
    return "\n".join(lines)


def _render(
    ct: CTSlice,
    layers: Mapping[str, np.ndarray],
    caption: str,
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
    ax.imshow(_rgba(layers, (height_px, width_px)), aspect=aspect, interpolation="nearest")
    names = {"muscle": "Muscle", "imat": "IMAT", "sat": "SAT", "vat": "VAT"}
    handles = [Patch(color=TISSUE_COLOURS[k], alpha=0.8, label=names[k]) for k in names if k in layers]
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.6)
    box = {"facecolor": "black", "alpha": 0.6, "edgecolor": "none"}
    ax.text(0.02, 0.02, caption, transform=ax.transAxes, fontsize=8, color="white", va="bottom", ha="left",
            family="monospace", bbox=box)  # fmt: skip
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]  # drop alpha: smaller file


def write_overlay_png(
    ct: CTSlice,
    mask: np.ndarray,
    path: PathLike,
    measurements: Mapping[str, Any] | None = None,
    *,
    imat: np.ndarray | None = None,
    hu_window: tuple[float, float] = OVERLAY_HU_WINDOW,
    max_side_px: int = 640,
) -> Path:
    """Write a quality-control picture: windowed CT with the tissues in colour and the key numbers.

    The CT is shown in a soft-tissue window (-250..250 HU) with semi-transparent SAT, VAT and
    muscle (and IMAT where ``imat`` is given, e.g. ``tissue_pixels(...).imat``), a legend, and a
    text box with muscle area (cm^2), SMI (cm^2/m^2), muscle mean HU, IMAT, SAT and VAT (cm^2)
    taken from ``measurements`` (a results row; missing values read "n/a"). Pixels are drawn
    with their physical aspect ratio; the longer side is ``max_side_px`` pixels; saved as RGB PNG.

    Args:
        ct: the slice; ``ct.hu`` is (H, W) HU in radiological display orientation.
        mask: (H, W) Tissue labels on the same grid.
        path: output ``.png`` file.
        measurements: results-row keys such as muscle_area_cm2, smi_cm2_m2, muscle_mean_hu,
            imat_area_cm2, sat_area_cm2, vat_area_cm2.
        imat: optional (H, W) boolean IMAT pixels, drawn over the muscle colour.
    """
    from PIL import Image

    layers = _layers(ct.label_mask(mask), imat)
    rgb = _render(ct, layers, _caption(measurements, ct.case_id), hu_window, max_side_px)
    with atomic_write(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", optimize=True)
    return Path(path)
