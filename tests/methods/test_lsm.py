"""LSM's networks: one auto-encoder per domain, a link per ordered pair, a latent critic per domain."""

import pytest
import torch

from lsmseg.methods import Domain, LatentSpaceMapping, Plan, Term, method_stages


def test_three_domains_have_a_link_per_ordered_pair() -> None:
    domains = [Domain("ct", "image", 1), Domain("mask", "mask", 2), Domain("mr", "image", 1)]
    model = LatentSpaceMapping(domains, ngf=4, ndf=4, image_size=32)
    assert set(model.generators.links) == {"ct2mask", "ct2mr", "mask2ct", "mask2mr", "mr2ct", "mr2mask"}
    assert set(model.critics.critics) == {"ct", "mask", "mr"}
    assert model(torch.rand(1, 1, 32, 32)).shape == (1, 2, 32, 32)  # main translation ct -> mask logits


def test_link_names_that_collide_fail() -> None:
    """Links are named ``<a>2<b>`` in model.pt: domains "a2" and "2b" would share "a22b"."""
    with pytest.raises(ValueError, match="same name"):
        LatentSpaceMapping(
            [
                Domain("a", "image", 1),
                Domain("a2", "image", 1),
                Domain("2b", "mask", 2),
                Domain("b", "mask", 2),
            ],
            ngf=4,
            ndf=4,
            image_size=32,
        )


def test_basic_plan_computes_only_the_translation() -> None:
    plan = Plan.for_terms(method_stages("basic", ["image", "label"])[0].weights, ["image", "label"])
    assert plan.encode == {"image"} and plan.translate == {("image", "label")} and not plan.reconstruct
    assert plan.links == {("image", "label")}


def test_adversarial_plan_maps_every_other_domain_into_the_judged_one() -> None:
    plan = Plan.for_terms([Term("adv", "b")], ["a", "b", "c"])
    assert plan.encode == {"a", "b", "c"} and plan.links == {("a", "b"), ("c", "b")}
    with pytest.raises(ValueError, match="no loss term 'gan_b'"):
        Plan.for_terms([Term("gan", "b")], ["a", "b"])


def test_generators_forward_runs_the_plan() -> None:
    torch.manual_seed(0)
    model = LatentSpaceMapping(
        [Domain("image", "image", 1), Domain("label", "mask", 3)], ngf=4, ndf=4, image_size=32
    )
    plan = Plan.for_terms([Term("sup", "image", "label"), Term("rec", "label")], model.names)
    inputs = {"image": torch.rand(2, 1, 32, 32), "label": torch.rand(2, 3, 32, 32)}
    out = model.generators(inputs, plan)
    assert set(out) == {"l_image", "l_label", "h_image2label", "tr_image2label", "rec_label"}
    assert out["l_image"].shape == (2, 16, 8, 8)  # ngf * 2**n_down channels, 32 / 2**2 pixels
    assert torch.equal(out["tr_image2label"], model(inputs["image"]))


def test_nhwc_head_reaches_every_image_decoder_and_keeps_the_state_dict() -> None:
    domains = [Domain("image", "image", 1), Domain("label", "mask", 3)]
    torch.manual_seed(0)
    plain = LatentSpaceMapping(domains, ngf=4, ndf=4, image_size=32)
    torch.manual_seed(0)
    fast = LatentSpaceMapping(domains, ngf=4, ndf=4, image_size=32, nhwc_head=True)
    assert all(d.nhwc_head for d in fast.generators.decoders.values())
    assert plain.state_dict().keys() == fast.state_dict().keys()
    x = torch.rand(2, 1, 32, 32)
    assert torch.allclose(plain(x), fast(x), atol=1e-6)
