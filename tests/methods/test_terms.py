"""Loss terms as values, presets as data: which terms each method switches on, and how strongly."""

import pytest

from lsmseg.methods import Lambdas, Term, method_stages
from lsmseg.methods.lsm import Plan

D = ["image", "label"]


def _names(method: str, lambdas: Lambdas | None = None, domains: list[str] = D) -> dict[str, float]:
    return {t.name: w for t, w in method_stages(method, domains, lambdas)[0].weights.items()}


def test_presets_switch_the_papers_terms() -> None:
    assert _names("basic") == {"sup_image2label": 10.0}
    assert _names("sop") == {"sup_image2label": 10.0, "rec_image": 1.0, "rec_label": 1.0}
    assert set(_names("lsm")) == {
        "sup_image2label",
        "sup_label2image",
        "lat_image2label",
        "lat_label2image",
        "adv_image",
        "adv_label",
        "rec_image",
        "rec_label",
    }
    ioda = method_stages("ioda", D)
    assert [s.name for s in ioda] == ["pretrain_x", "pretrain_y", "finetune"]
    assert [s.weights for s in ioda] == [
        {Term("rec", "image"): 1.0},
        {Term("rec", "label"): 1.0},
        {Term("sup", "image", "label"): 10.0},
    ]
    assert all(
        s.step == "latent" for m in ("basic", "sop", "ioda", "lsm", "lsm1010") for s in method_stages(m, D)
    )


def test_gan_presets_name_their_terms_and_step() -> None:
    pix = method_stages("pix2pix", D)
    assert len(pix) == 1 and pix[0].step == "pix2pix"
    assert _names("pix2pix") == {"sup_image2label": 10.0, "gan_label": 1.0}
    cyc = method_stages("cyclegan", D, Lambdas(cyc=5.0))[0]
    assert cyc.step == "cyclegan"
    assert _names("cyclegan", Lambdas(cyc=5.0)) == {
        "gan_image": 1.0,
        "gan_label": 1.0,
        "cyc_image": 5.0,
        "cyc_label": 5.0,
    }
    assert pix[0].adversarial and cyc.adversarial and not method_stages("basic", D)[0].adversarial
    # Validation scores x -> y by its metric for every method that trains it, CycleGAN included.
    assert cyc.trains("image", "label") and pix[0].trains("image", "label")
    assert not method_stages("ioda", D)[0].trains("image", "label")
    assert _names("pix2pix", Lambdas(gan=0.0)) == {"sup_image2label": 10.0}  # zero weight: off


def test_ablation_code_is_lat_adv_reverse_rec() -> None:
    assert _names("lsm0000") == _names("basic")
    assert set(_names("lsm1000")) == {"sup_image2label", "lat_image2label", "lat_label2image"}
    assert set(_names("lsm0001")) == {"sup_image2label", "rec_image", "rec_label"}
    assert set(_names("lsm0100")) == {"sup_image2label", "adv_image", "adv_label"}


def test_lambdas_weight_the_terms() -> None:
    w = method_stages("lsm", D, Lambdas(sup=3.0, lat=0.5, reverse=2.0))[0].weights
    assert w[Term("sup", "image", "label")] == 3.0 and w[Term("lat", "label", "image")] == 0.5
    assert w[Term("sup", "label", "image")] == 2.0


def test_a_domain_name_with_a_2_is_a_domain_not_a_separator() -> None:
    """Terms are values: ``t2w`` (an MRI sequence) stays one domain in every term and plan."""
    stage = method_stages("lsm", ["t2w", "label"])[0]
    assert Term("sup", "t2w", "label") in stage.weights and Term("adv", "t2w") in stage.weights
    plan = Plan.for_terms(stage.weights, ["t2w", "label"])
    assert plan.encode == {"t2w", "label"} and plan.translate == {("t2w", "label"), ("label", "t2w")}
    assert plan.reconstruct == {"t2w", "label"}


def test_terms_check_their_domains() -> None:
    assert Term("sup", "a", "b").name == "sup_a2b" and Term("rec", "a").name == "rec_a"
    assert Term("sup", "x", "y").bind({"x": "ct", "y": "mask"}) == Term("sup", "ct", "mask")
    assert (
        Term("adv", "a").adversarial
        and Term("gan", "a").adversarial
        and not Term("lat", "a", "b").adversarial
    )
    with pytest.raises(ValueError, match="two different domains"):
        Term("sup", "a")
    with pytest.raises(ValueError, match="reads one domain"):
        Term("rec", "a", "b")
    with pytest.raises(ValueError, match="valid: sup, lat, rec, adv, gan, cyc"):
        Term("l1", "a")  # type: ignore[arg-type]


def test_unknown_names_fail_with_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="valid: basic, sop, ioda, lsm, pix2pix, cyclegan, lsmABCD"):
        method_stages("lsmx", D)
    with pytest.raises(ValueError, match="valid: rec, sup, reverse, lat, adv, gan, cyc"):
        Lambdas.from_dict({"cycle": 1.0})
    with pytest.raises(ValueError, match="at least two domains"):
        method_stages("lsm", ["image"])
