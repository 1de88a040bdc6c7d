"""Body crop: the body mask, its square box, and the MONAI crop that pads back exactly."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor

from lsmseg.transforms import BodyCropd, CropBox, body_crop_box, body_mask, crop_box_of
from tests.helpers.bundles import synthetic_l3


def test_body_mask_drops_the_table_and_fills_holes() -> None:
    hu, mask = synthetic_l3()
    hu[250:260, 250:260] = -1000.0  # bowel gas inside the body
    body = body_mask(hu)
    assert body[250:260, 250:260].all()
    assert not body[395:398, :200].any() and not body[395:398, 330:].any()  # the table, off the body
    # only where the table touches the back can a few of its pixels pass for skin
    extra = body & (mask == 0)
    assert extra.sum() < 300 and np.all(np.argwhere(extra)[:, 0] >= 394)
    assert not (mask > 0)[~body].any()


def test_crop_box_is_square_with_margin_inside_the_image() -> None:
    hu, mask = synthetic_l3()
    box = body_crop_box(hu, margin_px=8)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    assert box.shape[0] == box.shape[1] == (cols[-1] - cols[0] + 1) + 16  # the wider side sets it
    assert box.row0 <= rows[0] and box.row1 > rows[-1] and box.col0 == cols[0] - 8
    # near the edge the square is shifted, not shrunk; larger than the image, it is clipped
    shifted = body_crop_box(np.roll(hu, 38, axis=1))
    assert shifted.shape == box.shape and shifted.col1 == 512
    assert body_crop_box(np.full((40, 60), 40.0)) == CropBox(0, 40, 0, 60, (40, 60))
    assert body_crop_box(np.full((40, 60), -1000.0)) == CropBox(0, 40, 0, 60, (40, 60))


def test_body_cropd_crops_every_key_to_the_square_and_pads_back_exactly() -> None:
    hu, mask = synthetic_l3((300, 420))
    crop = BodyCropd(["image", "label"], source_key="image")
    data = crop(
        {"image": MetaTensor(torch.as_tensor(hu)[None]), "label": MetaTensor(torch.as_tensor(mask)[None])}
    )
    box = body_crop_box(hu)
    assert crop_box_of(data["image"]) == box and tuple(data["label"].shape) == (1, *box.shape)
    window = (slice(box.row0, box.row1), slice(box.col0, box.col1))
    np.testing.assert_array_equal(data["image"][0].numpy(), hu[window])  # raw HU, not cut at > 0
    back = crop.inverse(data)
    assert tuple(back["label"].shape) == (1, 300, 420)
    np.testing.assert_array_equal(back["label"][0].numpy()[window], mask[window])
    outside = np.ones(mask.shape, bool)
    outside[window] = False
    assert not back["label"][0].numpy()[outside].any()  # padded with 0 (background)
