"""The body mask: the table is cut off, internal air is filled, an empty slice has no body; a
slice seen again (gates, then crop) is not computed again."""

from __future__ import annotations

import numpy as np
import pytest

from lsmseg.io import body
from lsmseg.io.body import body_mask, largest_component


def test_body_mask_drops_the_table_and_fills_holes() -> None:
    hu = np.full((80, 80), -1000.0)
    rr, cc = np.mgrid[0:80, 0:80]
    body = (rr - 35) ** 2 + (cc - 40) ** 2 <= 25**2
    hu[body] = 40.0
    hu[(rr - 35) ** 2 + (cc - 40) ** 2 <= 5**2] = -900.0  # bowel gas inside the body
    hu[62:64, 5:75] = 200.0  # a 2-pixel table touching the body's back
    mask = body_mask(hu)
    np.testing.assert_array_equal(mask, body)


def test_nothing_above_air_is_no_body() -> None:
    assert not body_mask(np.full((32, 32), -1000.0)).any()


def test_largest_component_keeps_the_biggest_blob() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[0:2, 0:2] = True  # 4 pixels
    mask[5:9, 5:9] = True  # 16 pixels
    out = largest_component(mask)
    assert out.sum() == 16 and out[6, 6] and not out[0, 0]


def test_a_slice_seen_again_gets_its_mask_from_the_cache_a_copy_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hu = np.full((40, 40), -1000.0)
    hu[10:30, 8:32] = 40.0
    calls: list[int] = []
    compute = body._body_of

    def counted(above: np.ndarray, radius: int) -> np.ndarray:
        calls.append(radius)
        return compute(above, radius)

    monkeypatch.setattr(body, "_body_of", counted)
    first = body_mask(hu)
    first[:] = False  # a caller's edit must not reach the next caller
    again = body_mask(hu.astype(np.float64) + 1.0)  # same pixels above the threshold
    assert calls == [body.TABLE_OPENING_RADIUS_PX] and again.sum() == 20 * 24
    hu[10:30, 8] = -1000.0  # other pixels: computed anew
    assert body_mask(hu).sum() == 20 * 23 and len(calls) == 2
