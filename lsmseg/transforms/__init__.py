"""The one invertible preprocessing chain between a native CT slice and the network grid.

``ct_chain`` (body crop -> HU window -> resize, MONAI dictionary transforms on MetaTensors) is
what bundles, training rows and ``lsmseg segment`` use; ``Invertd`` takes predictions back.
:mod:`lsmseg.transforms.load` (``LoadCTd``) reads a slice file into the chain's input; it is not
imported here because it depends on :mod:`lsmseg.io`.
"""

from lsmseg.transforms.body import (
    BODY_THRESHOLD_HU,
    BodyCropd,
    BodyCropForeground,
    CropBox,
    body_crop_box,
    body_mask,
    crop,
)
from lsmseg.transforms.chain import (
    DEFAULT_HU_RANGE,
    MODEL_SIZE,
    CropWindowResize,
    SliceGeometry,
    chain_key,
    crop_box_of,
    ct_chain,
    resize_labels,
)

__all__ = [
    "BODY_THRESHOLD_HU",
    "DEFAULT_HU_RANGE",
    "MODEL_SIZE",
    "BodyCropForeground",
    "BodyCropd",
    "CropBox",
    "CropWindowResize",
    "SliceGeometry",
    "body_crop_box",
    "body_mask",
    "chain_key",
    "crop",
    "crop_box_of",
    "ct_chain",
    "resize_labels",
]
