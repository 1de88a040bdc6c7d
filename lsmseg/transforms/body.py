"""Body crop: find the patient's body on an axial CT slice and cut a square around it.

The networks see the body, not the air, the table and the field-of-view circle around it (the SSS
data set was prepared with "the image's background cropped"). :class:`BodyCropd` is a MONAI
``CropForegroundd`` whose box is that square: the crop is recorded in the MetaTensor's
``applied_operations``, so ``Invertd`` pads a prediction back onto the native grid after batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import CropForeground, CropForegroundd

from lsmseg.io.body import BODY_THRESHOLD_HU, TABLE_OPENING_RADIUS_PX, body_mask

CROP_MARGIN_PX = 8


@dataclass(frozen=True)
class CropBox:
    """A crop window ``[row0:row1, col0:col1]`` (half-open, pixels) of a ``native_shape`` image."""

    row0: int
    row1: int
    col0: int
    col1: int
    native_shape: tuple[int, int]  # (H, W) of the image the box was cut from

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w) of the cropped image."""
        return (self.row1 - self.row0, self.col1 - self.col0)


def _square_span(lo: int, hi: int, side: int, n: int) -> tuple[int, int]:
    """A span of ``side`` pixels centred on ``[lo, hi)``, shifted (not shrunk) to fit ``[0, n)``."""
    if side >= n:
        return 0, n
    start = round((lo + hi - side) / 2)
    start = min(max(start, 0), n - side)
    return start, start + side


def body_crop_box(
    hu: np.ndarray,
    margin_px: int = CROP_MARGIN_PX,
    threshold_hu: float = BODY_THRESHOLD_HU,
    opening_radius_px: int = TABLE_OPENING_RADIUS_PX,
) -> CropBox:
    """Square box around the body with a margin, inside the image.

    The square is shifted to stay inside the image and only clipped (so no longer square) when
    the body with its margin is larger than the image. Without a body the box is the whole image.

    Args:
        hu: (H, W) Hounsfield units.
        margin_px: pixels added on each side of the body's bounding box.
        threshold_hu, opening_radius_px: passed to :func:`body_mask`.
    """
    hu = np.asarray(hu)
    height, width = hu.shape
    mask = body_mask(hu, threshold_hu, opening_radius_px)
    if not mask.any():
        return CropBox(0, height, 0, width, (height, width))
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    side = max(r1 - r0, c1 - c0) + 2 * margin_px
    row0, row1 = _square_span(r0, r1, side, height)
    col0, col1 = _square_span(c0, c1, side, width)
    return CropBox(row0, row1, col0, col1, (height, width))


def crop(array: NdarrayOrTensor, box: CropBox) -> NdarrayOrTensor:
    """Cut ``box`` out of an (..., H, W) array or tensor; returns (..., h, w)."""
    if tuple(array.shape[-2:]) != box.native_shape:
        raise ValueError(f"array of shape {tuple(array.shape)} does not match the crop box {box}")
    return array[..., box.row0 : box.row1, box.col0 : box.col1]


class BodyCropForeground(CropForeground):
    """MONAI ``CropForeground`` whose box is :func:`body_crop_box` of the first channel (HU).

    Raw HU cannot be cropped with MONAI's default ``> 0`` foreground (fat is negative): the body
    mask (:func:`body_mask`) selects the foreground and the box is squared around it, so the
    network sees the body undistorted after resizing. The inverse (pad back) is MONAI's.
    """

    def __init__(
        self,
        margin_px: int = CROP_MARGIN_PX,
        threshold_hu: float = BODY_THRESHOLD_HU,
        opening_radius_px: int = TABLE_OPENING_RADIUS_PX,
    ) -> None:
        # the foreground is the body (fat is negative HU: MONAI's default "> 0" would cut it off);
        # compute_bounding_box squares the box around it
        super().__init__(select_fn=body_mask, allow_smaller=True)
        self.margin_px = int(margin_px)
        self.threshold_hu = float(threshold_hu)
        self.opening_radius_px = int(opening_radius_px)

    def crop_box(self, hu: NdarrayOrTensor) -> CropBox:
        """The crop box of a (C, H, W) HU image, found on its first channel."""
        plane = hu.detach().cpu().numpy() if isinstance(hu, torch.Tensor) else np.asarray(hu)
        plane = plane.reshape(-1, *plane.shape[-2:])[0]
        return body_crop_box(plane, self.margin_px, self.threshold_hu, self.opening_radius_px)

    def compute_bounding_box(self, img: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of the square body box in (row, col) pixels, half-open."""
        box = self.crop_box(img)
        return np.array([box.row0, box.col0]), np.array([box.row1, box.col1])


class BodyCropd(CropForegroundd):
    """Crop every key to the body square found on ``source_key`` (an HU image, crop before windowing).

    Dictionary version of :class:`BodyCropForeground`; pads back to the native grid on ``inverse``.

    Args:
        keys: keys to crop, (C, H, W) MetaTensors (labels included: they share the image's grid).
        source_key: the HU image the body is found on.
        margin_px: margin around the body's bounding box (native pixels).
        threshold_hu: body threshold (HU), see :func:`body_mask`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str,
        margin_px: int = CROP_MARGIN_PX,
        threshold_hu: float = BODY_THRESHOLD_HU,
        mode: str | Sequence[str] = "constant",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys,
            source_key,
            mode=mode,
            start_coord_key=None,
            end_coord_key=None,
            allow_missing_keys=allow_missing_keys,
        )
        self.cropper = BodyCropForeground(margin_px=margin_px, threshold_hu=threshold_hu)
