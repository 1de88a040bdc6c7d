"""Transforms between a native CT slice and the network grid, each with its inverse.

Array-level cores (``body``, ``intensity``, ``resize``, ``pipeline``) hold the maths; the
dictionary wrappers (``dictionary``) pick keys and delegate.
"""

from lsmseg.transforms.body import (
    BODY_THRESHOLD_HU,
    BodyCrop,
    CropBox,
    body_crop_box,
    body_mask,
    crop,
    uncrop,
)
from lsmseg.transforms.dictionary import (
    CROP_BOX_KEY,
    SOURCE_SHAPE_KEY,
    BodyCropd,
    ResizeToModeld,
    WindowHUd,
)
from lsmseg.transforms.intensity import DEFAULT_HU_RANGE, WindowHU, window_hu
from lsmseg.transforms.pipeline import CropWindowResize, SliceGeometry
from lsmseg.transforms.resize import (
    MODEL_SIZE,
    ResizeToModel,
    labels_from_probs,
    resize_image,
    resize_labels,
    resize_probs,
)

__all__ = [
    "BODY_THRESHOLD_HU",
    "CROP_BOX_KEY",
    "DEFAULT_HU_RANGE",
    "MODEL_SIZE",
    "SOURCE_SHAPE_KEY",
    "BodyCrop",
    "BodyCropd",
    "CropBox",
    "CropWindowResize",
    "ResizeToModel",
    "ResizeToModeld",
    "SliceGeometry",
    "WindowHU",
    "WindowHUd",
    "body_crop_box",
    "body_mask",
    "crop",
    "labels_from_probs",
    "resize_image",
    "resize_labels",
    "resize_probs",
    "uncrop",
    "window_hu",
]
