"""load_bundle: the network from models/model.json, weights only, clear messages when they do not fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lsmseg.clinical import load_bundle
from lsmseg.errors import UsageError
from tests.helpers.clinical import TINY_NGF, TINY_SIZE, lsm, tiny_bundle, write_bundle


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
