"""load_bundle: the network from models/model.json, weights only, clear messages when they do not fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lsmseg.clinical import load_bundle
from lsmseg.errors import UsageError
from tests.helpers.clinical import TINY_NGF, TINY_SIZE, lsm, network_args, tiny_bundle, write_bundle


@pytest.fixture(scope="module")
def bundle() -> Path:
    return tiny_bundle()


def test_a_bundle_without_weights_says_how_to_train_it(bundle: Path, tmp_path: Path) -> None:
    empty = write_bundle(tmp_path / "untrained", None, TINY_SIZE, TINY_NGF)
    (empty / "configs" / "train.json").write_text("{}")
    with pytest.raises(
        UsageError,
        match=r"no trained weights \(models/model.pt\): train it first: python -m monai.bundle run",
    ):
        load_bundle(empty, "cpu")


def test_weights_of_another_network_are_refused(bundle: Path, tmp_path: Path) -> None:
    other = write_bundle(tmp_path / "other", lsm(64, 8).state_dict(), TINY_SIZE, TINY_NGF)
    with pytest.raises(UsageError, match="does not fit the network"):
        load_bundle(other, "cpu")


def test_bundle_loads_once_and_predicts_probabilities(bundle: Path) -> None:
    model = load_bundle(bundle, "cpu")
    probs = model.predict(np.random.default_rng(0).random((3, 1, 64, 64), dtype=np.float32))
    assert probs.shape == (3, 4, 64, 64) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert model.label == "tiny_sss@0.0.1" and len(model.weights_sha256) == 64


def test_the_network_comes_from_the_model_record_not_a_config(tmp_path: Path) -> None:
    """A bundle trained with --ngf 8 --image_size 64 loads as it is: no inference.json at all."""
    trained = write_bundle(tmp_path / "ngf8", lsm(64, 8).state_dict(), 64, 8)
    assert not (trained / "configs" / "inference.json").exists()
    model = load_bundle(trained, "cpu")
    assert model.image_size == 64 and model.hu_range == (-250.0, 250.0)
    n_params = sum(t.numel() for t in model.network.parameters())
    assert n_params == sum(t.numel() for t in lsm(64, 8).parameters())  # the ngf-8 network, not the default
    assert model.predict(np.zeros((2, 1, 64, 64), np.float32)).shape == (2, 4, 64, 64)
    assert model.provenance()["class_names"] == ["background", "sat", "vat", "muscle"]


def test_weights_without_a_model_record_say_to_retrain(tmp_path: Path) -> None:
    old = write_bundle(
        tmp_path / "old", lsm(TINY_SIZE, TINY_NGF).state_dict(), TINY_SIZE, TINY_NGF, record=False
    )
    with pytest.raises(UsageError, match=r"model.json is missing: .*retrain the bundle"):
        load_bundle(old, "cpu")


def test_a_record_with_other_classes_is_refused(tmp_path: Path) -> None:
    other = write_bundle(tmp_path / "other", lsm(TINY_SIZE, TINY_NGF).state_dict(), TINY_SIZE, TINY_NGF)
    path = other / "models" / "model.json"
    record = json.loads(path.read_text())
    record["class_names"] = ["background", "liver", "spleen", "kidney"]
    path.write_text(json.dumps(record))
    with pytest.raises(UsageError, match=r"predicts classes \['background', 'liver'"):
        load_bundle(other, "cpu")


def test_a_missing_bundle_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist or has no configs/ folder"):
        load_bundle(tmp_path / "nowhere" / "bundle", "cpu")


# --- model-quality gate and safe bundles (issue 11) -------------------------------------------------

INTERRUPTED = {
    "metric": "val_mean_iou",
    "mode": "max",
    "best_metric": 0.196,
    "best_epoch": 1,
    "epochs_run": 1,
    "n_train": 32,
    "finished": False,
}


def _with_training(bundle: Path, training: dict[str, object]) -> Path:
    path = bundle / "models" / "model.json"
    record = json.loads(path.read_text())
    record["training"] = training
    path.write_text(json.dumps(record))
    return bundle


def test_a_bundle_interrupted_after_one_epoch_is_refused_with_its_figure(tmp_path: Path) -> None:
    weak = _with_training(
        write_bundle(tmp_path / "weak", lsm(TINY_SIZE, TINY_NGF).state_dict(), TINY_SIZE, TINY_NGF),
        INTERRUPTED,
    )
    with pytest.raises(
        UsageError,
        match=r"below the quality floor: its val_mean_iou is 0.196, below the quality floor 0.5 "
        r"\(val_mean_iou 0.196 \(best epoch 1 of 1, 32 training slices, training interrupted\)\).*--allow-weak-model",
    ):
        load_bundle(weak, "cpu")
    model = load_bundle(weak, "cpu", allow_weak_model=True)
    assert model.provenance()["model_validation"].startswith("val_mean_iou 0.196")
    assert model.provenance()["caveat"].startswith("research use only")


def test_a_good_metric_from_an_interrupted_short_run_is_refused(tmp_path: Path) -> None:
    short = dict(INTERRUPTED, best_metric=0.8, epochs_run=2)
    bundle = _with_training(
        write_bundle(tmp_path / "short", lsm(TINY_SIZE, TINY_NGF).state_dict(), TINY_SIZE, TINY_NGF), short
    )
    with pytest.raises(UsageError, match=r"its training was interrupted after 2 epoch\(s\) \(fewer than 5\)"):
        load_bundle(bundle, "cpu")


def _malicious(bundle: Path, marker: Path) -> Path:
    """An inference.json whose network_def writes ``marker`` when evaluated (then builds the net)."""
    config = {
        "imports": ["$import pathlib", "$from lsmseg.methods.registry import build_network"],
        "args": network_args(TINY_SIZE, TINY_NGF),
        "image_size": TINY_SIZE,
        "hu_range": [-250, 250],
        "network_def": f"$pathlib.Path({str(marker)!r}).write_text('ran') and "
        "build_network('LatentSpaceMapping', @args)",
    }
    (bundle / "configs" / "inference.json").write_text(json.dumps(config))
    return bundle


def test_a_malicious_inference_json_never_runs_without_trust_bundle(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    weights = lsm(TINY_SIZE, TINY_NGF).state_dict()
    recorded = _malicious(write_bundle(tmp_path / "recorded", weights, TINY_SIZE, TINY_NGF), marker)
    load_bundle(recorded, "cpu")  # built from models/model.json as data
    assert not marker.exists()
    bare = _malicious(write_bundle(tmp_path / "bare", weights, TINY_SIZE, TINY_NGF, record=False), marker)
    with pytest.raises(UsageError, match=r"segment does not evaluate configs/inference.json.*--trust-bundle"):
        load_bundle(bare, "cpu")
    assert not marker.exists()
    model = load_bundle(bare, "cpu", trust_bundle=True)
    assert marker.read_text() == "ran" and model.image_size == TINY_SIZE
