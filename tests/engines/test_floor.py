"""The floor: the best input-independent prediction, tuned on validation, scored on test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsmseg.engines.evaluation import IoUReport
from lsmseg.engines.floor import landmark_floor, mask_floor, score_constant
from lsmseg.engines.metrics import nrmse
from lsmseg.keys import Keys, Mode


def _row(mask: list[list[int]], mode: Mode = Mode.PAIRED) -> dict:
    return {Keys.LABEL: np.asarray(mask, np.int64)[None], Keys.MODE: int(mode)}


def _rows(train: list, valid: list, test: list) -> dict[str, list[dict]]:
    return {
        "train": [_row(m, mode) for m, mode in train],
        "valid": [_row(m) for m in valid],
        "test": [_row(m) for m in test],
    }


@pytest.mark.parametrize("classes", [["background", "ring"], ["background", "sat", "vat", "muscle"]])
def test_identical_masks_have_floor_one(classes: list[str]) -> None:
    rng = np.random.default_rng(0)
    mask = rng.integers(0, len(classes), (8, 8)).tolist()
    rows = _rows([(mask, Mode.PAIRED)] * 3 + [(mask, Mode.Y_ONLY)], [mask] * 2, [mask] * 3)
    assert mask_floor(rows, classes)["floor"] == pytest.approx(1.0)


def test_binary_floor_by_hand() -> None:
    """Mean of the labelled training masks [1, .5, 0, 0]; the x-only row's label is ignored.

    Thresholds 0, .5, 1 predict {0,1,2,3}, {0,1}, {0}: validation mIoU .5, .667, .25, so t = .5.
    Test: [0,1,1,1] -> 1/4; the empty mask is left out (as IoUReport does); [1,1,1,0] -> 2/3.
    """
    train = [
        ([[1, 1, 0, 0]], Mode.PAIRED),
        ([[1, 0, 0, 0]], Mode.Y_ONLY),  # counted: it carries a mask
        ([[0, 0, 1, 1]], Mode.X_ONLY),  # not counted: x-only rows have no mask (would give t = 1/3)
    ]
    rows = _rows(train, [[[1, 1, 0, 0]], [[0, 1, 1, 0]]], [[[0, 1, 1, 1]], [[0, 0, 0, 0]], [[1, 1, 1, 0]]])
    floor = mask_floor(rows, ["background", "ring"])
    assert floor["floor_threshold"] == pytest.approx(0.5)
    assert floor["floor"] == pytest.approx((1 / 4 + 2 / 3) / 2)


def test_multiclass_floor_scales_a_rare_class_where_validation_wants_it() -> None:
    """Pixel 0 is class a in 3 of 4 training masks, pixel 1 background in 3 of 4; class b is the
    rest. Plain argmax predicts [a, background]: IoU of b 0 on a [b, b] validation mask; scaling b
    by more than 3 predicts [b, b]: IoU of b 1. Class a, in no validation or test mask, counts 0
    (MONAI's mean over images of a class no image has), so the mIoU is (0 + 1) / 2."""
    train = [([[1, 0]], Mode.PAIRED)] * 3 + [([[2, 2]], Mode.PAIRED)]
    rows = _rows(train, [[[2, 2]]], [[[2, 2]]])
    classes = ["background", "a", "b"]
    plain = score_constant(torch.tensor([[1, 0]]), torch.tensor([[[2, 2]]]), 3)
    floor = mask_floor(rows, classes)
    assert plain == 0.0
    assert floor["floor"] == pytest.approx(0.5) and floor["floor_scales"]["b"] > 3.0


def test_score_constant_is_the_report_metric() -> None:
    """The floor scores a constant mask exactly as IoUReport scores a model's masks."""
    rng = np.random.default_rng(1)
    labels = torch.as_tensor(rng.integers(0, 4, (5, 6, 6)))
    pred = torch.as_tensor(rng.integers(0, 4, (6, 6)))
    report = IoUReport("unused.json", ["background", "a", "b", "c"])
    onehot = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    pred_onehot = torch.nn.functional.one_hot(pred, 4).permute(2, 0, 1).float().expand_as(onehot)
    report.metric(y_pred=pred_onehot, y=onehot)
    assert score_constant(pred, labels, 4) == pytest.approx(report.result()["miou"])


def test_report_writes_the_floor_beside_the_contract_keys() -> None:
    report = IoUReport("unused.json", ["background", "ring"], floor={"floor": 0.25, "floor_threshold": 0.5})
    report.metric(y_pred=torch.ones(1, 2, 2, 2), y=torch.ones(1, 2, 2, 2))
    assert set(report.result()) == {"miou", "iou", "n", "floor", "floor_threshold"}


def test_no_training_mask_is_an_error() -> None:
    rows = _rows([([[1, 0]], Mode.X_ONLY)], [[[1, 0]]], [[[1, 0]]])
    with pytest.raises(ValueError, match="no training row carries a mask"):
        mask_floor(rows, ["background", "ring"])


def test_landmark_floor_is_the_mean_training_shape_on_test() -> None:
    rng = np.random.default_rng(2)
    shapes = rng.random((4, 136))
    train = [{"landmarks": s, Keys.MODE: int(Mode.PAIRED)} for s in shapes[:2]]
    train.append({"landmarks": np.zeros(136), Keys.MODE: int(Mode.X_ONLY)})  # hidden: not averaged
    rows = {"train": train, "valid": [], "test": [{"landmarks": s} for s in shapes[2:]]}
    mean = shapes[:2].mean(0, keepdims=True).repeat(2, 0)
    expected = float(nrmse(mean, shapes[2:]).mean())
    assert landmark_floor(rows)["floor"] == pytest.approx(expected)
    same = {"train": train[:1], "valid": [], "test": train[:1]}
    assert landmark_floor(same)["floor"] == pytest.approx(0.0)
