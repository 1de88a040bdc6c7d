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
