"""Tiny LSM networks and mixed batches for the methods and engines tests (32 px, ngf 4)."""

from collections.abc import Sequence
from typing import Any

import torch

from lsmseg.keys import Mode
from lsmseg.methods import Domain, LatentSpaceMapping, Step, method_stages

# Two rows of each kind, so every term and every critic has rows to read.
MIXED = [Mode.PAIRED, Mode.PAIRED, Mode.X_ONLY, Mode.X_ONLY, Mode.Y_ONLY, Mode.Y_ONLY]


def tiny_lsm(
    domains: Sequence[Domain] | None = None, size: int = 32, adversarial: str = "confusion", **options: Any
) -> LatentSpaceMapping:
    """LSM on image (1 channel) -> label (3 classes) unless ``domains`` are given; seeded.
    ``options``: the objective's other settings (``adversarial_rows``, ``sup_loss``)."""
    torch.manual_seed(0)
    domains = domains or [Domain("image", "image", 1), Domain("label", "mask", 3)]
    return LatentSpaceMapping(domains, ngf=4, ndf=4, image_size=size, adversarial=adversarial, **options)  # type: ignore[arg-type]


def mixed_batch(modes: Sequence[Mode] = MIXED, seed: int = 1, classes: int = 3) -> dict[str, torch.Tensor]:
    """A collated batch: ``image`` (B, 1, 32, 32) in [0, 1], ``label`` (B, 1, 32, 32), ``mode`` (B,)."""
    g = torch.Generator().manual_seed(seed)
    n = len(modes)
    return {
        "image": torch.rand(n, 1, 32, 32, generator=g),
        "label": torch.randint(0, classes, (n, 1, 32, 32), generator=g),
        "mode": torch.tensor([int(m) for m in modes]),
    }


def losses_and_grads(
    step: Step, method: str, raw: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Every generator term (by name) and the critic loss of one step of ``method``, and the
    gradients of their sum by parameter name (image critics prefixed ``critic.``)."""
    model = step.network
    terms = method_stages(method, model.names)[0].weights
    model.zero_grad(set_to_none=True)
    step.critics.zero_grad(set_to_none=True)
    batch = step.batch(raw)
    out = step.forward(step.generators, batch)
    losses = {t.name: v for t, v in step.generator_terms(step.critics, out, batch, terms).items()}
    losses["critic"] = step.critic_loss(step.critics, out, batch, terms)
    torch.stack(list(losses.values())).sum().backward()
    params = dict(model.named_parameters())
    if step.critics is not model.critics:
        params.update({"critic." + n: p for n, p in step.critics.named_parameters()})
    grads = {n: p.grad.clone() for n, p in params.items() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads
