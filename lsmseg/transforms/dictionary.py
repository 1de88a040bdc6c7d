"""MONAI-style dictionary wrappers: they pick keys and delegate to the array-level cores.

Each forward call records what its inverse needs under a key of the same dictionary
(``crop_box_key``, ``source_shape_key``); ``inverse(data)`` reads it back. Arrays are
channel-first, (C, H, W), as elsewhere in MONAI.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

from lsmseg.keys import Keys
from lsmseg.transforms.body import BODY_THRESHOLD_HU, CROP_MARGIN_PX, BodyCrop, crop, uncrop
from lsmseg.transforms.intensity import DEFAULT_HU_RANGE, window_hu
from lsmseg.transforms.resize import MODEL_SIZE, resize_image, resize_labels

CROP_BOX_KEY = "crop_box"  # CropBox of BodyCropd
SOURCE_SHAPE_KEY = "source_shape"  # (h, w) before ResizeToModeld
RESIZE_KINDS = ("image", "label")


class BodyCropd(MapTransform):
    """Crop every key to the body square found on ``source_key`` (an HU image).

    Args:
        keys: keys to crop, (C, H, W).
        source_key: the HU image the body is found on; crop before windowing.
        fill: value per key (or one for all) that ``inverse`` pads with, e.g. -1000 HU for an
            HU image, 0 for labels.
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str = Keys.IMAGE,
        margin_px: int = CROP_MARGIN_PX,
        threshold_hu: float = BODY_THRESHOLD_HU,
        fill: float | Sequence[float] = 0.0,
        crop_box_key: str = CROP_BOX_KEY,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key
        self.cropper = BodyCrop(margin_px=margin_px, threshold_hu=threshold_hu)
        self.fill = [float(f) for f in fill] if isinstance(fill, Sequence) else [float(fill)] * len(self.keys)
        if len(self.fill) != len(self.keys):
            raise ValueError(f"fill has {len(self.fill)} values for {len(self.keys)} keys")
        self.crop_box_key = crop_box_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        box = self.cropper.box(d[self.source_key])
        d[self.crop_box_key] = box
        for key in self.key_iterator(d):
            d[key] = crop(d[key], box)
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Pad every key back onto the native grid recorded under ``crop_box_key``."""
        d = dict(data)
        box = d[self.crop_box_key]
        for key, fill in self.key_iterator(d, self.fill):
            d[key] = uncrop(d[key], box, fill)
        return d


class WindowHUd(MapTransform):
    """Map HU to [0, 1] through ``hu_range`` (HU) for every key; not invertible (it clips)."""

    def __init__(
        self,
        keys: KeysCollection,
        hu_range: tuple[float, float] = DEFAULT_HU_RANGE,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.hu_range = hu_range

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = window_hu(d[key], self.hu_range)
        return d


class ResizeToModeld(MapTransform):
    """Resize every key to (size, size); ``kind`` per key: "image" (area/bilinear) or "label".

    The (h, w) before resizing is recorded under ``source_shape_key`` (from the first key).
    """

    def __init__(
        self,
        keys: KeysCollection,
        size: int = MODEL_SIZE,
        kind: str | Sequence[str] = "image",
        source_shape_key: str = SOURCE_SHAPE_KEY,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.size = int(size)
        self.kinds = [kind] * len(self.keys) if isinstance(kind, str) else list(kind)
        unknown = sorted(set(self.kinds) - set(RESIZE_KINDS))
        if unknown or len(self.kinds) != len(self.keys):
            raise ValueError(f"kind must be one of {RESIZE_KINDS} per key, got {kind!r} for {self.keys}")
        self.source_shape_key = source_shape_key

    @staticmethod
    def _resize(array: Any, shape: tuple[int, int], kind: str) -> Any:
        return resize_labels(array, shape) if kind == "label" else resize_image(array, shape)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        shapes = {(int(d[key].shape[-2]), int(d[key].shape[-1])) for key in self.key_iterator(d)}
        if len(shapes) > 1:  # one recorded shape must invert every key
            raise ValueError(f"keys {self.keys} have different (H, W): {sorted(shapes)}")
        if shapes:
            d[self.source_shape_key] = shapes.pop()
        for key, kind in self.key_iterator(d, self.kinds):
            d[key] = self._resize(d[key], (self.size, self.size), kind)
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Resize every key back to the (h, w) recorded under ``source_shape_key``."""
        d = dict(data)
        shape = tuple(d[self.source_shape_key])
        for key, kind in self.key_iterator(d, self.kinds):
            d[key] = self._resize(d[key], (int(shape[0]), int(shape[1])), kind)
        return d
