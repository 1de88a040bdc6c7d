"""Landmark auto-encoder: shapes, size plan, initialisation, gradient flow."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lsmseg.networks.landmarks import LandmarkDecoder, LandmarkEncoder, upsampling_plan
from lsmseg.networks.resnet import ResnetEncoder


def test_shapes_match_the_image_latent_of_64px_faces() -> None:
    encoder, decoder = LandmarkEncoder(), LandmarkDecoder()
    landmarks = torch.rand(3, 136)
    z = encoder(landmarks)
    assert z.shape == (3, 256, 16, 16)
    assert decoder(z).shape == (3, 136)
    image_latent = ResnetEncoder(3)(torch.rand(1, 3, 64, 64))
    assert image_latent.shape[1:] == z.shape[1:]  # one link network maps between the two domains


def test_upsampling_plan() -> None:
    assert upsampling_plan(16) == ((1, 1), (2, 1))  # 3 -> 8 -> 16
    for size in (9, 12, 20, 24):
        z = LandmarkEncoder(latent_channels=4, latent_size=size)(torch.rand(2, 136))
        assert z.shape == (2, 4, size, size)
        assert LandmarkDecoder(latent_channels=4, latent_size=size)(z).shape == (2, 136)
    with pytest.raises(ValueError, match="latent_size=32"):
        LandmarkEncoder(latent_size=32)


def test_init_normal_002_and_zero_bias() -> None:
    for net in (LandmarkEncoder(), LandmarkDecoder()):
        layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
        assert len(layers) == 7  # 3 linear, 2 strided (transposed) convs, 2 convs in the residual block
        for layer in layers:
            assert abs(layer.weight.std().item() - 0.02) < 0.004
            assert layer.bias is not None and torch.all(layer.bias == 0)


def test_gradient_reaches_every_parameter() -> None:
    encoder = LandmarkEncoder(latent_channels=16)
    decoder = LandmarkDecoder(latent_channels=16)
    target = torch.rand(4, 136)
    loss = nn.functional.mse_loss(torch.sigmoid(decoder(encoder(target))), target)
    loss.backward()
    for name, param in [*encoder.named_parameters(), *decoder.named_parameters()]:
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_decoder_outputs_logits_not_probabilities() -> None:
    decoder = LandmarkDecoder(latent_channels=8)
    with torch.no_grad():
        decoder.mlp[-1].bias.fill_(-3.0)  # type: ignore[operator]
    out = decoder(torch.randn(2, 8, 16, 16))
    assert (out < 0).all()  # no sigmoid inside: the landmark domain applies it
