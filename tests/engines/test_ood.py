"""lsmseg.engines.ood: the OOD score, its validation reference (models/ood.json) and the handler."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lsmseg.engines.ood import (
    ENTROPY,
    RECONSTRUCTION,
    OODReference,
    OODReferenceHandler,
    read_reference,
    reconstruction_error,
    reconstructs_images,
    softmax_entropy,
)
from lsmseg.methods.terms import method_stages
from tests.helpers.clinical import lsm


def test_reference_quantiles_threshold_and_percentiles_have_known_values() -> None:
    ref = OODReference.from_scores(RECONSTRUCTION, [0.4, 0.1, 0.3, 0.2])  # any order
    assert ref.scores == [0.1, 0.2, 0.3, 0.4] and ref.n == 4
    assert ref.quantiles["50"] == pytest.approx(0.25)
    assert ref.quantiles["99"] == pytest.approx(0.397)  # numpy linear interpolation
    assert ref.threshold == pytest.approx(0.397 * 1.25)
    assert [ref.percentile(v) for v in (0.05, 0.2, 0.35, 9.0)] == [0.0, 50.0, 75.0, 100.0]
    with pytest.raises(ValueError, match="at least one finite"):
        OODReference.from_scores(ENTROPY, [math.nan])


def test_reference_round_trips_through_ood_json(tmp_path: Path) -> None:
    from lsmseg.engines.ood import write_reference

    ref = OODReference.from_scores(ENTROPY, [0.2, 0.3])
    write_reference(ref, tmp_path / "models" / "model.pt")
    assert read_reference(tmp_path / "models") == ref
    assert read_reference(tmp_path) is None
    (tmp_path / "models" / "ood.json").write_text('{"score": "psychic"}')
    with pytest.raises(ValueError, match=r"ood\.json cannot be read"):
        read_reference(tmp_path / "models")


def test_entropy_is_zero_when_certain_and_one_when_uniform() -> None:
    certain = torch.zeros(1, 4, 8, 8)
    certain[:, 2] = 1.0
    uniform = torch.full((1, 4, 8, 8), 0.25)
    assert softmax_entropy(torch.cat([certain, uniform])).tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_only_methods_that_train_the_image_auto_encoder_use_the_reconstruction_score() -> None:
    net = lsm(32, 4)
    assert reconstructs_images(net, method_stages("lsm", net.names))
    assert reconstructs_images(net, method_stages("ioda", net.names))
    assert not reconstructs_images(net, method_stages("basic", net.names))  # LSM 0000: entropy instead


def test_handler_scores_the_validation_slices_with_the_best_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = lsm(32, 4)
    best = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save(best, tmp_path / "model.pt")
    with torch.no_grad():  # the trainer's network has moved on since the best epoch
        for p in net.parameters():
            p.add_(0.1)
    images = torch.rand(3, 1, 32, 32)
    loader = [{"image": images[:2]}, {"image": images[2:]}]
    trainer = SimpleNamespace(network=net, stages=method_stages("lsm", net.names))
    OODReferenceHandler(loader, tmp_path / "model.pt")(trainer)

    ref = read_reference(tmp_path)
    assert ref is not None and ref.score == RECONSTRUCTION and ref.n == 3
    fresh = lsm(32, 4)
    fresh.load_state_dict(best)
    with torch.no_grad():
        expected = sorted(reconstruction_error(fresh.eval(), images).tolist())
    np.testing.assert_allclose(ref.scores, expected, rtol=1e-5)

    basic = SimpleNamespace(network=net, stages=method_stages("basic", net.names))
    OODReferenceHandler(loader, tmp_path / "model.pt")(basic)
    assert read_reference(tmp_path).score == ENTROPY  # type: ignore[union-attr]
    OODReferenceHandler(loader, tmp_path / "missing" / "model.pt")(trainer)  # nothing validated: no file
    assert not (tmp_path / "missing").exists()
