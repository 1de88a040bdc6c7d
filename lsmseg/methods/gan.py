"""The pieces Pix2Pix and CycleGAN add to LSM's generators (lsm_method.md, "Baselines").

Both baselines translate with the networks LSM trains, so the comparison varies only the
objective: the generator x -> y is D_y(h_xy(E_x(x))) (``LatentSpaceMapping.forward``) and
CycleGAN's second generator y -> x is D_x(h_yx(E_y(y))). What they add are image-space
PatchGAN critics (``lsmseg.networks.PatchDiscriminator``, one per judged domain). The critics
are owned by the training step, not by :class:`LatentSpaceMapping`, so ``model.pt`` stays the
state dict that inference loads.

Values a critic sees: images as they are in [0, 1]; masks as class probabilities (translations)
or one-hot maps (real labels); a landmark vector (B, 2K) repeated over the image plane to
(B, 2K, H, W) (the LSM paper's appendix B). Left out on purpose: CycleGAN's identity loss (only
defined when both domains have the same channels: an image and a mask do not) and its image
pool of 50 past fakes (the reference's ``pool_size=0`` setting).

Their training steps, :class:`~lsmseg.methods.steps.Pix2PixStep` and
:class:`~lsmseg.methods.steps.CycleGANStep`, sit with LSM's behind one interface in
:mod:`lsmseg.methods.steps`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from lsmseg.losses import bce_per_row, mse_per_row
from lsmseg.methods.domains import Domain
from lsmseg.methods.lsm import Generators
from lsmseg.networks import PatchDiscriminator

GanLoss = Literal["bce", "lsgan"]
GAN_LOSSES: tuple[str, ...] = ("bce", "lsgan")
GAN_BETAS = (0.5, 0.999)  # Adam betas of both references, generators and critics


def check_gan_loss(kind: str) -> GanLoss:
    """Validate the image-space GAN loss name."""
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; valid: {', '.join(GAN_LOSSES)}")
    return kind  # type: ignore[return-value]


def gan_per_row(logits: torch.Tensor, target: float, kind: GanLoss) -> torch.Tensor:
    """GAN loss of critic logits (B, 1, h, w) against a constant target (1 real, 0 fake) -> (B,).

    ``bce``: binary cross-entropy on logits (Goodfellow et al. 2014; pix2pix ``vanilla``).
    ``lsgan``: squared distance of the raw logits to the target (Mao et al. 2017; CycleGAN).
    """
    if kind == "lsgan":
        return mse_per_row(logits.float(), torch.full_like(logits, target, dtype=torch.float32))
    return bce_per_row(logits, target)


def as_planes(tensors: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Concatenate critic inputs along channels, vectors (B, K) repeated over the plane.

    Args:
        tensors: each (B, C_i, H, W) or (B, K_i) (landmarks).
        size: (H, W) of the plane a vector is repeated over.

    Returns:
        (B, sum C_i, H, W).
    """
    planes = [t if t.ndim == 4 else t[:, :, None, None].expand(-1, -1, *size) for t in tensors]
    return planes[0] if len(planes) == 1 else torch.cat(planes, dim=1)


def _map(generators: Generators, a: str, b: str, inputs: torch.Tensor) -> torch.Tensor:
    """Logits of D_b(h_ab(E_a(inputs))) for encoder inputs (B, ...) of domain a."""
    return generators.decoders[b](generators.links[f"{a}2{b}"](generators.encoders[a](inputs)))


class ImageCritics(nn.Module):
    """One image-space PatchGAN per judged domain; ``forward`` scores inputs per domain.

    Args:
        channels: {domain: input channels of its critic}.
        ndf: width of the first critic layer (64 in both references).
        n_layers: PatchGAN layers (3: the 70x70 PatchGAN of pix2pix and CycleGAN).
    """

    def __init__(self, channels: Mapping[str, int], ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        self.critics = nn.ModuleDict({d: PatchDiscriminator(c, ndf, n_layers) for d, c in channels.items()})

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{domain: (B, C, H, W)} -> {domain: patch logits (B, 1, h', w')}."""
        return {d: self.critics[d](v) for d, v in inputs.items()}


class CycleGenerators(nn.Module):
    """CycleGAN's two generators on LSM's networks, run with their cycles in one forward.

    G = D_y h_xy E_x and F = D_x h_yx E_y. For encoder inputs {x: (B, ...), y: (B, ...)}
    ``forward`` returns, for each direction a -> b: ``tr_a2b`` the logits of the translation,
    ``fake_b`` its values (probabilities for masks, what the critic of b sees and the cycle
    re-encodes) and ``cyc_a`` the logits of a -> b -> a.

    A module of its own so that DistributedDataParallel and ``torch.compile`` see the whole
    generator computation of a step as one forward.
    """

    def __init__(self, generators: Generators, x: Domain, y: Domain) -> None:
        super().__init__()
        self.generators = generators
        self.x, self.y = x, y

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for a, b in ((self.x, self.y), (self.y, self.x)):
            logits = _map(self.generators, a.name, b.name, inputs[a.name])
            fake = b.activate(logits)
            out[f"tr_{a.name}2{b.name}"] = logits
            out[f"fake_{b.name}"] = fake
            out[f"cyc_{a.name}"] = _map(self.generators, b.name, a.name, fake)
        return out
