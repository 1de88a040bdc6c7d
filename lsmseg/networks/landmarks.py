"""Auto-encoder of the landmark domain (300-W): 136 coordinates <-> a latent map like the image's.

Reference: the LSM paper's 300-W experiment (appendix B) and its reference implementation: the
encoder is an MLP 136 -> 256 -> 1024 -> C*3*3, reshaped to (C, 3, 3), two stride-2 transposed
convolutions (kernel 5) up to (C, 16, 16) and one residual block, so that the landmark latent has
the shape of the latent of a 64x64 RGB image (256 x 16 x 16) and one link network maps between
them. The decoder mirrors it. Weights N(0, 0.02), biases 0, InstanceNorm without affine.

Landmarks travel as (B, 136) floats in [0, 1], interleaved (x0, y0, x1, y1, ...), normalised by
the face crop (see ``lsmseg.data.w300.preprocess_face``).
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from lsmseg.networks.resnet import ResBlock, init_normal

_KERNEL = 5
_STRIDE = 2
_SEED_SIZE = 3  # spatial size of the map the MLP produces: (C, 3, 3)
_MAX_PADDING = 2  # kernel // 2: never crop more than a "same" convolution would


def _transposed_out(size: int, padding: int, output_padding: int) -> int:
    """Output size of ConvTranspose2d(k5, s2) on ``size`` (PyTorch formula, dilation 1)."""
    return (size - 1) * _STRIDE - 2 * padding + _KERNEL + output_padding


def upsampling_plan(latent_size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(padding, output_padding) of the two ConvTranspose2d(k5, s2) steps 3 -> m -> latent_size.

    The intermediate size m is the one closest to latent_size / 2 for which both steps exist with
    padding in 0..2 and output_padding in 0..1. For latent_size 16 (64x64 images): 3 -> 8 -> 16
    with (1, 1) then (2, 1). A Conv2d(k5, s2) with the same padding inverts each step's size, so
    the decoder reuses the plan.

    Raises:
        ValueError: when no such plan exists (latent_size outside 9..24).
    """
    candidates = sorted(range(1, latent_size + 1), key=lambda m: abs(2 * m - latent_size))
    for mid in candidates:
        steps = []
        for size_in, size_out in ((_SEED_SIZE, mid), (mid, latent_size)):
            step = next(
                (
                    (p, op)
                    for p in range(_MAX_PADDING + 1)
                    for op in range(_STRIDE)
                    if _transposed_out(size_in, p, op) == size_out
                ),
                None,
            )
            if step is None:
                break
            steps.append(step)
        if len(steps) == 2:
            return steps[0], steps[1]
    raise ValueError(
        f"latent_size={latent_size} cannot be reached from a 3x3 map with two ConvTranspose2d(k5, s2) "
        "steps; use a latent_size in 9..24 (16 for 64x64 images, matching the image latent)"
    )


def _mlp(sizes: tuple[int, ...]) -> list[nn.Module]:
    """Linear layers through ``sizes`` with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return layers


class LandmarkEncoder(nn.Module):
    """Landmarks (B, 2 * n_points) in [0, 1] -> latent map (B, latent_channels, latent_size, latent_size).

    MLP 136 -> 256 -> 1024 -> C*3*3 (ReLU between and after), reshape to (B, C, 3, 3), two
    [ConvTranspose2d(k5, s2), InstanceNorm, ReLU] steps 3 -> 8 -> 16, one residual block.

    Args:
        n_points: landmarks per face (68 for 300-W); the input has 2 * n_points values.
        latent_channels: C, the channel count of the image latent (256 = 4 * ngf).
        latent_size: spatial size of the latent map (16 for 64x64 images); see ``upsampling_plan``.
        hidden: widths of the hidden MLP layers.
    """

    def __init__(
        self,
        n_points: int = 68,
        latent_channels: int = 256,
        latent_size: int = 16,
        hidden: tuple[int, ...] = (256, 1024),
    ) -> None:
        super().__init__()
        (p1, op1), (p2, op2) = upsampling_plan(latent_size)
        c = latent_channels
        self.latent_channels = latent_channels
        self.mlp = nn.Sequential(*_mlp((2 * n_points, *hidden, c * _SEED_SIZE**2)), nn.ReLU(inplace=True))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c, c, _KERNEL, _STRIDE, padding=p1, output_padding=op1),
            nn.InstanceNorm2d(c),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c, c, _KERNEL, _STRIDE, padding=p2, output_padding=op2),
            nn.InstanceNorm2d(c),
            nn.ReLU(inplace=True),
            ResBlock(c),
        )
        init_normal(self)

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        """(B, 2 * n_points) -> (B, C, latent_size, latent_size)."""
        seed = self.mlp(landmarks)  # (B, C*3*3)
        seed = seed.view(-1, self.latent_channels, _SEED_SIZE, _SEED_SIZE)  # (B, C, 3, 3)
        return self.up(seed)


class LandmarkDecoder(nn.Module):
    """Latent map (B, latent_channels, latent_size, latent_size) -> landmark logits (B, 2 * n_points).

    Mirror of ``LandmarkEncoder``: one residual block, two [Conv2d(k5, s2), InstanceNorm, ReLU]
    steps 16 -> 8 -> 3, flatten, MLP C*3*3 -> 1024 -> 256 -> 136.

    The output is raw (logits): the landmark domain applies the sigmoid that maps them to [0, 1]
    (the reference puts the sigmoid inside the decoder). Keeping it outside lets a loss choose
    between sigmoid-then-MSE and a loss on logits, as for masks.
    """

    def __init__(
        self,
        n_points: int = 68,
        latent_channels: int = 256,
        latent_size: int = 16,
        hidden: tuple[int, ...] = (256, 1024),
    ) -> None:
        super().__init__()
        (p1, _), (p2, _) = upsampling_plan(latent_size)
        c = latent_channels
        self.down = nn.Sequential(
            ResBlock(c),
            nn.Conv2d(c, c, _KERNEL, _STRIDE, padding=p2),
            nn.InstanceNorm2d(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, _KERNEL, _STRIDE, padding=p1),
            nn.InstanceNorm2d(c),
            nn.ReLU(inplace=True),
        )
        self.mlp = nn.Sequential(*_mlp((c * _SEED_SIZE**2, *reversed(hidden), 2 * n_points)))
        init_normal(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, latent_size, latent_size) -> (B, 2 * n_points) logits."""
        seed = self.down(z)  # (B, C, 3, 3)
        return self.mlp(seed.flatten(1))  # (B, C*3*3) -> (B, 2 * n_points)
