"""HU window: map Hounsfield units to the [0, 1] network input range."""

from __future__ import annotations

import numpy as np
from monai.config import NdarrayOrTensor
from monai.transforms.utils_pytorch_numpy_unification import clip
from monai.utils import convert_data_type

# Fat (-190..-30 HU) and muscle (-29..+150 HU) of the Alberta protocol both fall inside, with
# room for the partial-volume pixels at their edges; bone and air saturate, which the task ignores.
DEFAULT_HU_RANGE = (-250.0, 250.0)


def window_hu(hu: NdarrayOrTensor, hu_range: tuple[float, float] = DEFAULT_HU_RANGE) -> NdarrayOrTensor:
    """Linearly map ``hu_range`` (HU) to [0, 1] and clip; same shape and array type, float32."""
    low, high = hu_range
    if not high > low:
        raise ValueError(f"hu_range must be increasing, got {hu_range}")
    hu_f32: NdarrayOrTensor = convert_data_type(hu, dtype=np.float32)[0]
    return clip((hu_f32 - low) / (high - low), 0.0, 1.0)


class WindowHU:
    """Array transform: :func:`window_hu` with a fixed ``hu_range`` (HU)."""

    def __init__(self, hu_range: tuple[float, float] = DEFAULT_HU_RANGE) -> None:
        self.hu_range = (float(hu_range[0]), float(hu_range[1]))

    def __call__(self, hu: NdarrayOrTensor) -> NdarrayOrTensor:
        return window_hu(hu, self.hu_range)
