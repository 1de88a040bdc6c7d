"""The one preprocessing chain: native HU slice -> (1, S, S) network input, and the way back.

``ct_chain`` builds a MONAI ``Compose`` of dictionary transforms on MetaTensors:

1. :class:`~lsmseg.transforms.body.BodyCropd`: square body crop (a MONAI ``CropForegroundd``),
2. ``ScaleIntensityRanged``: the HU window ``hu_range`` mapped to [0, 1], clipped,
3. ``Resized``: (S, S); images bilinear with anti-aliasing (the Gaussian pre-filter keeps the
   fine fat/muscle texture from aliasing when shrinking), labels with centred nearest neighbour.

Crop and resize are recorded in each MetaTensor's ``applied_operations``, which survive batching
and decollation, so MONAI's ``Invertd`` (or :meth:`CropWindowResize.inverse_mask`) maps (C, S, S)
class scores back onto the native grid: resized bilinearly, padded with zeros (background wins
the arg-max there), then arg-maxed. Bundle JSON writes the same chain out as a visible Compose.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Compose, Resize, Resized, ScaleIntensityRanged
from monai.transforms.utils import convert_applied_interp_mode
from monai.utils import TraceKeys

from lsmseg.keys import Keys
from lsmseg.transforms.body import BODY_THRESHOLD_HU, CROP_MARGIN_PX, BodyCropd, CropBox

MODEL_SIZE = 128  # (S, S) input of the SSS networks
# Fat (-190..-30 HU) and muscle (-29..+150 HU) of the Alberta protocol both fall inside, with
# room for the partial-volume pixels at their edges; bone and air saturate, which the task ignores.
DEFAULT_HU_RANGE = (-250.0, 250.0)
IMAGE_MODE, LABEL_MODE = "bilinear", "nearest-exact"


def ct_chain(
    image_size: int = MODEL_SIZE,
    hu_range: Sequence[float] = DEFAULT_HU_RANGE,
    label_key: str | None = None,
    image_key: str = Keys.IMAGE,
    margin_px: int = CROP_MARGIN_PX,
    threshold_hu: float = BODY_THRESHOLD_HU,
) -> Compose:
    """The invertible chain body crop -> HU window -> resize, on (1, H, W) MetaTensors.

    Args:
        image_size: S, side of the square network input (pixels).
        hu_range: [min, max] HU mapped to [0, 1] (clipped outside).
        label_key: a label map on the image's grid cropped and resized with it (training pairs).
        image_key: the HU image; the body is found on it.
        margin_px: margin around the body's bounding box (native pixels).
        threshold_hu: body threshold (HU).

    Returns:
        ``Compose``; ``chain({image_key: (1, H, W) HU})[image_key]`` is (1, S, S) float32 in [0, 1].
    """
    low, high = float(hu_range[0]), float(hu_range[1])
    if not high > low:
        raise ValueError(f"hu_range must be an increasing [min, max] in HU, got {list(hu_range)}")
    keys = [image_key] + ([label_key] if label_key else [])
    modes = [IMAGE_MODE, LABEL_MODE][: len(keys)]
    return Compose(
        [
            BodyCropd(keys, source_key=image_key, margin_px=margin_px, threshold_hu=threshold_hu),
            ScaleIntensityRanged(image_key, a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True),
            Resized(
                keys,
                spatial_size=(int(image_size), int(image_size)),
                mode=modes,
                anti_aliasing=[m == IMAGE_MODE for m in modes],
            ),
        ]
    )


def _settings(obj: Any, depth: int = 0) -> Any:
    """JSON-able settings of a transform: its class and public attributes, recursively."""
    if isinstance(obj, (str, bool)) or obj is None:
        return obj
    if isinstance(obj, (int, float)):  # 200 (JSON) and 200.0 (Python) are the same setting
        return float(obj)
    if isinstance(obj, (list, tuple)):
        return [_settings(v, depth + 1) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _settings(v, depth + 1) for k, v in sorted(obj.items(), key=str)}
    if isinstance(obj, type) or inspect.isroutine(obj):  # numpy dtypes, select functions
        return f"{obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, (torch.dtype, np.dtype)):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy / torch values
        return obj.tolist()
    if depth > 8 or not hasattr(obj, "__dict__"):
        return type(obj).__name__
    # R: the random state of Randomizable transforms, which changes between runs; not a setting
    public = {k: v for k, v in vars(obj).items() if not k.startswith("_") and k != "R"}
    return {"class": type(obj).__name__, **_settings(public, depth + 1)}


def chain_key(transform: Callable[..., Any]) -> str:
    """A digest of a chain's settings (classes, keys, sizes, HU range ...) for on-disk caches.

    The same settings give the same key in every run and process, so cached preprocessing is
    reused exactly when it would be recomputed identically.
    """
    text = json.dumps(_settings(transform), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def crop_box_of(image: MetaTensor) -> CropBox:
    """The body crop a chain output went through, read from its ``applied_operations``."""
    for op in image.applied_operations:
        if op[TraceKeys.CLASS_NAME] == "BodyCropForeground":
            height, width = (int(n) for n in op[TraceKeys.ORIG_SIZE])
            top, bottom, left, right = (int(n) for n in op[TraceKeys.EXTRA_INFO]["cropped"])
            return CropBox(top, height - bottom, left, width - right, (height, width))
    raise ValueError("the image did not go through BodyCropd")


def resize_labels(labels: NdarrayOrTensor, shape: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W) integer label map to ``shape`` (h, w) with centred nearest neighbour."""
    resized = Resize(spatial_size=shape, mode=LABEL_MODE)(torch.as_tensor(np.asarray(labels))[None].float())
    return np.asarray(torch.as_tensor(resized)[0].round().numpy(), dtype=np.asarray(labels).dtype)


@dataclass(frozen=True)
class SliceGeometry:
    """Where a network input came from: the crop on the native grid and the chain's record."""

    box: CropBox
    model_size: int
    operations: list[dict[str, Any]] = field(default_factory=list, compare=False, repr=False)

    @property
    def native_shape(self) -> tuple[int, int]:
        """(H, W) of the native slice."""
        return self.box.native_shape

    @property
    def crop_shape(self) -> tuple[int, int]:
        """(h, w) of the crop before resizing."""
        return self.box.shape


class CropWindowResize:
    """Array adapter over :func:`ct_chain`: (H, W) HU -> (1, S, S) input, and predictions back.

    For callers holding plain arrays (``lsmseg segment``); bundles use the chain and ``Invertd``.

    Args:
        model_size: S, side of the square network input (pixels).
        hu_range: HU window mapped to [0, 1].
        margin_px: margin around the body's bounding box (native pixels).
        threshold_hu: body threshold of the crop.
    """

    def __init__(
        self,
        model_size: int = MODEL_SIZE,
        hu_range: Sequence[float] = DEFAULT_HU_RANGE,
        margin_px: int = CROP_MARGIN_PX,
        threshold_hu: float = BODY_THRESHOLD_HU,
    ) -> None:
        self.model_size = int(model_size)
        self.hu_range = (float(hu_range[0]), float(hu_range[1]))
        self.chain = ct_chain(self.model_size, self.hu_range, margin_px=margin_px, threshold_hu=threshold_hu)

    def forward(self, hu: np.ndarray) -> tuple[np.ndarray, SliceGeometry]:
        """(H, W) HU -> ((1, S, S) float32 in [0, 1], geometry for the inverse)."""
        if hu.ndim != 2:
            raise ValueError(f"expected an (H, W) HU slice, got shape {hu.shape}")
        image = self.chain({Keys.IMAGE: MetaTensor(torch.as_tensor(np.asarray(hu, np.float32))[None])})[
            Keys.IMAGE
        ]
        operations = copy.deepcopy(image.applied_operations)
        geometry = SliceGeometry(crop_box_of(image), self.model_size, operations)
        return np.asarray(image.array, dtype=np.float32), geometry

    __call__ = forward

    def inverse_mask(self, mask_or_probs: NdarrayOrTensor, geometry: SliceGeometry) -> np.ndarray:
        """Network output on the (S, S) grid -> (H, W) uint8 label map on the native grid.

        Args:
            mask_or_probs: (C, S, S) class probabilities or logits (C >= 2), resized bilinearly
                and arg-maxed on the native grid (boundaries between the small grid's pixels);
                or a label map, (S, S) or (1, S, S), mapped back with nearest neighbour.
            geometry: what :meth:`forward` returned with the input.

        Returns:
            (H, W) uint8 labels; outside the crop it is background.
        """
        scores = torch.as_tensor(
            np.asarray(torch.as_tensor(mask_or_probs).detach().cpu()), dtype=torch.float32
        )
        is_labels = scores.ndim == 2 or scores.shape[0] == 1
        pred = MetaTensor(scores.reshape(1, *scores.shape[-2:]) if is_labels else scores)
        operations = copy.deepcopy(geometry.operations)
        # labels must not be blended: replay the resize with nearest neighbour (what Invertd's nearest_interp does)
        pred.applied_operations = (
            convert_applied_interp_mode(operations, mode=LABEL_MODE) if is_labels else operations
        )
        native = self.chain.inverse({Keys.IMAGE: pred})[Keys.IMAGE]
        # max().indices: the same first-maximum index as argmax (ties -> background in the padding),
        # 4 instead of 44 ms for (4, 512, 512) on CPU (argmax over the outer dimension is slow)
        labels = native[0].round() if is_labels else native.max(dim=0).indices
        return np.asarray(labels.cpu().numpy(), dtype=np.uint8)
