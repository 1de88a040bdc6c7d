"""Training steps behind one interface: what a step's forward computes, what its critics judge.

``SemiSupervisedTrainer`` (``lsmseg.engines.trainer``) runs every step the same way: read the
batch, one generator forward, a critic update on detached outputs, the masked loss terms, a
generator update. A :class:`Step` supplies those pieces for one method family (``Stage.step``):

- :class:`LatentStep`: LSM and its presets (basic, SOP, IODA, the ablations): encode, map,
  decode what the stage's terms read; latent critics.
- :class:`Pix2PixStep` (Isola et al. 2017, "Image-to-Image Translation with Conditional
  Adversarial Networks"): a conditional image-space critic on concat(x, y), vanilla GAN (BCE on
  logits) plus the supervised term, paired rows only.
- :class:`CycleGANStep` (Zhu et al. 2017, "Unpaired Image-to-Image Translation using
  Cycle-Consistent Adversarial Networks"): one unconditional critic per domain, least-squares
  GAN (Mao et al. 2017, the reference's ``lsgan``) and the cycle terms; x comes from rows that
  have x and y from rows that have y, so the pairing is never read.

The GAN baselines translate with the networks LSM trains (the generator x -> y is
D_y(h_xy(E_x(x)))), so the comparison varies only the objective; their image-space critics
belong to the step, not to :class:`LatentSpaceMapping`, so ``model.pt`` stays the state dict
inference loads. Every term is masked per row (``lsmseg.losses``): a hidden view never reaches
a loss or a gradient.
"""

from __future__ import annotations

import functools
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lsmseg.keys import Keys, Mode
from lsmseg.losses import bce_per_row, l1_per_row, masked_mean, rows_mean
from lsmseg.methods.domains import Domain
from lsmseg.methods.gan import (
    GAN_BETAS,
    CycleGenerators,
    GanLoss,
    ImageCritics,
    as_planes,
    check_gan_loss,
    gan_per_row,
)
from lsmseg.methods.lsm import LatentSpaceMapping, Plan, Rows, RowSet, adversarial_rows
from lsmseg.methods.terms import Stage, StepKind, Term

Outputs = dict[str, torch.Tensor]  # named outputs of a step's forward (``l_x``, ``tr_x2y`` ...)


@dataclass
class Batch:
    """A training batch by domain: views {domain: (B, ...)} as stored, present {domain: (B,) bool},
    inputs {domain: encoder input (B, ...)} (one-hot masks), and for the latent step the rows
    each output is computed on (:class:`~lsmseg.methods.lsm.Rows`, on the device)."""

    views: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    rows: Rows | None = None


def presence(raw: Mapping[str, torch.Tensor], names: list[str]) -> dict[str, torch.Tensor]:
    """{domain: (B,) bool} from ``raw["present"]`` (B, N) when given (N domains), else from the
    row ``Mode`` (two domains): PAIRED has both, X_ONLY only x, Y_ONLY only y."""
    if "present" in raw:
        present_bn = raw["present"].to(torch.bool)
        return {d: present_bn[:, i] for i, d in enumerate(names)}
    mode = raw[Keys.MODE].reshape(-1)
    return {
        names[0]: (mode == Mode.PAIRED) | (mode == Mode.X_ONLY),
        names[1]: (mode == Mode.PAIRED) | (mode == Mode.Y_ONLY),
    }


class Step(ABC):
    """A method family's training step, as ``SemiSupervisedTrainer._iteration`` runs it.

    ``generators`` is the module the step's one forward runs and ``critics`` the module its
    critic update trains; the trainer wraps both (DistributedDataParallel, ``torch.compile``)
    and passes the wrapped modules back in. Terms map :class:`Term` to weight; the losses the
    step returns are unweighted scalars, masked by the rows that have the term's views.
    """

    betas: tuple[float, float]  # the family's reference Adam betas
    generators: nn.Module
    critics: nn.Module

    def __init__(self, network: LatentSpaceMapping) -> None:
        self.network = network

    def batch(self, raw: Mapping[str, torch.Tensor], host: Mapping[str, Any] | None = None) -> Batch:
        """Views and per-row presence (:func:`presence`) of a collated batch (on the device).

        ``host`` is the same batch before its copy to the device: steps that index rows read
        the modes from it, so the GPU never waits for the host to learn them.
        """
        names, domains = self.network.names, self.network.domains
        views = {d: raw[d] for d in names}
        inputs = {d: domains[d].to_input(v) for d, v in views.items()}
        return Batch(views, presence(raw, names), inputs)

    def begin(self, stage: Stage) -> None:  # noqa: B027 - a hook: only the latent step needs it
        """Prepare for a stage's terms (the latent step derives its forward plan)."""

    def attach(self, engine: Any) -> None:  # noqa: B027 - a hook: only Mean Teacher needs it
        """Register per-iteration handlers on the trainer (Mean Teacher: EMA update, ramp-up)."""

    @abstractmethod
    def forward(self, generators: nn.Module, batch: Batch) -> Outputs:
        """The one generator forward of a step: named outputs."""

    @abstractmethod
    def critic_loss(
        self, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
    ) -> torch.Tensor:
        """Critic objective on detached generator outputs (scalar)."""

    @abstractmethod
    def generator_terms(
        self, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
    ) -> dict[Term, torch.Tensor]:
        """Unweighted, row-masked loss terms of the generators (scalars)."""


class LatentStep(Step):
    """LSM's step (and basic, SOP, IODA): the stage's plan through the generators, latent critics.

    Terms: ``rec`` (reconstruction, rows with the view), ``sup`` (translation, paired rows),
    ``lat`` (L1 between h_ab(l_a) and l_b, paired rows), ``adv`` (latent adversarial;
    ``network.adversarial`` picks confusion, BCE or minimax and ``network.adversarial_rows`` the
    rows: unpaired or all), see ``lsm_method.md``.

    Each encoder, link and decoder runs only on the rows some term reads, and each critic only
    on the unpaired rows it judges (:meth:`Plan.rows`): the losses and gradients are those of
    the masked terms on full batches (``lsmseg.experiments.reference``), at a fraction of the
    FLOPs. A term without rows runs its networks on an empty batch: its loss is 0 and every
    parameter it reaches still gets a (zero) gradient, as in the masked step, so an fp16 loss
    scaler sees the same parameters and optimiser state stays in step.
    """

    betas = (0.9, 0.999)  # the LSM reference

    def __init__(self, network: LatentSpaceMapping) -> None:
        super().__init__(network)
        self.generators = network.generators
        self.critics = network.critics
        self.plan = Plan()

    def begin(self, stage: Stage) -> None:
        """Compute only the encodings, links and decodings the stage's terms read."""
        self.plan = Plan.for_terms(stage.weights, self.network.names, self.network.adversarial_rows)

    def batch(self, raw: Mapping[str, torch.Tensor], host: Mapping[str, Any] | None = None) -> Batch:
        """The batch and its row indices, built from the host's modes (``host``) when given;
        else from ``raw``'s (one device sync on a GPU)."""
        batch = super().batch(raw, host)
        present = presence(host if host is not None else raw, self.network.names)
        device = next(iter(batch.views.values())).device
        batch.rows = self.plan.rows({d: p.cpu() for d, p in present.items()}).to(device)
        return batch

    def forward(self, generators: nn.Module, batch: Batch) -> Outputs:
        """Encode, map, decode: ``l_d``, ``h_a2b``, ``rec_d``, ``tr_a2b`` on their rows."""
        return generators(batch.inputs, self.plan, _rows(batch).take)

    def _critic_scores(
        self, critics: nn.Module, b: str, out: Outputs, batch: Batch, detach: bool
    ) -> list[tuple[torch.Tensor, torch.Tensor, int, int]]:
        """For critic b and each a != b: logits of fakes h_ab(l_a) and reals l_b on the rows of
        :func:`~lsmseg.methods.lsm.adversarial_rows` (one critic call per pair), and their counts."""
        rows = _rows(batch)
        scores = []
        for a in self.network.names:
            if a == b:
                continue
            fake_rows, real_rows = adversarial_rows(a, b, self.network.adversarial_rows)
            fake, real = rows.read(out, f"h_{a}2{b}", fake_rows), rows.read(out, f"l_{b}", real_rows)
            codes = torch.cat([fake, real]).detach() if detach else torch.cat([fake, real])
            logits = critics({b: codes})[b]
            n = rows.count(fake_rows)
            scores.append((logits[:n], logits[n:], n, rows.count(real_rows)))
        return scores

    def critic_loss(
        self, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
    ) -> torch.Tensor:
        """Latent critics: real l_b -> 1, mapped h_ab(l_a) -> 0, codes detached."""
        parts = []
        for term in terms:
            if term.kind != "adv":
                continue
            for fake, real, n_fake, n_real in self._critic_scores(critics, term.a, out, batch, True):
                parts += [
                    rows_mean(bce_per_row(fake, 0.0), n_fake),
                    rows_mean(bce_per_row(real, 1.0), n_real),
                ]
        return _total(parts, next(iter(out.values())).device)

    def _adversarial(self, critics: nn.Module, b: str, out: Outputs, batch: Batch) -> torch.Tensor:
        """Generator side of L_adv on domain b's latent space."""
        parts = []
        for fake, real, n_fake, n_real in self._critic_scores(critics, b, out, batch, False):
            if self.network.adversarial == "confusion":
                # Tzeng et al. 2015: both codes pushed towards a critic output of 0.5.
                parts += [
                    rows_mean(bce_per_row(fake, 0.5), n_fake),
                    rows_mean(bce_per_row(real, 0.5), n_real),
                ]
            elif self.network.adversarial == "minimax":
                # The reference's default: maximise the critic's error on fakes (saturating).
                parts.append(-rows_mean(bce_per_row(fake, 0.0), n_fake))
            else:
                parts.append(rows_mean(bce_per_row(fake, 1.0), n_fake))
        return _total(parts, out[f"l_{b}"].device)

    def _output_loss(self, out: Outputs, name: str, d: str, rows_of: RowSet, batch: Batch) -> torch.Tensor:
        """Domain d's output loss of decoder output ``name`` against d's views, on ``rows_of``."""
        rows = _rows(batch)
        logits, target = rows.read(out, name, rows_of), rows.gather(batch.views[d], rows_of)
        n = rows.count(rows_of)
        every = torch.ones(n, dtype=torch.bool, device=logits.device)  # all these rows have d
        batch_size = batch.views[d].shape[0]  # the reference mask loss scales its weights by it
        return rows_mean(self.network.domains[d].loss_per_row(logits, target, every, batch_size), n)

    def generator_terms(
        self, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
    ) -> dict[Term, torch.Tensor]:
        """L_rec, L_sup, L_lat, L_adv as switched on by the stage."""
        rows = _rows(batch)
        losses: dict[Term, torch.Tensor] = {}
        for term in terms:
            a, b = term.a, term.b
            if term.kind == "rec":
                losses[term] = self._output_loss(out, f"rec_{a}", a, ((a,), ()), batch)
            elif term.kind == "sup" and b is not None:
                losses[term] = self._output_loss(out, f"tr_{a}2{b}", b, ((a, b), ()), batch)
            elif term.kind == "lat" and b is not None:
                paired: RowSet = ((a, b), ())
                mapped, target = rows.read(out, f"h_{a}2{b}", paired), rows.read(out, f"l_{b}", paired)
                losses[term] = rows_mean(l1_per_row(mapped.float(), target.float()), rows.count(paired))
            elif term.kind == "adv":
                losses[term] = self._adversarial(critics, a, out, batch)
            else:
                raise ValueError(f"the latent step has no loss term {term.name!r}")
        return losses


def _total(parts: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Sum of scalar losses, left to right (the value of 0 + p0 + p1 ...), or 0 when none: no
    zero tensor to start from, one op and one autograd node fewer per sum."""
    return functools.reduce(operator.add, parts) if parts else torch.zeros((), device=device)


def _rows(batch: Batch) -> Rows:
    if batch.rows is None:
        raise ValueError("a latent step batch needs its rows: build it with LatentStep.batch")
    return batch.rows


def _plane_size(batch: Batch, domains: list[Domain]) -> tuple[int, int]:
    """(H, W) of the first spatial domain in the batch: the plane a landmark vector covers."""
    for d in domains:
        values = batch.inputs[d.name]
        if values.ndim == 4:
            return int(values.shape[-2]), int(values.shape[-1])
    raise ValueError("image-space critics need at least one image or mask domain")


class Pix2PixStep(Step):
    """Pix2Pix (Isola et al. 2017) on LSM's main translation G = D_y h_xy E_x.

    min_G max_D  L_cGAN(G, D) + lambda L_sup(G), with
    L_cGAN = E[log D(x, y)] + E[log(1 - D(x, G(x)))] on paired rows, and L_sup the domain's
    output loss (cross-entropy for masks, L1 for images, MSE for landmarks) against y. lambda is
    ``Lambdas.sup`` (10), the supervised weight of every method here; the reference's 100 weighs
    an L1 image loss, a different scale from a mask's cross-entropy.
    The generator side uses the non-saturating form BCE(D(x, G(x)), 1); the critic's objective
    is halved, as in the reference, to slow the critic relative to the generator.

    Terms: ``sup x -> y`` (supervised, paired rows) and ``gan y`` (conditional GAN, paired rows).

    Args:
        network: the LSM module whose main translation is the generator.
        ndf: critic width; n_layers: PatchGAN layers (reference: 64, 3).
        gan_loss: ``bce`` (the pix2pix reference's ``vanilla``) or ``lsgan``.
    """

    betas = GAN_BETAS

    def __init__(
        self, network: LatentSpaceMapping, ndf: int = 64, n_layers: int = 3, gan_loss: GanLoss = "bce"
    ) -> None:
        super().__init__(network)
        self.x, self.y = network.source, network.target
        self.gan_loss = check_gan_loss(gan_loss)
        self.generators = network.generators
        # The critic judges the pair: source values and target values, stacked on channels.
        self.critics = ImageCritics({self.y.name: self.x.channels + self.y.channels}, ndf, n_layers)
        self.sup, self.gan = Term("sup", self.x.name, self.y.name), Term("gan", self.y.name)
        self.plan = Plan.for_terms([self.sup], network.names)  # E_x, h_xy, D_y only
        self.logits = f"tr_{self.x.name}2{self.y.name}"

    def forward(self, generators: nn.Module, batch: Batch) -> Outputs:
        """The one generator forward: ``tr_x2y`` logits of G(x) (plus ``l_x``, ``h_x2y``)."""
        return generators(batch.inputs, self.plan)

    def _pair(self, batch: Batch, y_values: torch.Tensor) -> torch.Tensor:
        """Critic input concat(x, y): (B, C_x + C_y, H, W) for y values (B, C_y, H, W) or (B, C_y)."""
        x = batch.inputs[self.x.name]
        return as_planes([x, y_values], _plane_size(batch, [self.x, self.y]))

    def critic_loss(
        self, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
    ) -> torch.Tensor:
        """0.5 [GAN(D(x, y), 1) + GAN(D(x, G(x)), 0)] on paired rows, G(x) detached."""
        y = self.y.name
        rows = batch.present[self.x.name] & batch.present[y]
        fake = self._pair(batch, self.y.activate(out[self.logits]).detach())
        real = self._pair(batch, batch.inputs[y])
        logits = critics({y: torch.cat([fake, real])})[y]  # one critic call for both
        n = fake.shape[0]
        return 0.5 * (
            masked_mean(gan_per_row(logits[:n], 0.0, self.gan_loss), rows)
            + masked_mean(gan_per_row(logits[n:], 1.0, self.gan_loss), rows)
        )

    def generator_terms(
        self, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
    ) -> dict[Term, torch.Tensor]:
        """Unweighted ``sup x -> y`` and ``gan y`` (scalars), each over the paired rows only."""
        y = self.y.name
        rows = batch.present[self.x.name] & batch.present[y]
        losses: dict[Term, torch.Tensor] = {}
        for term in terms:
            if term == self.sup:
                losses[term] = masked_mean(self.y.loss_per_row(out[self.logits], batch.views[y], rows), rows)
            elif term == self.gan:
                fake = self._pair(batch, self.y.activate(out[self.logits]))
                losses[term] = masked_mean(gan_per_row(critics({y: fake})[y], 1.0, self.gan_loss), rows)
            else:
                raise ValueError(f"Pix2Pix has no loss term {term.name!r}")
        return losses


class CycleGANStep(Step):
    """CycleGAN (Zhu et al. 2017) on LSM's networks: two generators, two critics, two cycles.

    L = L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda_cyc (L_cyc(x) + L_cyc(y)) with
    L_cyc(x) = loss_x(F(G(x)), x) (L1 for images; for masks the domain's cross-entropy against
    the original labels). Each critic D_b sees real b from the rows that have b and translations
    into b from the rows that have the other domain; no term puts a row's x next to its y, so
    paired rows count as one x and one y, never as a pair. Critic objective halved as in the
    reference.

    Terms: ``gan x``, ``gan y`` (generator side of each GAN) and ``cyc x``, ``cyc y``.

    Args:
        network: the LSM module; its first two domains are X and Y.
        ndf: critic width; n_layers: PatchGAN layers (reference: 64, 3).
        gan_loss: ``lsgan`` (the CycleGAN reference) or ``bce``.
    """

    betas = GAN_BETAS

    def __init__(
        self, network: LatentSpaceMapping, ndf: int = 64, n_layers: int = 3, gan_loss: GanLoss = "lsgan"
    ) -> None:
        super().__init__(network)
        self.x, self.y = network.source, network.target
        self.gan_loss = check_gan_loss(gan_loss)
        self.generators = CycleGenerators(network.generators, self.x, self.y)
        self.critics = ImageCritics({d.name: d.channels for d in (self.x, self.y)}, ndf, n_layers)
        self.domains = {d.name: d for d in (self.x, self.y)}
        self.other = {self.x.name: self.y, self.y.name: self.x}

    def forward(self, generators: nn.Module, batch: Batch) -> Outputs:
        """The one generator forward: both translations and both cycles (see CycleGenerators)."""
        return generators({d: batch.inputs[d] for d in (self.x.name, self.y.name)})

    def _judged(self, terms: Mapping[Term, float]) -> list[str]:
        """Domains b with a ``gan b`` term, i.e. whose critic trains and judges."""
        return [t.a for t in terms if t.kind == "gan"]

    def critic_loss(
        self, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
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
        self, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
    ) -> dict[Term, torch.Tensor]:
        """Unweighted ``gan b`` (rows with the source a) and ``cyc a`` (rows with a), scalars."""
        p = batch.present
        size = _plane_size(batch, [self.x, self.y])
        logits = critics({b: as_planes([out[f"fake_{b}"]], size) for b in self._judged(terms)})
        losses: dict[Term, torch.Tensor] = {}
        for term in terms:
            d = term.a
            if term.kind == "gan" and d in self.other:
                losses[term] = masked_mean(gan_per_row(logits[d], 1.0, self.gan_loss), p[self.other[d].name])
            elif term.kind == "cyc" and d in self.other:
                per_row = self.domains[d].loss_per_row(out[f"cyc_{d}"], batch.views[d], p[d])
                losses[term] = masked_mean(per_row, p[d])
            else:
                raise ValueError(f"CycleGAN has no loss term {term.name!r}")
        return losses


# Steps of the families that bring their own network (``lsmseg.methods.unet``, ``.meanteacher``):
# kind -> factory(network), filled by those modules when ``lsmseg.methods`` is imported.
STEP_FACTORIES: dict[str, Callable[[Any], Step]] = {}


def register_step(kind: str, factory: Callable[[Any], Step]) -> None:
    """Make :func:`make_step` build ``factory(network)`` for stages of step ``kind``."""
    STEP_FACTORIES[kind] = factory


def make_step(
    kind: StepKind, network: LatentSpaceMapping, ndf: int = 64, n_layers: int = 3, gan_loss: str | None = None
) -> Step:
    """The step of a method family (``Stage.step``); ``ndf``, ``n_layers``, ``gan_loss`` configure
    the image-space critics of Pix2Pix (default ``bce``) and CycleGAN (default ``lsgan``)."""
    if kind in STEP_FACTORIES:
        return STEP_FACTORIES[kind](network)
    if kind == "pix2pix":
        return Pix2PixStep(network, ndf, n_layers, check_gan_loss(gan_loss or "bce"))
    if kind == "cyclegan":
        return CycleGANStep(network, ndf, n_layers, check_gan_loss(gan_loss or "lsgan"))
    return LatentStep(network)
