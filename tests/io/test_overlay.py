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


def test_overlay_pixels_blend_label_colours_over_the_window(tmp_path):
    """Known answers of the numpy composition: 0 HU is mid grey (128 of 256 levels over
    -250..250), -1000 HU black, and a muscle pixel is its colour at 45 % over that grey."""
    from PIL import Image

    from lsmseg.io.ctslice import CTSlice
    from lsmseg.keys import Measured

    hu = np.full((64, 64), -1000.0, np.float32)
    hu[:, 32:] = 0.0
    mask = np.zeros((64, 64), np.uint8)
    mask[40:60, 40:60] = Measured.MUSCLE
    ct = CTSlice(hu=hu, spacing_mm=(1.0, 1.0), case_id="c", source="x")
    with Image.open(write_overlay_png(ct, mask, tmp_path / "o.png", None)) as image:
        assert image.size == (640, 640)  # 64 px of 1 mm -> the longer side at 640 px
        pixels = np.asarray(image).astype(int)
    assert (pixels[300, 100] == 0).all()  # -1000 HU: below the window
    assert (pixels[300, 500] == 128).all()  # 0 HU: column 50 of 64, no label
    muscle = np.rint(0.55 * 128 + 0.45 * np.asarray(rgb255(LABEL_BY_KEY["muscle"]), float))
    assert (pixels[500, 500] == muscle).all()  # row 50, column 50: muscle
    assert muscle[0] > muscle[1] + 50  # red-tinted


def test_overlay_draws_texts_and_legend_only_for_labels_present(tmp_path):
    from PIL import Image

    from lsmseg.io.ctslice import CTSlice

    ct = CTSlice(hu=np.full((64, 64), -1000.0, np.float32), spacing_mm=(1.0, 1.0), case_id="c", source="x")
    empty = np.zeros((64, 64), np.uint8)
    with Image.open(write_overlay_png(ct, empty, tmp_path / "o.png", {"model": "m"})) as image:
        pixels = np.asarray(image).astype(int)
    caption, footer, legend = pixels[5:40, 5:120], pixels[600:635, 5:300], pixels[5:40, 560:635]
    assert (caption == 255).all(-1).any()  # white caption text on the shaded box
    footer_yellow = (footer[..., 0] > 150) & (footer[..., 1] > 150) & (footer[..., 2] < 60)
    assert footer_yellow.any()
    assert (legend == 0).all()  # no label present: no legend, the black CT shows
    with Image.open(write_overlay_png(ct, measured_labels((64, 64)), tmp_path / "l.png", None)) as image:
        legend = np.asarray(image).astype(int)[5:40, 560:635]
    assert (legend > 100).all(-1).mean() > 0.3  # the light legend frame
