"""The pix2pix / CycleGAN ``resnet_6blocks`` generator split 3/3 into an encoder and a decoder.

Reference: Zhu et al. 2017 (CycleGAN) and Isola et al. 2017 (pix2pix), as used by the LSM paper
(appendix B): encoder = 7x7 stem, two stride-2 downsamplings, residual blocks; decoder = residual
blocks, two stride-2 transposed convolutions, 7x7 head. InstanceNorm without affine, conv bias on.
"""

from __future__ import annotations

import torch
from torch import nn


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """Initialise conv / linear weights with N(0, std) and biases with 0 (pix2pix ``init_type=normal``)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResBlock(nn.Module):
    """Residual block ``x + [ReflPad1, Conv3x3, IN, ReLU, ReflPad1, Conv3x3, IN](x)``; (B, C, H, W) -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            *_norm_act(channels),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _norm_act(channels: int) -> list[nn.Module]:
    # Not in place: InstanceNorm returns a view, and an in-place op on a view costs autograd a
    # CopySlices node (copies of the whole tensor in the backward; issue 12: the GPU step is host-bound).
    return [nn.InstanceNorm2d(channels), nn.ReLU()]


class ResnetEncoder(nn.Module):
    """Image (B, in_channels, H, W) -> latent map (B, ngf * 2**n_down, H / 2**n_down, W / 2**n_down).

    Args:
        in_channels: channels of the domain (1 for CT, C classes for a one-hot mask, 3 for RGB).
        ngf: width of the first convolution (64 in the paper).
        n_blocks: residual blocks at the latent resolution (3 = first half of resnet_6blocks).
        n_down: stride-2 downsamplings (2 in the paper: 128x128 -> 32x32).
    """

    def __init__(self, in_channels: int, ngf: int = 64, n_blocks: int = 3, n_down: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), *_norm_act(ngf)]
        for i in range(n_down):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), *_norm_act(2 * c)]
        latent = ngf * 2**n_down
        layers += [ResBlock(latent) for _ in range(n_blocks)]
        self.model = nn.Sequential(*layers)
        self.out_channels = latent
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ResnetDecoder(nn.Module):
    """Latent map (B, ngf * 2**n_up, h, w) -> logits (B, out_channels, h * 2**n_up, w * 2**n_up).

    The output activation (sigmoid for images, softmax for masks) belongs to the domain, so
    losses can work on logits (cross-entropy with logits, not the reference's double softmax).

    ``nhwc_head`` runs the 7x7 output convolution (ngf -> 1-4 channels) on an NHWC copy of its
    input: oneDNN's NCHW kernels pad the few output channels to a vector block of 16, its NHWC
    kernels do not. The same weights and state dict; outputs equal up to float rounding. On the
    2-core AMD EPYC CPU it saves about 10 % of the decoder's forward + backward at ngf 16 and
    0-7 % at ngf 32 (``benchmarks/README.md``), so it is off by default.
    """

    def __init__(
        self, out_channels: int, ngf: int = 64, n_blocks: int = 3, n_up: int = 2, nhwc_head: bool = False
    ) -> None:
        super().__init__()
        self.nhwc_head = nhwc_head
        latent = ngf * 2**n_up
        layers: list[nn.Module] = [ResBlock(latent) for _ in range(n_blocks)]
        for i in range(n_up, 0, -1):
            c = ngf * 2**i
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                *_norm_act(c // 2),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7)]
        self.model = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not self.nhwc_head:
            return self.model(z)
        body, pad, head = self.model[:-2], self.model[-2], self.model[-1]
        features = body(z).contiguous(memory_format=torch.channels_last)  # the pad keeps NHWC
        return head(pad(features))


class LinkNetwork(nn.Module):
    """Latent-to-latent map h_ab: residual blocks on the latent map, (B, C, h, w) -> same shape."""

    def __init__(self, channels: int, n_blocks: int = 1) -> None:
        super().__init__()
        self.model = nn.Sequential(*[ResBlock(channels) for _ in range(n_blocks)])
        init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)


class PatchDiscriminator(nn.Module):
    """PatchGAN critic ("NLayerDiscriminator"): (B, C, H, W) -> patch logits (B, 1, h', w').

    k4 convolutions, LeakyReLU 0.2, InstanceNorm after the first layer. With ``n_layers=3`` a
    32x32 latent gives a 2x2 logit map, a 256x256 image a 30x30 map.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1),
                nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2),  # not in place on InstanceNorm's view (see _norm_act)
            ]
        layers += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
