"""Overlay PNG: a clinician's one-page check."""

from __future__ import annotations

import numpy as np

from lsmseg.io.labels import LABEL_BY_KEY, rgb255
from lsmseg.io.overlay import RESEARCH_NOTE, _caption, _footer
from lsmseg.io.writers import write_overlay_png
from lsmseg.readout.cutoffs import get_cutoff_sets
from lsmseg.readout.sarcopenia import build_readout, measure
from tests.helpers.writers import ct_small, measured_labels, tissue_mask


def test_overlay_png(tmp_path):
    from PIL import Image

    ct = ct_small()
    mask = measured_labels()
    comp = measure(tissue_mask(), ct.hu, ct.spacing_mm)
    row = build_readout(comp, height_m=1.7, height_source="dicom", sex="F").to_row()
    path = write_overlay_png(ct, mask, tmp_path / "overlay.png", row)
    assert path.exists()
    assert 1_000 < path.stat().st_size < 1_000_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.mode == "RGB"
        assert image.size == (640, 640)
        pixels = np.asarray(image)
    assert pixels.std() > 10  # an image, not a blank canvas
    # each measured label is drawn in its label-table colour (blended 45 % over grey CT)
    for key in ("muscle", "imat", "sat", "vat"):
        colour = np.asarray(rgb255(LABEL_BY_KEY[key]), float)
        close = (
            np.abs(pixels.astype(float) - (0.45 * colour + 0.55 * pixels.mean(-1, keepdims=True))).max(-1)
            < 40
        )
        assert close.any(), key


def test_overlay_texts_show_patient_verdicts_model_and_note():
    row = build_readout(
        measure(tissue_mask(), ct_small().hu, (0.7, 0.7)),
        height_m=1.6,
        height_source="csv",
        sex="M",
        cutoff_sets=get_cutoff_sets("prado2008"),
    ).to_row()
    row.update(
        muscle_area_cm2=12.345678,
        smi_cm2_m2=4.8191,
        model="lsm_sss@1.0",
        model_validation="validation iou 0.731",
    )
    caption = _caption(row, "c1")
    assert "Muscle 12.35 cm²" in caption and "12.3456" not in caption
    assert "Sex M  height 1.60 m (csv)" in caption
    assert "SMI 4.82 cm²/m²" in caption
    assert "sarcopenia prado2008: yes" in caption
    footer = _footer(row)
    assert "lsm_sss@1.0 | validation iou 0.731" in footer and RESEARCH_NOTE in footer


def test_overlay_png_keeps_physical_aspect(tmp_path):
    from PIL import Image

    ct = ct_small()
    ct.spacing_mm = (1.0, 0.5)  # rows twice as far apart as columns
    path = write_overlay_png(ct, tissue_mask(), tmp_path / "o.png", None)
    with Image.open(path) as image:
        width, height = image.size
    assert (width, height) == (320, 640)
