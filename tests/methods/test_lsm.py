"""LSM's networks: one auto-encoder per domain, a link per ordered pair, a latent critic per domain."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lsmseg.methods import Domain, LatentSpaceMapping, Plan, Term, method_stages
from lsmseg.methods.lsm import Rows


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


def _plan_rows() -> Rows:
    """rec x and sup x -> y on 4 rows: x on rows 0, 1, 3 and y on rows 0, 2, 3 (paired: 0, 3)."""
    plan = Plan.for_terms([Term("rec", "x"), Term("sup", "x", "y")], ["x", "y"])
    present = {"x": torch.tensor([True, True, False, True]), "y": torch.tensor([True, False, True, True])}
    return plan.rows(present)


def test_plan_rows_index_each_output_on_the_rows_its_terms_read() -> None:
    rows = _plan_rows()
    x_rows, paired = (("x",), ()), (("x", "y"), ())
    as_lists = {k: v.tolist() for k, v in rows.index.items()}
    assert as_lists == {x_rows: [0, 1, 3], paired: [0, 3]}
    # l_x on rows 0, 1, 3 of the batch; h_x2y on rows 0 and 3, i.e. positions 0 and 2 of l_x's rows;
    # rec_x and tr_x2y on all of their parents' rows (nothing to select).
    assert {k: v.tolist() for k, v in rows.take.items()} == {"l_x": [0, 1, 3], "h_x2y": [0, 2]}
    assert {k: v.tolist() for k, v in rows.at.items()} == {("l_x", paired): [0, 2]}  # sup reads l_x paired
    every = [*rows.take.values(), *rows.at.values(), *rows.index.values()]
    assert {v.untyped_storage().data_ptr() for v in every} == {every[0].untyped_storage().data_ptr()}


class _Copies(TorchDispatchMode):
    """Counts copies from one device to another."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is torch.ops.aten._to_copy.default and out.device != args[0].device:
            self.n += 1
        return out


def test_rows_travel_to_the_device_in_one_copy() -> None:
    rows = _plan_rows()
    assert rows.to(torch.device("cpu")) is rows  # already where the step reads them
    with _Copies() as copies:
        moved = rows.to(torch.device("meta"))  # a device without memory: shapes, no values
    assert copies.n == 1
    for before, after in [(rows.take, moved.take), (rows.at, moved.at), (rows.index, moved.index)]:
        assert {k: (v.device.type, v.shape) for k, v in after.items()} == {
            k: ("meta", v.shape) for k, v in before.items()
        }
