"""The reference training step: what the authors' LSM step does, on lsmseg's networks.

``lsmseg bench`` times it beside :class:`~lsmseg.methods.steps.LatentStep` in the same run, so
the speed-up is a ratio measured side by side. Per batch the authors' step

1. runs every encoder, link and decoder of the method's terms on every row (forward 1),
2. updates the latent critics with a loss on the codes that are *not* detached, so the
   critic's backward runs through the generators too (their gradients are then discarded),
3. runs the generators again (forward 2) and updates them on the loss terms, each masked per
   row (a row without a term's views contributes 0): the rows are computed, then thrown away.

The masked terms here are also the definition the row-only step is tested against: the same
losses and gradients (:func:`masked_terms`, :func:`masked_critic_loss`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torch import nn

from lsmseg.engines.trainer import adam
from lsmseg.experiments.flops import sync
from lsmseg.losses import bce_per_row, l1_per_row, masked_mean
from lsmseg.methods import LatentSpaceMapping, Plan, Term, method_stages
from lsmseg.methods.steps import Batch, Outputs, presence

Scores = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


def full_batch(network: LatentSpaceMapping, raw: Mapping[str, torch.Tensor]) -> Batch:
    """Views, presence and encoder inputs of every row (no row indices: every row is computed)."""
    views = {d: raw[d] for d in network.names}
    inputs = {d: network.domains[d].to_input(v) for d, v in views.items()}
    return Batch(views, presence(raw, network.names), inputs)


def _scores(
    network: LatentSpaceMapping, critics: nn.Module, b: str, out: Outputs, batch: Batch, detach: bool
) -> Scores:
    """For critic b and each a != b: logits of h_ab(l_a) and l_b on every row, and the masks of
    the fake rows and the real rows: (a without b) and (b without a) with ``unpaired``
    adversarial rows, every row with a and every row with b with ``all``."""
    p = batch.present
    scores = []
    for a in network.names:
        if a != b:
            codes = torch.cat([out[f"h_{a}2{b}"], out[f"l_{b}"]])
            logits = critics({b: codes.detach() if detach else codes})[b]
            n = logits.shape[0] // 2
            if network.adversarial_rows == "all":
                scores.append((logits[:n], logits[n:], p[a], p[b]))
            else:
                scores.append((logits[:n], logits[n:], p[a] & ~p[b], p[b] & ~p[a]))
    return scores


def masked_critic_loss(
    network: LatentSpaceMapping,
    critics: nn.Module,
    out: Outputs,
    batch: Batch,
    terms: Mapping[Term, float],
    detach: bool = True,
) -> torch.Tensor:
    """Latent critics' loss on every row, masked: real l_b -> 1, h_ab(l_a) -> 0 on the rows of
    the network's ``adversarial_rows``. ``detach=False`` is the authors' step."""
    total = torch.zeros((), device=batch.inputs[network.names[0]].device)
    for term in terms:
        if term.kind == "adv":
            for fake, real, fake_rows, real_rows in _scores(network, critics, term.a, out, batch, detach):
                total = total + masked_mean(bce_per_row(fake, 0.0), fake_rows)
                total = total + masked_mean(bce_per_row(real, 1.0), real_rows)
    return total


def _adversarial(
    network: LatentSpaceMapping, critics: nn.Module, b: str, out: Outputs, batch: Batch
) -> torch.Tensor:
    loss = torch.zeros((), device=out[f"l_{b}"].device)
    for fake, real, fake_rows, real_rows in _scores(network, critics, b, out, batch, False):
        if network.adversarial == "confusion":
            loss = loss + masked_mean(bce_per_row(fake, 0.5), fake_rows)
            loss = loss + masked_mean(bce_per_row(real, 0.5), real_rows)
        elif network.adversarial == "minimax":
            loss = loss - masked_mean(bce_per_row(fake, 0.0), fake_rows)
        else:
            loss = loss + masked_mean(bce_per_row(fake, 1.0), fake_rows)
    return loss


def masked_terms(
    network: LatentSpaceMapping, critics: nn.Module, out: Outputs, batch: Batch, terms: Mapping[Term, float]
) -> dict[Term, torch.Tensor]:
    """L_rec, L_sup, L_lat, L_adv on outputs of every row, each masked by the rows that have the
    term's views (lsm_method.md): unweighted scalars."""
    p, v, domains = batch.present, batch.views, network.domains
    losses: dict[Term, torch.Tensor] = {}
    for term in terms:
        a, b = term.a, term.b
        if term.kind == "rec":
            losses[term] = masked_mean(domains[a].loss_per_row(out[f"rec_{a}"], v[a], p[a]), p[a])
        elif term.kind == "sup" and b is not None:
            rows = p[a] & p[b]
            losses[term] = masked_mean(domains[b].loss_per_row(out[f"tr_{a}2{b}"], v[b], rows), rows)
        elif term.kind == "lat" and b is not None:
            rows = p[a] & p[b]
            losses[term] = masked_mean(l1_per_row(out[f"h_{a}2{b}"].float(), out[f"l_{b}"].float()), rows)
        elif term.kind == "adv":
            losses[term] = _adversarial(network, critics, a, out, batch)
        else:
            raise ValueError(f"the latent step has no loss term {term.name!r}")
    return losses


class ReferenceStep:
    """The authors' training step (module docstring) for a method's last stage, with Adam.

    Args:
        network: the LSM module (its generators and latent critics are trained).
        method: the method whose terms are trained (``lsm``: the authors' method).
        learning_rate, betas: Adam settings (LSM reference: 1e-4, (0.9, 0.999)).
    """

    def __init__(
        self,
        network: LatentSpaceMapping,
        method: str = "lsm",
        learning_rate: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:
        self.network = network
        self.stage = method_stages(method, network.names)[-1]
        self.plan = Plan.for_terms(self.stage.weights, network.names, network.adversarial_rows)
        # The trainer's Adam (fused on CUDA): the bench's ratio is then the steps', not the optimisers'.
        self.optimizer = adam(network.generators.parameters(), learning_rate, betas)
        self.critic_optimizer = adam(network.critics.parameters(), learning_rate, betas)

    def __call__(self, raw: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One step on a collated batch (on the network's device); returns the weighted loss."""
        net, weights = self.network, self.stage.weights
        batch = full_batch(net, raw)
        if self.stage.adversarial:
            out = net.generators(batch.inputs, self.plan)  # forward 1, every row
            critic_loss = masked_critic_loss(net, net.critics, out, batch, weights, detach=False)
            self.critic_optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()  # through the critics and the generators
            self.critic_optimizer.step()
        out = net.generators(batch.inputs, self.plan)  # forward 2, every row
        net.critics.requires_grad_(False)
        terms = masked_terms(net, net.critics, out, batch, weights)
        loss = torch.stack([weights[t] * v for t, v in terms.items()]).sum()
        self.optimizer.zero_grad(set_to_none=True)  # also drops the critic backward's gradients
        loss.backward()
        self.optimizer.step()
        net.critics.requires_grad_(True)
        return loss.detach()


def time_reference_steps(
    step: ReferenceStep, batch: Mapping[str, torch.Tensor], warmup: int, steps: int, amp: bool = False
) -> tuple[list[float], list[float]]:
    """Run ``warmup + steps`` reference steps on one batch; wall and process CPU seconds of the
    timed ones (bf16 autocast with ``amp``), the device synchronised around each."""
    device = next(step.network.parameters()).device
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(warmup + steps):
        sync(device)
        w0, c0 = time.perf_counter(), time.process_time()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            step(batch)
        sync(device)
        if i >= warmup:
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
    return wall, cpu


def placed(
    network: LatentSpaceMapping, batch: Mapping[str, torch.Tensor], device: torch.device, channels_last: bool
) -> tuple[ReferenceStep, dict[str, torch.Tensor]]:
    """A reference step on ``network`` moved to ``device`` (NHWC with ``channels_last``), and
    ``batch`` there."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    network = network.to(device, memory_format=fmt)  # type: ignore[call-overload]
    on_device = {k: v.to(device) for k, v in batch.items()}
    return ReferenceStep(network), {
        k: v.contiguous(memory_format=fmt) if v.ndim == 4 else v for k, v in on_device.items()
    }
