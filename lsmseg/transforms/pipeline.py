"""The clinical preprocessing in one object: body crop -> HU window -> resize, and the way back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from monai.config import NdarrayOrTensor

from lsmseg.keys import Tissue
from lsmseg.transforms.body import (
    BODY_THRESHOLD_HU,
    CROP_MARGIN_PX,
    BodyCrop,
    CropBox,
    uncrop,
)
from lsmseg.transforms.intensity import DEFAULT_HU_RANGE, window_hu
from lsmseg.transforms.resize import MODEL_SIZE, labels_from_probs, resize_image, resize_labels


@dataclass(frozen=True)
class SliceGeometry:
    """Where the network input came from: the crop box on the native grid and the model size."""

    box: CropBox
    model_size: int

    @property
    def native_shape(self) -> tuple[int, int]:
        """(H, W) of the native slice."""
        return self.box.native_shape

    @property
    def crop_shape(self) -> tuple[int, int]:
        """(h, w) of the crop before resizing."""
        return self.box.shape


class CropWindowResize:
    """Native (H, W) HU slice -> (1, S, S) network input in [0, 1], and predictions back.

    Args:
        model_size: S, side of the square network input (pixels).
        hu_range: HU window mapped to [0, 1].
        margin_px: margin around the body's bounding box (native pixels).
        threshold_hu: body threshold of the crop.
    """

    def __init__(
        self,
        model_size: int = MODEL_SIZE,
        hu_range: tuple[float, float] = DEFAULT_HU_RANGE,
        margin_px: int = CROP_MARGIN_PX,
        threshold_hu: float = BODY_THRESHOLD_HU,
    ) -> None:
        self.model_size = int(model_size)
        self.hu_range = hu_range
        self.body_crop = BodyCrop(margin_px=margin_px, threshold_hu=threshold_hu)

    def forward(self, hu: np.ndarray) -> tuple[np.ndarray, SliceGeometry]:
        """(H, W) HU -> ((1, S, S) float32 in [0, 1], geometry for the inverse)."""
        if hu.ndim != 2:
            raise ValueError(f"expected an (H, W) HU slice, got shape {hu.shape}")
        cropped, box = self.body_crop(np.asarray(hu))
        # window before resizing, so area averaging mixes clipped values as the network sees them
        image = resize_image(window_hu(cropped, self.hu_range), (self.model_size, self.model_size))
        return np.asarray(image, dtype=np.float32)[None], SliceGeometry(box, self.model_size)

    __call__ = forward

    def inverse_mask(self, mask_or_probs: NdarrayOrTensor, geometry: SliceGeometry) -> np.ndarray:
        """Network output on the (S, S) grid -> (H, W) uint8 label map on the native grid.

        Args:
            mask_or_probs: either a label map, (S, S) or (1, S, S), mapped back with nearest
                neighbour; or (C, S, S) class probabilities / logits (C >= 2), interpolated
                bilinearly and arg-maxed on the crop grid (more accurate).
            geometry: what :meth:`forward` returned with the input.

        Returns:
            (H, W) uint8 labels; outside the crop it is background.
        """
        array = mask_or_probs.detach().cpu() if isinstance(mask_or_probs, torch.Tensor) else mask_or_probs
        scores = np.asarray(array)
        if scores.ndim == 3 and scores.shape[0] > 1:
            labels = labels_from_probs(scores, geometry.crop_shape)
        else:
            plane = scores.reshape(scores.shape[-2:])
            labels = np.asarray(resize_labels(plane.astype(np.uint8), geometry.crop_shape))
        return np.asarray(uncrop(labels, geometry.box, fill=Tissue.BACKGROUND), dtype=np.uint8)
