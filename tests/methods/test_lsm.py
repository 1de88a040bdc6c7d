"""LSM's masked semi-supervised losses: hidden views never reach a loss or a gradient."""

import pytest
import torch

from lsmseg.keys import Mode
from lsmseg.methods import Domain, LatentSpaceMapping, Plan, method_stages


def _model(adversarial: str = "confusion") -> LatentSpaceMapping:
    torch.manual_seed(0)
    domains = [Domain("image", "image", 1), Domain("label", "mask", 3)]
    return LatentSpaceMapping(domains, ngf=4, ndf=4, image_size=32, adversarial=adversarial)  # type: ignore[arg-type]


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "image": torch.rand(6, 1, 32, 32, generator=g),
        "label": torch.randint(0, 3, (6, 1, 32, 32), generator=g),
        "mode": torch.tensor([Mode.PAIRED, Mode.PAIRED, Mode.X_ONLY, Mode.X_ONLY, Mode.Y_ONLY, Mode.Y_ONLY]),
    }


def _losses_and_grads(model: LatentSpaceMapping, raw: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    terms = method_stages("lsm", model.names)[0].weights
    model.zero_grad(set_to_none=True)
    batch = model.make_batch(raw)
    out = model.generators(batch.inputs, Plan.for_terms(terms, model.names))
    losses = model.generator_terms(out, batch, terms)
    losses["critic"] = model.critic_loss(model.critics, out, batch, terms)
    torch.stack(list(losses.values())).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


@pytest.mark.parametrize("adversarial", ["confusion", "bce"])
def test_hidden_views_change_no_loss_and_no_gradient(adversarial: str) -> None:
    model = _model(adversarial)
    raw = _batch()
    losses, grads = _losses_and_grads(model, raw)
    assert all(torch.isfinite(v) for v in losses.values())
    assert len(grads) > 0 and all(float(g.abs().sum()) > 0 for g in list(grads.values())[:3])

    changed = {k: v.clone() for k, v in raw.items()}
    changed["label"][2:4] = torch.randint(0, 3, (2, 1, 32, 32))  # hidden y of the x-only rows
    changed["image"][4:6] = torch.rand(2, 1, 32, 32) * 7  # hidden x of the y-only rows
    losses2, grads2 = _losses_and_grads(model, changed)

    for k in losses:
        assert torch.equal(losses[k], losses2[k]), k
    for n in grads:
        assert torch.equal(grads[n], grads2[n]), n


def test_visible_views_do_change_the_loss() -> None:
    """The counterpart: the test above would pass trivially if no view mattered."""
    model = _model()
    raw = _batch()
    losses, _ = _losses_and_grads(model, raw)
    changed = {k: v.clone() for k, v in raw.items()}
    changed["label"][4] = 1 - changed["label"][4].clamp(max=1)  # a y-only row's real y
    losses2, _ = _losses_and_grads(model, changed)
    assert not torch.equal(losses["rec_label"], losses2["rec_label"])


def test_terms_without_rows_are_zero() -> None:
    model = _model()
    raw = _batch()
    raw["mode"] = torch.full((6,), int(Mode.X_ONLY))
    losses, _ = _losses_and_grads(model, raw)
    assert float(losses["sup_image2label"]) == 0.0 and float(losses["lat_image2label"]) == 0.0
    assert float(losses["rec_image"]) > 0.0


def test_three_domains_have_a_link_per_ordered_pair_and_train() -> None:
    domains = [Domain("ct", "image", 1), Domain("mask", "mask", 2), Domain("mr", "image", 1)]
    model = LatentSpaceMapping(domains, ngf=4, ndf=4, image_size=32)
    assert len(model.generators.links) == 6 and len(model.critics.critics) == 3
    terms = method_stages("lsm", model.names)[0].weights
    assert "sup_mr2mask" in terms and "adv_mr" in terms
    raw = {
        "ct": torch.rand(3, 1, 32, 32),
        "mask": torch.randint(0, 2, (3, 1, 32, 32)),
        "mr": torch.rand(3, 1, 32, 32),
        "present": torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 1]], dtype=torch.bool),
    }
    batch = model.make_batch(raw)
    out = model.generators(batch.inputs, Plan.for_terms(terms, model.names))
    loss = torch.stack(list(model.generator_terms(out, batch, terms).values())).sum()
    loss.backward()
    assert torch.isfinite(loss)
    assert model(torch.rand(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_basic_plan_computes_only_the_translation() -> None:
    plan = Plan.for_terms(method_stages("basic", ["image", "label"])[0].weights, ["image", "label"])
    assert plan.encode == {"image"} and plan.translate == {("image", "label")} and not plan.reconstruct
