"""The objective overlays: configs/paper.json, reference.json (and reference_balance.json) set
the five objective options and the lambdas the bundle's training reads; ``read_overlay`` is how
code outside the bundle (benchmarks, these tests) gets their settings."""

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from lsmseg.bundle.overlays import OBJECTIVE, objective, read_overlay

REPO = Path(__file__).resolve().parents[2]
SSS = ["lsm_sss", "sop_sss", "ioda_sss"]


def _overlay(bundle: str, name: str) -> dict:
    return read_overlay(REPO / "bundles" / bundle / "configs" / f"{name}.json")


def _resolved(bundle: str, *overlays: str) -> dict:
    configs = REPO / "bundles" / bundle / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / "train.json"), *(str(configs / o) for o in overlays)])
    return {k: parser[k] for k in (*OBJECTIVE, "lambdas")}


def test_the_overlays_hold_the_paper_and_the_reference_objective() -> None:
    """Known answers (lsm_method.md, "Reference code vs paper"); every bundle's copy is the same file."""
    paper, reference, balance = (_overlay("lsm_sss", n) for n in ("paper", "reference", "reference_balance"))
    assert objective(paper) == {
        "sup_loss": "ce",
        "adversarial": "confusion",
        "adversarial_rows": "unpaired",
        "sampling": "balanced",
        "unpaired": "disjoint",
    }
    assert objective(reference) == {
        "sup_loss": "reference",
        "adversarial": "minimax",
        "adversarial_rows": "all",
        "sampling": "epoch",
        "unpaired": "shared",
    }
    assert objective(balance) == objective(reference) | {"sup_loss": "ce"}  # no double softmax
    assert (paper["lambdas"]["sup"], reference["lambdas"]["sup"], balance["lambdas"]["sup"]) == (
        10.0,
        10.0,
        0.75,
    )
    assert "_comment" not in paper and set(paper) == {*OBJECTIVE, "lambdas"}
    for bundle in ["lsm_sit", *SSS]:
        assert [_overlay(bundle, n) for n in ("paper", "reference")] == [paper, reference]
    assert all(_overlay(bundle, "reference_balance") == balance for bundle in SSS)


@pytest.mark.parametrize("bundle", ["lsm_sit", *SSS])
def test_paper_and_reference_overlays_set_every_option(bundle: str) -> None:
    for name in ("paper", "reference"):
        assert _resolved(bundle, f"{name}.json") == _overlay(bundle, name)


def test_lsm_sit_default_is_the_reference_balance_without_the_double_softmax() -> None:
    """The default reproduces the reference's behaviour with a logits CE: sup 0.75 is the
    reference's supervised weight in logits-CE units (lsm_method.md)."""
    default = _resolved("lsm_sit")
    assert objective(default) == objective(_overlay("lsm_sss", "reference_balance"))
    assert default["lambdas"]["sup"] == 0.75 and default["lambdas"]["reverse"] == 10.0


@pytest.mark.parametrize("bundle", SSS)
def test_sss_bundles_keep_the_paper_objective_and_offer_the_balance(bundle: str) -> None:
    assert objective(_resolved(bundle)) == objective(_overlay(bundle, "paper"))
    assert objective(_resolved(bundle, "reference_balance.json")) == objective(
        _overlay(bundle, "reference_balance")
    )
    text = json.loads((REPO / "bundles" / bundle / "configs" / "reference_balance.json").read_text())
    assert "lsm_sit default" in text["_comment"]


def test_an_unreadable_overlay_is_named(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"list\.json is not a JSON object"):
        read_overlay(tmp_path / "list.json")
    with pytest.raises(ValueError, match=r"cannot read the overlay .*missing\.json"):
        read_overlay(tmp_path / "missing.json")
