"""NRMSE on hand-made landmarks with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsmseg.engines.metrics import mean_shape_nrmse, nrmse


def _face(inter_ocular: float = 10.0) -> np.ndarray:
    """(68, 2) points: outer eye corners 36 and 45 ``inter_ocular`` apart, 37 and 46 8 apart."""
    points = np.random.default_rng(0).uniform(0, 40, (68, 2))
    points[36], points[45] = (10.0, 20.0), (10.0 + inter_ocular, 20.0)
    points[37], points[46] = (11.0, 19.0), (19.0, 19.0)
    return points


def test_one_pixel_shift_over_inter_ocular_10_is_0_1() -> None:
    target = _face()[None]  # (1, 68, 2)
    pred = target + np.array([1.0, 0.0])
    np.testing.assert_allclose(nrmse(pred, target), [0.1])
    np.testing.assert_allclose(nrmse(pred, target, convention="reference"), [1 / 8])  # 37-46 are 8 apart


def test_error_is_euclidean_mean_over_points() -> None:
    target = _face()[None]
    pred = target.copy()
    pred[0, :34] += [3.0, 4.0]  # half the points 5 px off, the others exact
    np.testing.assert_allclose(nrmse(pred, target), [0.25])


def test_layouts_and_array_types_agree() -> None:
    rng = np.random.default_rng(1)
    target = np.stack([_face(10.0), _face(20.0)])  # (2, 68, 2)
    pred = target + rng.normal(0, 1, target.shape)
    expected = nrmse(pred, target)
    assert expected.shape == (2,)
    np.testing.assert_allclose(nrmse(pred.reshape(2, 136), target.reshape(2, 136)), expected)
    as_torch = nrmse(torch.as_tensor(pred), torch.as_tensor(target))
    assert isinstance(as_torch, torch.Tensor)
    np.testing.assert_allclose(as_torch.numpy(), expected)
    np.testing.assert_allclose(nrmse(torch.as_tensor(pred), target).numpy(), expected)  # mixed types
    np.testing.assert_allclose(nrmse(pred, torch.as_tensor(target)), expected)


def test_scale_free() -> None:
    target = _face()[None]
    pred = target + np.random.default_rng(2).normal(0, 1, target.shape)
    np.testing.assert_allclose(nrmse(pred / 64, target / 64), nrmse(pred, target))


def test_explicit_eye_corners_and_errors() -> None:
    target = _face()[None]
    pred = target + np.array([1.0, 0.0])
    np.testing.assert_allclose(nrmse(pred, target, eye_corners=(37, 46)), [1 / 8])
    with pytest.raises(ValueError, match="either"):
        nrmse(pred, target, eye_corners=(36, 45), convention="reference")
    with pytest.raises(ValueError, match="convention"):
        nrmse(pred, target, convention="paper")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="differ"):
        nrmse(pred[:, :60], target)
    degenerate = target.copy()
    degenerate[0, 45] = degenerate[0, 36]
    with pytest.raises(ValueError, match="inter-ocular"):
        nrmse(pred, degenerate)


def test_mean_shape_baseline() -> None:
    face = _face()
    train = np.stack([face + 1.0, face - 1.0]).reshape(2, 136)  # mean shape = face
    test = np.stack([face + np.array([1.0, 0.0]), face])  # NRMSE 0.1 and 0
    assert mean_shape_nrmse(train, test) == pytest.approx(0.05)
    assert mean_shape_nrmse(torch.as_tensor(train), torch.as_tensor(test).reshape(2, 136)) == pytest.approx(
        0.05
    )
