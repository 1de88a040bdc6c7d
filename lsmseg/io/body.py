"""The patient's body on an axial CT slice: the one body mask the quality gate and the crop use.

It lives in ``io`` (below ``transforms``) because the ingest quality gate needs it to tell whether
the field of view cuts the body off, and ``io`` must not import ``transforms``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
from scipy import ndimage

# Between air (-1000 HU) and fat (about -100 HU): keeps all of the body, none of the air.
BODY_THRESHOLD_HU = -500.0
# Scanner tables are thin shells (a few mm) that touch the back; an opening of this radius cuts
# them off without eating into the body (about 2-3 mm at usual 0.6-0.9 mm pixels).
TABLE_OPENING_RADIUS_PX = 3
# The quality gate, the anatomy gate and the crop each need the body of the same slice (about
# 25-80 ms per 512x512 slice): the last few masks are kept, keyed by the thresholded pixels.
CACHE_SIZE = 8
_cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


def _disk(radius_px: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius_px : radius_px + 1, -radius_px : radius_px + 1]
    return np.asarray(xx**2 + yy**2 <= radius_px**2)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of an (H, W) bool mask (all False when it is empty)."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0  # background
    return np.asarray(labels == int(sizes.argmax()))


def body_mask(
    hu: np.ndarray,
    threshold_hu: float = BODY_THRESHOLD_HU,
    opening_radius_px: int = TABLE_OPENING_RADIUS_PX,
) -> np.ndarray:
    """Mask of the patient's body on an axial CT slice.

    The body is the largest connected component above ``threshold_hu`` once a morphological
    opening has cut the scanner table off; the skin the opening shaved off is grown back (no
    further than the opening radius, so the table stays off) and internal air (lungs, bowel gas)
    is filled.

    Args:
        hu: (H, W) Hounsfield units.
        threshold_hu: pixels above it are body or table.
        opening_radius_px: radius of the disk of the opening, pixels.

    Returns:
        (H, W) bool mask; all False when nothing is above the threshold.
    """
    above = np.asarray(hu) > threshold_hu
    # the mask depends on nothing but ``above`` and the radius, so they make an exact key
    key = hashlib.blake2b(
        np.packbits(above).tobytes() + repr((above.shape, opening_radius_px)).encode(), digest_size=16
    ).digest()
    with _cache_lock:
        known = _cache.get(key)
        if known is not None:
            _cache.move_to_end(key)
            return known.copy()
    mask = _body_of(above, opening_radius_px)
    with _cache_lock:
        _cache[key] = mask.copy()
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return mask


def _body_of(above: np.ndarray, opening_radius_px: int) -> np.ndarray:
    """:func:`body_mask` of the (H, W) bool pixels above the threshold."""
    disk = _disk(opening_radius_px)
    core = largest_component(ndimage.binary_opening(above, structure=disk))
    if not core.any():  # a body thinner than the opening: keep it unopened rather than lose it
        return np.asarray(ndimage.binary_fill_holes(largest_component(above)))
    body = largest_component(above & ndimage.binary_dilation(core, structure=disk))
    return np.asarray(ndimage.binary_fill_holes(body))
