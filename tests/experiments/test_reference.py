"""The authors' step: two full forwards, a critic backward through the generators, masked terms."""

import torch

from lsmseg.experiments.reference import ReferenceStep, time_reference_steps
from lsmseg.keys import Mode
from tests.helpers.methods import mixed_batch, tiny_lsm


def test_each_step_runs_two_forwards_on_every_row() -> None:
    """6 rows, 2 of them y-only: the image encoder still sees all 6, twice per step."""
    net = tiny_lsm()
    seen: list[int] = []
    net.generators.encoders["image"].register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    step = ReferenceStep(net)
    step(mixed_batch())
    assert seen == [6, 6]


def test_the_critic_backward_runs_through_the_generators() -> None:
    """When the critic optimiser steps, the generators hold gradients of the critic loss."""
    net = tiny_lsm()
    step = ReferenceStep(net)
    at_critic_step: list[bool] = []
    original = step.critic_optimizer.step

    def spy(*args, **kwargs):
        at_critic_step.append(any(p.grad is not None and p.grad.any() for p in net.generators.parameters()))
        return original(*args, **kwargs)

    step.critic_optimizer.step = spy  # type: ignore[method-assign]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    loss = step(mixed_batch())
    assert at_critic_step == [True] and torch.isfinite(loss)
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("generators.") for k in changed) and any(
        k.startswith("critics.") for k in changed
    )


def test_a_supervised_method_has_no_critic_update() -> None:
    net = tiny_lsm()
    seen: list[int] = []
    net.generators.encoders["image"].register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    step = ReferenceStep(net, method="basic")
    wall, cpu = time_reference_steps(step, mixed_batch([Mode.PAIRED, Mode.X_ONLY]), warmup=1, steps=2)
    assert seen == [2, 2, 2] and len(wall) == len(cpu) == 2  # one forward per step, 3 steps
