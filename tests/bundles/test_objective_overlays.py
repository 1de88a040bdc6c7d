"""The objective overlays: configs/paper.json, reference.json (and reference_balance.json) set
the five objective options and the lambdas the bundle's training reads."""

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

REPO = Path(__file__).resolve().parents[2]
OPTIONS = ("sup_loss", "adversarial", "adversarial_rows", "sampling", "unpaired")
PAPER = {
    "sup_loss": "ce",
    "adversarial": "confusion",
    "adversarial_rows": "unpaired",
    "sampling": "balanced",
    "unpaired": "disjoint",
}
REFERENCE = {
    "sup_loss": "reference",
    "adversarial": "minimax",
    "adversarial_rows": "all",
    "sampling": "epoch",
    "unpaired": "shared",
}
BALANCE = {**REFERENCE, "sup_loss": "ce"}


def _resolved(bundle: str, *overlays: str) -> dict:
    configs = REPO / "bundles" / bundle / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / "train.json"), *(str(configs / o) for o in overlays)])
    return {k: parser[k] for k in (*OPTIONS, "lambdas")}


@pytest.mark.parametrize("bundle", ["lsm_sit", "lsm_sss", "sop_sss", "ioda_sss"])
def test_paper_and_reference_overlays_set_every_option(bundle: str) -> None:
    paper, reference = _resolved(bundle, "paper.json"), _resolved(bundle, "reference.json")
    assert {k: paper[k] for k in OPTIONS} == PAPER and paper["lambdas"]["sup"] == 10.0
    assert {k: reference[k] for k in OPTIONS} == REFERENCE and reference["lambdas"]["sup"] == 10.0


def test_lsm_sit_default_is_the_reference_balance_without_the_double_softmax() -> None:
    """The default reproduces the reference's behaviour with a logits CE: sup 0.75 is the
    reference's supervised weight in logits-CE units (lsm_method.md)."""
    default = _resolved("lsm_sit")
    assert {k: default[k] for k in OPTIONS} == BALANCE
    assert default["lambdas"]["sup"] == 0.75 and default["lambdas"]["reverse"] == 10.0


@pytest.mark.parametrize("bundle", ["lsm_sss", "sop_sss", "ioda_sss"])
def test_sss_bundles_keep_the_paper_objective_and_offer_the_balance(bundle: str) -> None:
    assert _resolved(bundle) == _resolved(bundle, "paper.json") | {"lambdas": _resolved(bundle)["lambdas"]}
    balance = _resolved(bundle, "reference_balance.json")
    assert {k: balance[k] for k in OPTIONS} == BALANCE and balance["lambdas"]["sup"] == 0.75
    text = json.loads((REPO / "bundles" / bundle / "configs" / "reference_balance.json").read_text())
    assert "lsm_sit default" in text["_comment"]
