"""Pix2Pix and CycleGAN baselines on LSM's generators (lsm_method.md, "Baselines").

Both baselines translate with the networks LSM trains, so the comparison varies only the
objective: the generator x -> y is D_y(h_xy(E_x(x))) (``LatentSpaceMapping.forward``) and
CycleGAN's second generator y -> x is D_x(h_yx(E_y(y))). What they add are image-space
PatchGAN critics (``lsmseg.networks.PatchDiscriminator``, one per judged domain). The critics
are owned by the training step, not by :class:`LatentSpaceMapping`, so ``model.pt`` stays the
state dict that inference loads.

- Pix2Pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
  Networks"): a conditional critic on concat(x, y), vanilla GAN (BCE on logits) plus the
  supervised term, paired rows only.
- CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
  Adversarial Networks"): one unconditional critic per domain, least-squares GAN (Mao et al.
  2017, the CycleGAN reference's ``lsgan``) and the cycle terms; x comes from rows that have x
  and y from rows that have y, so the pairing is never read.

Values a critic sees: images as they are in [0, 1]; masks as class probabilities (translations)
or one-hot maps (real labels); a landmark vector (B, 2K) repeated over the image plane to
(B, 2K, H, W) (the LSM paper's appendix B). Left out on purpose: CycleGAN's identity loss (only
defined when both domains have the same channels: an image and a mask do not) and its image
pool of 50 past fakes (the reference's ``pool_size=0`` setting).

Each step has the interface ``SemiSupervisedTrainer`` dispatches to (``lsmseg.engines.trainer``):
``generators`` (the module one forward runs), ``critics``, ``forward``, ``critic_loss`` and
``generator_terms``, with every term masked per row as LSM's (``lsmseg.losses``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from lsmseg.losses import bce_per_row, masked_mean, mse_per_row
from lsmseg.methods.config import Stage
from lsmseg.methods.domains import Domain
from lsmseg.methods.lsm import Batch, Generators, LatentSpaceMapping, Plan
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


def _plane_size(batch: Batch, domains: list[Domain]) -> tuple[int, int]:
    """(H, W) of the first spatial domain in the batch: the plane a landmark vector covers."""
    for d in domains:
        values = batch.inputs[d.name]
        if values.ndim == 4:
            return int(values.shape[-2]), int(values.shape[-1])
    raise ValueError("image-space critics need at least one image or mask domain")


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


class Pix2PixStep:
    """Pix2Pix (Isola et al. 2017) on LSM's main translation G = D_y h_xy E_x.

    min_G max_D  L_cGAN(G, D) + lambda L_sup(G), with
    L_cGAN = E[log D(x, y)] + E[log(1 - D(x, G(x)))] on paired rows, and L_sup the domain's
    output loss (cross-entropy for masks, L1 for images, MSE for landmarks) against y. lambda is
    ``Lambdas.sup`` (10), the supervised weight of every method here; the reference's 100 weighs
    an L1 image loss, a different scale from a mask's cross-entropy.
    The generator side uses the non-saturating form BCE(D(x, G(x)), 1); the critic's objective
    is halved, as in the reference, to slow the critic relative to the generator.

    Terms: ``sup_x2y`` (supervised, paired rows) and ``gan_y`` (conditional GAN, paired rows).

    Args:
        network: the LSM module whose main translation is the generator.
        ndf: critic width; n_layers: PatchGAN layers (reference: 64, 3).
        gan_loss: ``bce`` (the pix2pix reference's ``vanilla``) or ``lsgan``.
    """

    betas = GAN_BETAS

    def __init__(
        self, network: LatentSpaceMapping, ndf: int = 64, n_layers: int = 3, gan_loss: GanLoss = "bce"
    ) -> None:
        self.x, self.y = network.source, network.target
        self.gan_loss = check_gan_loss(gan_loss)
        self.generators: nn.Module = network.generators
        # The critic judges the pair: source values and target values, stacked on channels.
        self.critics: nn.Module = ImageCritics(
            {self.y.name: self.x.channels + self.y.channels}, ndf, n_layers
        )
        self.link = f"{self.x.name}2{self.y.name}"
        self.plan = Plan.for_terms({f"sup_{self.link}": 1.0}, network.names)  # E_x, h_xy, D_y only

    def begin(self, stage: Stage) -> None:
        """Nothing changes between stages (Pix2Pix has one)."""

    def forward(self, generators: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """The one generator forward: ``tr_x2y`` logits of G(x) (plus ``l_x``, ``h_x2y``)."""
        return generators(batch.inputs, self.plan)

    def _pair(self, batch: Batch, y_values: torch.Tensor) -> torch.Tensor:
        """Critic input concat(x, y): (B, C_x + C_y, H, W) for y values (B, C_y, H, W) or (B, C_y)."""
        x = batch.inputs[self.x.name]
        return as_planes([x, y_values], _plane_size(batch, [self.x, self.y]))

    def critic_loss(
        self, critics: nn.Module, out: dict[str, torch.Tensor], batch: Batch, terms: Mapping[str, float]
    ) -> torch.Tensor:
        """0.5 [BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)] on paired rows, G(x) detached."""
        y = self.y.name
        rows = batch.present[self.x.name] & batch.present[y]
        fake = self._pair(batch, self.y.activate(out[f"tr_{self.link}"]).detach())
        real = self._pair(batch, batch.inputs[y])
        logits = critics({y: torch.cat([fake, real])})[y]  # one critic call for both
        n = fake.shape[0]
        return 0.5 * (
            masked_mean(gan_per_row(logits[:n], 0.0, self.gan_loss), rows)
            + masked_mean(gan_per_row(logits[n:], 1.0, self.gan_loss), rows)
        )

    def generator_terms(
        self, critics: nn.Module, out: dict[str, torch.Tensor], batch: Batch, terms: Mapping[str, float]
    ) -> dict[str, torch.Tensor]:
        """Unweighted ``sup_x2y`` and ``gan_y`` (scalars), each over the paired rows only."""
        x, y = self.x.name, self.y.name
        rows = batch.present[x] & batch.present[y]
        losses: dict[str, torch.Tensor] = {}
        for term in terms:
            if term == f"sup_{self.link}":
                per_row = self.y.loss_per_row(out[f"tr_{self.link}"], batch.views[y], rows)
                losses[term] = masked_mean(per_row, rows)
            elif term == f"gan_{y}":
                fake = self._pair(batch, self.y.activate(out[f"tr_{self.link}"]))
                losses[term] = masked_mean(gan_per_row(critics({y: fake})[y], 1.0, self.gan_loss), rows)
            else:
                raise ValueError(f"Pix2Pix has no loss term {term!r}")
        return losses


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


class CycleGANStep:
    """CycleGAN (Zhu et al. 2017) on LSM's networks: two generators, two critics, two cycles.

    L = L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda_cyc (L_cyc(x) + L_cyc(y)) with
    L_cyc(x) = loss_x(F(G(x)), x) (L1 for images; for masks the domain's cross-entropy against
    the original labels). Each critic D_b sees real b from the rows that have b and translations
    into b from the rows that have the other domain; no term puts a row's x next to its y, so
    paired rows count as one x and one y, never as a pair. Critic objective halved as in the
    reference.

    Terms: ``gan_x``, ``gan_y`` (generator side of each GAN) and ``cyc_x``, ``cyc_y``.

    Args:
        network: the LSM module; its first two domains are X and Y.
        ndf: critic width; n_layers: PatchGAN layers (reference: 64, 3).
        gan_loss: ``lsgan`` (the CycleGAN reference) or ``bce``.
    """

    betas = GAN_BETAS

    def __init__(
        self, network: LatentSpaceMapping, ndf: int = 64, n_layers: int = 3, gan_loss: GanLoss = "lsgan"
    ) -> None:
        self.x, self.y = network.source, network.target
        self.gan_loss = check_gan_loss(gan_loss)
        self.generators: nn.Module = CycleGenerators(network.generators, self.x, self.y)
        self.critics: nn.Module = ImageCritics({d.name: d.channels for d in (self.x, self.y)}, ndf, n_layers)
        self.domains = {d.name: d for d in (self.x, self.y)}
        self.other = {self.x.name: self.y, self.y.name: self.x}

    def begin(self, stage: Stage) -> None:
        """Nothing changes between stages (CycleGAN has one)."""

    def forward(self, generators: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """The one generator forward: both translations and both cycles (see CycleGenerators)."""
        return generators({d: batch.inputs[d] for d in (self.x.name, self.y.name)})

    def _judged(self, terms: Mapping[str, float]) -> list[str]:
        """Domains b with a ``gan_b`` term, i.e. whose critic trains and judges."""
        return [t[4:] for t in terms if t.startswith("gan_")]

    def critic_loss(
        self, critics: nn.Module, out: dict[str, torch.Tensor], batch: Batch, terms: Mapping[str, float]
    ) -> torch.Tensor:
        """Sum over judged domains b of 0.5 [GAN(D_b(v_b), 1) + GAN(D_b(fake_b), 0)], fakes detached."""
        size = _plane_size(batch, [self.x, self.y])
        judged = self._judged(terms)
        # Fakes then reals, every critic in one call: one DDP forward for the one backward.
        inputs = {
            b: as_planes([torch.cat([out[f"fake_{b}"].detach(), batch.inputs[b]])], size) for b in judged
        }
        logits = critics(inputs)
        total = torch.zeros((), device=batch.inputs[self.x.name].device)
        for b in judged:
            a, n = self.other[b].name, out[f"fake_{b}"].shape[0]
            total = total + 0.5 * (
                masked_mean(gan_per_row(logits[b][:n], 0.0, self.gan_loss), batch.present[a])
                + masked_mean(gan_per_row(logits[b][n:], 1.0, self.gan_loss), batch.present[b])
            )
        return total

    def generator_terms(
        self, critics: nn.Module, out: dict[str, torch.Tensor], batch: Batch, terms: Mapping[str, float]
    ) -> dict[str, torch.Tensor]:
        """Unweighted ``gan_b`` (rows with the source a) and ``cyc_a`` (rows with a), scalars."""
        p = batch.present
        size = _plane_size(batch, [self.x, self.y])
        logits = critics({b: as_planes([out[f"fake_{b}"]], size) for b in self._judged(terms)})
        losses: dict[str, torch.Tensor] = {}
        for term in terms:
            kind, _, d = term.partition("_")
            if kind == "gan" and d in self.other:
                losses[term] = masked_mean(gan_per_row(logits[d], 1.0, self.gan_loss), p[self.other[d].name])
            elif kind == "cyc" and d in self.other:
                per_row = self.domains[d].loss_per_row(out[f"cyc_{d}"], batch.views[d], p[d])
                losses[term] = masked_mean(per_row, p[d])
            else:
                raise ValueError(f"CycleGAN has no loss term {term!r}")
        return losses
