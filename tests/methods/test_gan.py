"""The pieces Pix2Pix and CycleGAN add: GAN losses, critic inputs, image critics, cycle generators."""

import pytest
import torch

from lsmseg.methods import CycleGenerators, ImageCritics
from lsmseg.methods.gan import as_planes, check_gan_loss, gan_per_row
from tests.helpers.methods import tiny_lsm


def test_gan_losses_follow_their_references() -> None:
    logits = torch.tensor([[[[0.0, 2.0]]]])
    # LSGAN: squared distance of raw logits to the target (Mao et al. 2017).
    assert torch.allclose(gan_per_row(logits, 1.0, "lsgan"), torch.tensor([(1.0 + 1.0) / 2]))
    # Vanilla: BCE on logits; at logit 0 it is log 2 whatever the target.
    assert torch.allclose(gan_per_row(logits[..., :1], 0.0, "bce"), torch.tensor([0.6931]), atol=1e-4)
    with pytest.raises(ValueError, match="valid: bce, lsgan"):
        check_gan_loss("wgan")


def test_landmark_vectors_are_repeated_over_the_image_plane() -> None:
    x = torch.rand(2, 3, 8, 8)
    y = torch.rand(2, 136)
    planes = as_planes([x, y], (8, 8))
    assert planes.shape == (2, 139, 8, 8)
    assert torch.equal(planes[:, 3:, 5, 2], y) and torch.equal(planes[:, :3], x)


def test_image_critics_score_patches_per_domain() -> None:
    critics = ImageCritics({"image": 1, "label": 3}, ndf=4, n_layers=3)
    logits = critics({"image": torch.rand(2, 1, 32, 32), "label": torch.rand(2, 3, 32, 32)})
    assert logits["image"].shape == logits["label"].shape == (2, 1, 2, 2)  # 70x70 PatchGAN on 32 px


def test_cycle_generators_translate_and_return() -> None:
    model = tiny_lsm()
    gen = CycleGenerators(model.generators, model.source, model.target)
    inputs = {"image": torch.rand(2, 1, 32, 32), "label": torch.rand(2, 3, 32, 32)}
    out = gen(inputs)
    assert out["cyc_label"].shape == (2, 3, 32, 32) and out["cyc_image"].shape == (2, 1, 32, 32)
    # Translations into a mask are probabilities: what the critic sees and the cycle re-encodes.
    assert torch.allclose(out["fake_label"].sum(1), torch.ones(2, 32, 32))
    assert torch.equal(out["tr_image2label"], model(inputs["image"]))
