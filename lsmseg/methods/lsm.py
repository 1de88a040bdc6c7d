"""Latent Space Mapping (Mayet et al., IJCNN 2023) for N >= 2 domains.

One auto-encoder (E_d, D_d) per domain, one link network h_ab per ordered pair of domains, one
latent critic per domain. Translation a -> b is D_b(h_ab(E_a(v_a))). The loss terms and their
row masks are those of ``lsm_method.md``; which terms are on is decided by a method's stage
(``lsmseg.methods.config``), so basic, SOP, IODA and LSM are the same module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from lsmseg.keys import Keys, Mode
from lsmseg.losses import bce_per_row, l1_per_row, masked_mean
from lsmseg.methods.domains import Domain
from lsmseg.networks import LinkNetwork, PatchDiscriminator


def _link(a: str, b: str) -> str:
    return f"{a}2{b}"


@dataclass(frozen=True)
class Plan:
    """What one training forward must compute for a set of weighted terms."""

    encode: frozenset[str] = frozenset()
    links: frozenset[tuple[str, str]] = frozenset()
    reconstruct: frozenset[str] = frozenset()
    translate: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def for_terms(cls, terms: Mapping[str, float], domains: Sequence[str]) -> Plan:
        """Derive the minimal set of encodings, links and decodings the terms read."""
        enc: set[str] = set()
        links: set[tuple[str, str]] = set()
        rec: set[str] = set()
        tr: set[tuple[str, str]] = set()
        for term in terms:
            kind, _, arg = term.partition("_")
            if kind == "rec":
                enc.add(arg)
                rec.add(arg)
            elif kind in ("sup", "lat"):
                a, b = arg.split("2")
                enc.update((a, b) if kind == "lat" else (a,))
                links.add((a, b))
                if kind == "sup":
                    tr.add((a, b))
            elif kind == "adv":
                enc.update(domains)
                links.update((a, arg) for a in domains if a != arg)
            else:
                raise ValueError(f"unknown loss term {term!r}")
        return cls(frozenset(enc), frozenset(links), frozenset(rec), frozenset(tr))


class Generators(nn.Module):
    """All encoders, decoders and link networks; ``forward`` runs one training plan.

    Kept apart from the critics so each group can be wrapped in its own
    DistributedDataParallel (the critic and the generator are updated by separate backwards).
    """

    def __init__(
        self,
        domains: Sequence[Domain],
        ngf: int,
        n_blocks: int,
        n_down: int,
        link_blocks: int,
        image_size: int,
    ) -> None:
        super().__init__()
        latent_size = image_size // 2**n_down
        self.encoders = nn.ModuleDict(
            {d.name: d.make_encoder(ngf, n_blocks, n_down, latent_size) for d in domains}
        )
        self.decoders = nn.ModuleDict(
            {d.name: d.make_decoder(ngf, n_blocks, n_down, latent_size) for d in domains}
        )
        latent_channels = ngf * 2**n_down
        self.links = nn.ModuleDict(
            {
                _link(a.name, b.name): LinkNetwork(latent_channels, link_blocks)
                for a in domains
                for b in domains
                if a.name != b.name
            }
        )

    def forward(self, inputs: dict[str, torch.Tensor], plan: Plan) -> dict[str, torch.Tensor]:
        """Run the plan on encoder inputs {domain: (B, ...)}.

        Returns:
            ``l_<d>``: latent (B, C_l, h, w); ``h_<a>2<b>``: mapped latent h_ab(l_a);
            ``rec_<d>``: reconstruction logits; ``tr_<a>2<b>``: translation logits.
        """
        out: dict[str, torch.Tensor] = {}
        for d in sorted(plan.encode):
            out[f"l_{d}"] = self.encoders[d](inputs[d])
        for a, b in sorted(plan.links):
            out[f"h_{_link(a, b)}"] = self.links[_link(a, b)](out[f"l_{a}"])
        for d in sorted(plan.reconstruct):
            out[f"rec_{d}"] = self.decoders[d](out[f"l_{d}"])
        for a, b in sorted(plan.translate):
            out[f"tr_{_link(a, b)}"] = self.decoders[b](out[f"h_{_link(a, b)}"])
        return out

    def translate(self, values: torch.Tensor, a: Domain, b: Domain) -> torch.Tensor:
        """Logits of D_b(h_ab(E_a(v_a))) for values (B, ...) of domain a."""
        return self.decoders[b.name](
            self.links[_link(a.name, b.name)](self.encoders[a.name](a.to_input(values)))
        )


class LatentCritics(nn.Module):
    """One PatchGAN critic per domain on its latent map; ``forward`` scores codes per domain."""

    def __init__(self, domains: Sequence[Domain], latent_channels: int, ndf: int, n_layers: int) -> None:
        super().__init__()
        self.critics = nn.ModuleDict(
            {d.name: PatchDiscriminator(latent_channels, ndf, n_layers) for d in domains}
        )

    def forward(self, codes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{domain: codes (B, C_l, h, w)} -> {domain: patch logits (B, 1, h', w')}."""
        return {d: self.critics[d](z) for d, z in codes.items()}


@dataclass
class Batch:
    """Views and presence of a training batch: views {domain: (B, ...)}, present {domain: (B,) bool}."""

    views: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)


class LatentSpaceMapping(nn.Module):
    """N-domain LSM; ``forward(x)`` is the main translation x -> y (logits), as bundles expect.

    Args:
        domains: the domains, main translation first: (x, y, ...).
        ngf: generator width (64 in the paper).
        n_blocks: residual blocks in each encoder and decoder (3 + 3 = resnet_6blocks).
        n_down: stride-2 steps of the encoders (latent = image / 2**n_down).
        link_blocks: residual blocks of each link network (1 in the reference).
        ndf: latent critic width (64 in the reference).
        critic_layers: PatchGAN layers of the latent critics; None picks the most that leave a
            >= 2x2 logit map (3 on the paper's 32x32 latent, 2 on a 16x16 latent).
        image_size: spatial size of image domains (sets the latent size of vector domains).
        adversarial: ``confusion`` (paper: critic on 1/0, generator against 0.5) or ``bce``
            (standard GAN, the reference's default).
    """

    def __init__(
        self,
        domains: Sequence[Domain],
        ngf: int = 64,
        n_blocks: int = 3,
        n_down: int = 2,
        link_blocks: int = 1,
        ndf: int = 64,
        critic_layers: int | None = None,
        image_size: int = 128,
        adversarial: Literal["confusion", "bce"] = "confusion",
    ) -> None:
        super().__init__()
        from lsmseg.methods.config import check_adversarial

        if len(domains) < 2:
            raise ValueError("LatentSpaceMapping needs at least two domains")
        self.domains = {d.name: d for d in domains}
        self.names = [d.name for d in domains]
        self.adversarial = check_adversarial(adversarial)
        self.generators = Generators(domains, ngf, n_blocks, n_down, link_blocks, image_size)
        latent_size = image_size // 2**n_down
        if critic_layers is None:
            critic_layers = max(1, math.floor(math.log2(latent_size / 3)))
        self.critics = LatentCritics(domains, ngf * 2**n_down, ndf, critic_layers)

    @property
    def source(self) -> Domain:
        return self.domains[self.names[0]]

    @property
    def target(self) -> Domain:
        return self.domains[self.names[1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Main translation: x (B, ...) -> logits of y (B, C, H, W) (or (B, 2K) for landmarks)."""
        return self.generators.translate(x, self.source, self.target)

    # --- training -------------------------------------------------------------------------
    def make_batch(self, batch: Mapping[str, torch.Tensor]) -> Batch:
        """Read views and per-row presence from a collated batch.

        Presence comes from ``batch["present"]`` (B, N) when given (N domains), else from the
        row ``Mode`` (two domains): PAIRED has both, X_ONLY only x, Y_ONLY only y.
        """
        views = {d: batch[d] for d in self.names}
        if "present" in batch:
            present_bn = batch["present"].to(torch.bool)
            present = {d: present_bn[:, i] for i, d in enumerate(self.names)}
        else:
            mode = batch[Keys.MODE].reshape(-1)
            present = {
                self.names[0]: (mode == Mode.PAIRED) | (mode == Mode.X_ONLY),
                self.names[1]: (mode == Mode.PAIRED) | (mode == Mode.Y_ONLY),
            }
        inputs = {d: self.domains[d].to_input(v) for d, v in views.items()}
        return Batch(views, present, inputs)

    def adversarial_pairs(self, b: str, batch: Batch) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """For critic b: (a, fake rows: a without b, real rows: b without a) for each a != b."""
        return [
            (a, batch.present[a] & ~batch.present[b], batch.present[b] & ~batch.present[a])
            for a in self.names
            if a != b
        ]

    def _critic_scores(
        self, critics: nn.Module, b: str, out: dict[str, torch.Tensor], batch: Batch, detach: bool
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Score fakes h_ab(l_a) and reals l_b in one critic call per pair: (fake, real, rows...)."""
        scores = []
        for a, fake_rows, real_rows in self.adversarial_pairs(b, batch):
            fake, real = out[f"h_{_link(a, b)}"], out[f"l_{b}"]
            codes = torch.cat([fake, real]).detach() if detach else torch.cat([fake, real])
            logits = critics({b: codes})[b]
            n = fake.shape[0]
            scores.append((logits[:n], logits[n:], fake_rows, real_rows))
        return scores

    def critic_loss(
        self, critics: nn.Module, out: dict[str, torch.Tensor], batch: Batch, terms: Mapping[str, float]
    ) -> torch.Tensor:
        """Critic objective on detached codes: real l_b -> 1, mapped h_ab(l_a) -> 0 (unpaired rows)."""
        total = torch.zeros((), device=next(iter(out.values())).device)
        for term in terms:
            if not term.startswith("adv_"):
                continue
            b = term[4:]
            for fake, real, fake_rows, real_rows in self._critic_scores(critics, b, out, batch, detach=True):
                total = total + masked_mean(bce_per_row(fake, 0.0), fake_rows)
                total = total + masked_mean(bce_per_row(real, 1.0), real_rows)
        return total

    def generator_terms(
        self,
        out: dict[str, torch.Tensor],
        batch: Batch,
        terms: Mapping[str, float],
        critics: nn.Module | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unweighted loss terms (scalars), each masked by the rows that have its views."""
        critics = critics if critics is not None else self.critics
        p, v = batch.present, batch.views
        losses: dict[str, torch.Tensor] = {}
        for term in terms:
            kind, _, arg = term.partition("_")
            if kind == "rec":
                dom = self.domains[arg]
                losses[term] = masked_mean(dom.loss_per_row(out[f"rec_{arg}"], v[arg], p[arg]), p[arg])
            elif kind == "sup":
                a, b = arg.split("2")
                rows = p[a] & p[b]
                losses[term] = masked_mean(self.domains[b].loss_per_row(out[f"tr_{arg}"], v[b], rows), rows)
            elif kind == "lat":
                a, b = arg.split("2")
                rows = p[a] & p[b]
                losses[term] = masked_mean(l1_per_row(out[f"h_{arg}"].float(), out[f"l_{b}"].float()), rows)
            elif kind == "adv":
                loss = torch.zeros((), device=out[f"l_{arg}"].device)
                for fake, real, fake_rows, real_rows in self._critic_scores(
                    critics, arg, out, batch, detach=False
                ):
                    if self.adversarial == "confusion":
                        # Tzeng et al. 2015: both codes pushed towards a critic output of 0.5.
                        loss = loss + masked_mean(bce_per_row(fake, 0.5), fake_rows)
                        loss = loss + masked_mean(bce_per_row(real, 0.5), real_rows)
                    else:
                        loss = loss + masked_mean(bce_per_row(fake, 1.0), fake_rows)
                losses[term] = loss
        return losses
