"""Resize between the crop and the network's square input, and back.

Images shrink with area averaging (no aliasing of the fine fat/muscle texture) and grow
bilinearly; label maps use centred nearest neighbour ("nearest-exact", not PyTorch's shifted
"nearest"). Predictions are best mapped back as class probabilities or logits, bilinearly, then
arg-maxed on the target grid: that places class boundaries between pixels of the small grid instead
of snapping them to its blocky staircase.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import Resize
from monai.utils import convert_to_dst_type, convert_to_tensor

MODEL_SIZE = 128  # (S, S) input of the SSS networks


def _resize(array: NdarrayOrTensor, shape: tuple[int, int], mode: str) -> NdarrayOrTensor:
    """Resize an (H, W) or (C, H, W) array to ``shape`` (h, w); same array type and dtype."""
    channel_first = array if array.ndim == 3 else array[None]
    if channel_first.ndim != 3:
        raise ValueError(f"expected an (H, W) or (C, H, W) array, got shape {tuple(array.shape)}")
    if tuple(channel_first.shape[-2:]) == tuple(shape):
        out = channel_first
    else:
        # MONAI's Resize interpolates in float and returns a MetaTensor; give back what came in
        resized = Resize(spatial_size=shape, mode=mode)(convert_to_tensor(channel_first, track_meta=False))
        out = convert_to_dst_type(resized, channel_first, dtype=channel_first.dtype)[0]
    return out if array.ndim == 3 else out[0]


def resize_image(image: NdarrayOrTensor, shape: tuple[int, int]) -> NdarrayOrTensor:
    """Resize an (H, W) or (C, H, W) image: area averaging when shrinking, bilinear otherwise."""
    shrinking = all(new <= old for new, old in zip(shape, image.shape[-2:], strict=True))
    return _resize(image, shape, "area" if shrinking else "bilinear")


def resize_labels(labels: NdarrayOrTensor, shape: tuple[int, int]) -> NdarrayOrTensor:
    """Resize an (H, W) or (C, H, W) integer label map with centred nearest neighbour."""
    return _resize(labels, shape, "nearest-exact")


def resize_probs(probs: NdarrayOrTensor, shape: tuple[int, int]) -> NdarrayOrTensor:
    """Resize (C, H, W) class probabilities or logits bilinearly (float32 out)."""
    if isinstance(probs, torch.Tensor):
        probs = probs.float()
    else:
        probs = np.asarray(probs, dtype=np.float32)
    return _resize(probs, shape, "bilinear")


def labels_from_probs(probs: NdarrayOrTensor, shape: tuple[int, int]) -> np.ndarray:
    """(C, h, w) probabilities or logits -> (H, W) uint8 label map on a grid of ``shape``.

    Interpolates each class bilinearly, then takes the arg-max, which follows the boundaries more
    closely than nearest neighbour on the arg-maxed small map.
    """
    if probs.ndim != 3 or probs.shape[0] < 2 or probs.shape[0] > 256:
        raise ValueError(f"expected (C, H, W) scores of 2..256 classes, got {tuple(probs.shape)}")
    resized = resize_probs(probs, shape)
    scores = resized.detach().cpu().numpy() if isinstance(resized, torch.Tensor) else resized
    return np.asarray(scores.argmax(axis=0), dtype=np.uint8)


class ResizeToModel:
    """Array transform: resize an (H, W) or (C, H, W) image to (S, S) with inverses back.

    ``__call__`` returns the resized image and the (h, w) shape it came from, which every inverse
    takes.
    """

    def __init__(self, size: int = MODEL_SIZE) -> None:
        self.size = int(size)

    @property
    def shape(self) -> tuple[int, int]:
        """(S, S) network input shape."""
        return (self.size, self.size)

    def __call__(self, image: NdarrayOrTensor) -> tuple[NdarrayOrTensor, tuple[int, int]]:
        source_shape = (int(image.shape[-2]), int(image.shape[-1]))
        return resize_image(image, self.shape), source_shape

    def labels(self, labels: NdarrayOrTensor) -> NdarrayOrTensor:
        """Resize a label map on the source grid to (S, S) (for training pairs)."""
        return resize_labels(labels, self.shape)

    @staticmethod
    def inverse_image(image: NdarrayOrTensor, source_shape: tuple[int, int]) -> NdarrayOrTensor:
        """(C, S, S) or (S, S) image back to ``source_shape`` (h, w)."""
        return resize_image(image, source_shape)

    @staticmethod
    def inverse_labels(labels: NdarrayOrTensor, source_shape: tuple[int, int]) -> NdarrayOrTensor:
        """(S, S) or (1, S, S) label map back to ``source_shape`` with nearest neighbour."""
        return resize_labels(labels, source_shape)

    @staticmethod
    def inverse_probs(probs: NdarrayOrTensor, source_shape: tuple[int, int]) -> np.ndarray:
        """(C, S, S) probabilities or logits back to an (h, w) uint8 label map (bilinear + arg-max)."""
        return labels_from_probs(probs, source_shape)
