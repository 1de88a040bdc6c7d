import pytest

from lsmseg.methods import Lambdas, method_stages

D = ["image", "label"]


def test_presets_switch_the_papers_terms() -> None:
    assert method_stages("basic", D)[0].weights == {"sup_image2label": 10.0}
    assert set(method_stages("sop", D)[0].weights) == {"sup_image2label", "rec_image", "rec_label"}
    lsm = set(method_stages("lsm", D)[0].weights)
    assert lsm == {
        "sup_image2label",
        "sup_label2image",
        "lat_image2label",
        "lat_label2image",
        "adv_image",
        "adv_label",
        "rec_image",
        "rec_label",
    }
    assert [s.name for s in method_stages("ioda", D)] == ["pretrain_x", "pretrain_y", "finetune"]


def test_ablation_code_is_lat_adv_reverse_rec() -> None:
    assert method_stages("lsm0000", D)[0].weights == method_stages("basic", D)[0].weights
    assert set(method_stages("lsm1000", D)[0].weights) == {
        "sup_image2label",
        "lat_image2label",
        "lat_label2image",
    }
    assert set(method_stages("lsm0001", D)[0].weights) == {"sup_image2label", "rec_image", "rec_label"}


def test_lambdas_weight_the_terms() -> None:
    w = method_stages("lsm", D, Lambdas(sup=3.0, lat=0.5))[0].weights
    assert w["sup_image2label"] == 3.0 and w["lat_label2image"] == 0.5


def test_unknown_names_fail_with_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="valid: basic, sop, ioda, lsm"):
        method_stages("lsmx", D)
    with pytest.raises(ValueError, match="valid: rec, sup, reverse, lat, adv"):
        Lambdas.from_dict({"cycle": 1.0})
