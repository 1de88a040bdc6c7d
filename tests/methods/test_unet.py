"""The supervised U-Net baseline: its size against basic's path, the rows it reads, its record."""

import pytest
import torch

from lsmseg.engines.record import ModelRecord
from lsmseg.keys import Mode
from lsmseg.methods import (
    Domain,
    LatentSpaceMapping,
    SegmentationUNet,
    Step,
    UNetStep,
    make_step,
    method_stages,
)
from lsmseg.methods.registry import network_for
from lsmseg.methods.unet import unet_channels
from tests.helpers.methods import MIXED, mixed_batch, tiny_lsm

DOMAINS = [
    {"name": "image", "kind": "image", "channels": 1},
    {"name": "label", "kind": "mask", "channels": 3},
]
LSM_RECORD = {
    "name": "LatentSpaceMapping",
    "args": {"domains": DOMAINS, "ngf": 4, "ndf": 4, "image_size": 32},
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny_unet() -> SegmentationUNet:
    torch.manual_seed(0)
    return SegmentationUNet(DOMAINS, ngf=4)


def step_losses_and_grads(
    step: Step, method: str, raw: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Every generator term (by name) of one step and the gradients of their sum by parameter."""
    model = step.network
    terms = method_stages(method, model.names)[0].weights
    model.zero_grad(set_to_none=True)
    batch = step.batch(raw)
    out = step.forward(step.generators, batch)
    losses = {t.name: v for t, v in step.generator_terms(step.critics, out, batch, terms).items()}
    torch.stack(list(losses.values())).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


@pytest.mark.parametrize("ngf", [8, 64])
@pytest.mark.parametrize("classes", [2, 4])
def test_parameter_count_is_that_of_basics_translation_path(ngf: int, classes: int) -> None:
    domains = [Domain("image", "image", 1), Domain("label", "mask", classes)]
    lsm = LatentSpaceMapping(domains, ngf=ngf, ndf=4, image_size=64).generators
    path = _count(lsm.encoders["image"]) + _count(lsm.links["image2label"]) + _count(lsm.decoders["label"])
    ratio = _count(SegmentationUNet(domains, ngf=ngf)) / path
    assert 0.5 <= ratio <= 2.0 and abs(ratio - 1.055) < 0.01, ratio  # 1.05-1.06x, see lsmseg.methods.unet


def test_forward_gives_the_shape_lsm_gives() -> None:
    x = torch.rand(3, 1, 32, 32)
    assert tiny_unet()(x).shape == tiny_lsm()(x).shape == (3, 3, 32, 32)
    assert unet_channels(8) == (8, 16, 32, 64)


def test_the_unet_method_has_one_supervised_term_and_its_own_step() -> None:
    (stage,) = method_stages("unet", ["image", "label"])
    assert [t.name for t in stage.weights] == ["sup_image2label"] and stage.weights == {
        t: 10.0 for t in stage.weights
    }
    assert stage.step == "unet" and stage.trains("image", "label") and not stage.adversarial
    step = make_step(stage.step, tiny_unet())  # type: ignore[arg-type]
    assert isinstance(step, UNetStep) and list(step.critics.parameters()) == []


def test_lsm_networks_are_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="network_for"):
        make_step("unet", tiny_lsm())
    with pytest.raises(ValueError, match=r"domains must be \(image, mask\)"):
        SegmentationUNet([{"name": "image", "kind": "image", "channels": 1}] * 2)


def test_only_paired_rows_reach_the_loss_and_the_gradient() -> None:
    step = make_step("unet", tiny_unet())  # type: ignore[arg-type]
    raw = mixed_batch()
    losses, grads = step_losses_and_grads(step, "unet", raw)
    assert losses["sup_image2label"] > 0 and len(grads) == len(list(step.network.parameters()))

    changed = {k: v.clone() for k, v in raw.items()}
    changed["image"][2:] = torch.rand(4, 1, 32, 32) * 7  # every non-paired row, both views
    changed["label"][2:] = torch.randint(0, 3, (4, 1, 32, 32))
    losses2, grads2 = step_losses_and_grads(step, "unet", changed)
    assert torch.equal(losses["sup_image2label"], losses2["sup_image2label"])
    assert all(torch.equal(grads[n], grads2[n]) for n in grads)

    changed["image"][0] = 1 - changed["image"][0]  # a paired row does count
    losses3, _ = step_losses_and_grads(step, "unet", changed)
    assert not torch.equal(losses["sup_image2label"], losses3["sup_image2label"])


def test_a_batch_without_paired_rows_gives_zero_loss_and_zero_gradients() -> None:
    step = make_step("unet", tiny_unet())  # type: ignore[arg-type]
    losses, grads = step_losses_and_grads(step, "unet", mixed_batch([Mode.X_ONLY, Mode.Y_ONLY]))
    assert float(losses["sup_image2label"]) == 0.0
    assert grads and all(float(g.abs().sum()) == 0.0 for g in grads.values())


def test_the_paired_rows_come_from_the_host_modes() -> None:
    step = make_step("unet", tiny_unet())  # type: ignore[arg-type]
    raw = mixed_batch()
    device_view = {**raw, "mode": torch.full_like(raw["mode"], int(Mode.Y_ONLY))}  # ignored: host wins
    batch = step.batch(device_view, raw)
    assert batch.index["paired"].tolist() == [i for i, m in enumerate(MIXED) if m == Mode.PAIRED]  # type: ignore[attr-defined]


def test_network_for_picks_the_unet_record_and_keeps_lsm_for_every_other_method() -> None:
    for method in ("lsm", "basic", "ioda", "pix2pix", "lsm0101"):
        assert network_for(method, LSM_RECORD) == LSM_RECORD
    record = network_for("unet", LSM_RECORD)
    assert record == {"name": "SegmentationUNet", "args": {"domains": DOMAINS, "ngf": 4}}
    net = ModelRecord(network=record).build()  # what evaluation and inference do
    assert isinstance(net, SegmentationUNet) and _count(net) == _count(tiny_unet())
