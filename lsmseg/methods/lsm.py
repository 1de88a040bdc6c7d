"""Latent Space Mapping (Mayet et al., IJCNN 2023) for N >= 2 domains.

One auto-encoder (E_d, D_d) per domain, one link network h_ab per ordered pair of domains, one
latent critic per domain. Translation a -> b is D_b(h_ab(E_a(v_a))). The loss terms and their
row masks are those of ``lsm_method.md``; which terms are on is decided by a method's stage
(``lsmseg.methods.terms``) and the losses are computed by the latent step
(``lsmseg.methods.steps.LatentStep``), so basic, SOP, IODA and LSM are the same module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from lsmseg.methods.domains import Domain
from lsmseg.methods.terms import Term, check_adversarial
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
    def for_terms(cls, terms: Iterable[Term], domains: Sequence[str]) -> Plan:
        """Derive the minimal set of encodings, links and decodings the terms read."""
        enc: set[str] = set()
        links: set[tuple[str, str]] = set()
        rec: set[str] = set()
        tr: set[tuple[str, str]] = set()
        for term in terms:
            if term.kind == "rec":
                enc.add(term.a)
                rec.add(term.a)
            elif term.kind in ("sup", "lat") and term.b is not None:
                a, b = term.a, term.b
                enc.update((a, b) if term.kind == "lat" else (a,))
                links.add((a, b))
                if term.kind == "sup":
                    tr.add((a, b))
            elif term.kind == "adv":
                enc.update(domains)
                links.update((a, term.a) for a in domains if a != term.a)
            else:
                raise ValueError(f"the latent step has no loss term {term.name!r}")
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
        pairs = [(a.name, b.name) for a in domains for b in domains if a.name != b.name]
        if len({_link(a, b) for a, b in pairs}) != len(pairs):
            # The state dict names a link "<a>2<b>": names such as "a2" and "2b" would collide.
            raise ValueError(f"domain names {[d.name for d in domains]} give two links the same name")
        self.links = nn.ModuleDict({_link(a, b): LinkNetwork(latent_channels, link_blocks) for a, b in pairs})

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
