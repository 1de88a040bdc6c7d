"""lsmseg.clinical.ood: the ood_* columns and the warning above the bundle's threshold."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from lsmseg.clinical.ood import batch_scores, describe_reference, load_reference, ood_columns
from lsmseg.engines.ood import ENTROPY, OODReference, write_reference


def test_columns_and_a_warning_only_above_the_threshold() -> None:
    ref = OODReference.from_scores(ENTROPY, [0.1, 0.2, 0.3, 0.4])  # threshold 1.25 x 0.397
    inside, none = ood_columns(ref, 0.25)
    assert inside == {"ood_score": 0.25, "ood_percentile": 50.0} and none == []
    outside, warnings = ood_columns(ref, 0.6)
    assert outside["ood_percentile"] == 100.0
    assert warnings == [
        "out of distribution: softmax_entropy 0.6000 is above the threshold 0.4963 (1.25 x the 99th "
        "percentile of the validation scores, n=4): the model has not seen slices like this one, check the overlay"
    ]


def test_a_bundle_without_or_with_a_damaged_ood_json_has_no_reference(tmp_path: Path) -> None:
    model: Any = SimpleNamespace(bundle_dir=tmp_path)
    assert load_reference(model) is None and describe_reference(None) is None
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "ood.json").write_text("{")
    assert load_reference(model) is None
    ref = OODReference.from_scores(ENTROPY, [0.1])
    write_reference(ref, tmp_path / "models" / "model.pt")
    assert load_reference(model) == ref
    assert "scores" not in (describe_reference(ref) or {})


def test_entropy_scores_come_from_the_probabilities_the_network_gave() -> None:
    ref = OODReference.from_scores(ENTROPY, [0.1])
    certain = np.zeros((4, 8, 8), np.float32)
    certain[1] = 1.0
    uniform = np.full((4, 8, 8), 0.25, np.float32)
    images = np.zeros((2, 1, 8, 8), np.float32)
    scores = batch_scores(SimpleNamespace(), ref, images, [certain, uniform])  # type: ignore[arg-type]
    np.testing.assert_allclose(scores, [0.0, 1.0], atol=1e-6)
