import math

import pytest
import torch
import torch.nn.functional as F

from lsmseg.losses import bce_per_row, class_weights, cross_entropy_per_row, masked_mean


def test_masked_mean_averages_only_rows_that_have_the_views() -> None:
    per_row = torch.tensor([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([True, True, True, False])
    assert float(masked_mean(per_row, mask)) == 2.0


def test_masked_mean_is_zero_with_zero_gradient_when_no_row_has_the_views() -> None:
    per_row = torch.tensor([float("nan"), 5.0], requires_grad=True)
    loss = masked_mean(per_row, torch.tensor([False, False]))
    loss.backward()
    assert float(loss) == 0.0
    assert torch.equal(per_row.grad, torch.zeros(2))


def test_cross_entropy_works_on_logits() -> None:
    logits, labels = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    expected = F.cross_entropy(logits, labels, reduction="none").mean(dim=(1, 2))
    assert torch.allclose(cross_entropy_per_row(logits, labels), expected)


def test_class_weights_ignore_hidden_labels() -> None:
    labels = torch.zeros(2, 2, 2, dtype=torch.long)
    labels[0, 0, 0] = 1  # row 0: 3 background, 1 foreground
    labels[1] = 1  # row 1 is hidden: its all-foreground placeholder must not count
    w = class_weights(labels, torch.tensor([True, False]), 2)
    assert torch.allclose(w, torch.tensor([0.5, 1.5]))  # inverse frequency 4/3 and 4, mean 1


def test_bce_against_half_is_minimal_at_zero_logit() -> None:
    assert float(bce_per_row(torch.zeros(1, 4), 0.5)[0]) < float(bce_per_row(torch.full((1, 4), 2.0), 0.5)[0])


def test_reference_cross_entropy_is_the_double_softmax_with_unnormalised_weights() -> None:
    """Known answer: logits 0 give probabilities 0.5, and softmax(0.5, 0.5) = 0.5 again, so each
    pixel costs w_c log 2 with w_c = H W / (pixels of class c over the batch): 2 rows of 2x2,
    one ring pixel -> w_ring = 4, w_background = 4/7."""
    from lsmseg.losses import reference_cross_entropy_per_row

    labels = torch.zeros(2, 2, 2, dtype=torch.long)
    labels[0, 0, 0] = 1
    logits = torch.zeros(2, 2, 2, 2)
    rows = torch.ones(2, dtype=torch.bool)
    got = reference_cross_entropy_per_row(logits, labels, rows)
    log2 = math.log(2)
    assert torch.allclose(got, torch.tensor([(4 + 3 * 4 / 7) / 4 * log2, 4 / 7 * log2]))
    # the two rows drawn from a batch of 4: weights ~ 1 / (batch x fraction) halve
    assert torch.allclose(reference_cross_entropy_per_row(logits, labels, rows, batch_size=4), got / 2)


def test_reference_cross_entropy_cannot_fall_below_the_double_softmax_floor() -> None:
    """A perfectly confident prediction still costs log(1 + 1/e) ~ 0.313 per pixel (unweighted
    weight 1 here: one class over the whole 1x1 batch), where a logits CE goes to 0."""
    from lsmseg.losses import reference_cross_entropy_per_row

    labels = torch.zeros(1, 1, 1, dtype=torch.long)
    logits = torch.tensor([50.0, -50.0]).reshape(1, 2, 1, 1)
    got = reference_cross_entropy_per_row(logits, labels, torch.ones(1, dtype=torch.bool))
    assert float(got) == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert float(cross_entropy_per_row(logits, labels)) < 1e-6
