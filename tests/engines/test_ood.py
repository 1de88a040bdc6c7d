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


@pytest.mark.slow
def test_reconstruction_score_separates_held_out_phantoms_from_unseen_slices() -> None:
    """ngf 8 / 64 px LSM generators, 400 steps of sup + rec on 32 phantoms (seed 0 run: held-out
    median 0.041, max 0.050, threshold 0.060; head 0.092, thorax 0.056, rotated median 0.058)."""
    from lsmseg.data.phantom import cohort_slice
    from lsmseg.keys import Keys
    from lsmseg.transforms import CropWindowResize
    from tests.helpers import anatomy
    from tests.helpers.clinical import HU_RANGE, phantom_rows

    torch.manual_seed(0)
    net = lsm(64, 8)
    rows = phantom_rows(seed=5, n=32, size_px=256, image_size=64)
    x = torch.as_tensor(np.stack([r[Keys.IMAGE] for r in rows]))
    y = torch.as_tensor(np.stack([r[Keys.LABEL][0] for r in rows]))
    optimiser = torch.optim.Adam(net.generators.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(400):
        idx = torch.randint(0, len(rows), (8,), generator=g)
        loss = (
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            + 10 * reconstruction_error(net, x[idx]).mean()
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()
    transform = CropWindowResize(model_size=64, hu_range=HU_RANGE)

    def scores(slices: list[np.ndarray]) -> np.ndarray:
        images = np.stack([transform.forward(np.asarray(hu, np.float32))[0] for hu in slices])
        with torch.no_grad():
            return reconstruction_error(net, torch.as_tensor(images)).numpy()

    ref = OODReference.from_scores(
        RECONSTRUCTION, scores([cohort_slice(7, i, size=256).hu for i in range(12)])
    )
    held = scores([cohort_slice(11, i, size=256).hu for i in range(12)])
    rotated = scores([np.rot90(cohort_slice(13, i, size=256).hu).copy() for i in range(6)])
    head, thorax = scores([anatomy.head().hu, anatomy.thorax().hu])
    assert not np.any(held > ref.threshold)
    assert head > ref.threshold and head > 1.5 * np.median(held)
    assert thorax > held.max() and np.median(rotated) > held.max()
