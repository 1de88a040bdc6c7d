"""Out-of-distribution (OOD) score of a slice, and its validation reference (``models/ood.json``).

LSM trains an auto-encoder of the image domain (E_image -> D_image, term ``rec`` on the source
domain). Its reconstruction error on a slice grows with the distance of the slice from the
training data, so it says when a slice lies outside what the model has seen:

    image_reconstruction_mae = mean over pixels |sigmoid(D_x(E_x(x))) - x|, x in [0, 1]
                               (the network input: HU window scaled to [0, 1], S x S pixels)

A method that never trains the image auto-encoder (``basic``, LSM 0000: only the supervised
translation) falls back to the uncertainty of its own prediction:

    softmax_entropy = mean over pixels of -sum_c p_c log p_c / log C   (0: certain, 1: uniform)

At the end of training :class:`OODReferenceHandler` scores the validation slices with the best
weights and writes the sorted scores, their quantiles and a warning threshold
(:data:`THRESHOLD_PERCENTILE` th percentile x :data:`THRESHOLD_MARGIN`) to ``models/ood.json``
beside ``model.pt``. ``lsmseg segment`` reads it as data (``lsmseg.clinical.ood``).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from lsmseg.io.atomic import write_json_atomic
from lsmseg.keys import Keys
from lsmseg.methods.terms import Stage, Term

OOD_FILE = "ood.json"
RECONSTRUCTION = "image_reconstruction_mae"
ENTROPY = "softmax_entropy"
DEFINITIONS = {
    RECONSTRUCTION: "mean |sigmoid(D_image(E_image(x))) - x| over the S x S network input x in [0, 1]",
    ENTROPY: "mean over pixels of the softmax entropy divided by log(number of classes), in [0, 1]",
}
# Warning threshold: a validation slice lies above the 99th percentile 1 time in 100; the 25 %
# margin keeps the warning for slices clearly beyond every validation slice (with n < 100 the
# 99th percentile is close to the largest validation score).
THRESHOLD_PERCENTILE = 99.0
THRESHOLD_MARGIN = 1.25


def reconstructs_images(network: Any, stages: Sequence[Stage]) -> bool:
    """Whether the method trains the auto-encoder of the network's source (image) domain."""
    source = getattr(network, "names", [None])[0]
    if source is None or not hasattr(network, "generators"):
        return False
    return any(stage.weights.get(Term("rec", source), 0.0) > 0 for stage in stages)


def reconstruction_error(network: Any, images: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) inputs in [0, 1] -> (B,) mean absolute error of the image auto-encoder."""
    domain = network.source
    generators = network.generators
    logits = generators.decoders[domain.name](generators.encoders[domain.name](domain.to_input(images)))
    return (domain.activate(logits.float()) - images.float()).abs().flatten(1).mean(dim=1)


def softmax_entropy(probs: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) class probabilities -> (B,) mean per-pixel entropy / log C, in [0, 1]."""
    p = probs.float().clamp_min(1e-12)
    entropy = -(p * p.log()).sum(dim=1)  # (B, S, S), nats
    return entropy.flatten(1).mean(dim=1) / math.log(probs.shape[1])


def slice_scores(network: Any, images: torch.Tensor, score: str) -> torch.Tensor:
    """(B, 1, S, S) network inputs -> (B,) OOD scores of kind ``score`` (no gradients)."""
    with torch.no_grad():
        if score == RECONSTRUCTION:
            return reconstruction_error(network, images)
        if score == ENTROPY:
            return softmax_entropy(torch.softmax(network(images).float(), dim=1))
    raise ValueError(f"unknown OOD score {score!r}; valid: {', '.join(DEFINITIONS)}")


@dataclass(frozen=True)
class OODReference:
    """The validation distribution of the OOD score (the content of ``models/ood.json``).

    Attributes:
        score: :data:`RECONSTRUCTION` or :data:`ENTROPY`; definition: the formula in words.
        scores: the validation slices' scores, sorted; n: their number.
        quantiles: {"50": ..., "90": ..., "99": ...} of ``scores``.
        threshold: scores above it get a quality warning; threshold_rule: how it was set.
    """

    score: str
    definition: str
    n: int
    scores: list[float]
    quantiles: dict[str, float]
    threshold: float
    threshold_rule: str

    @classmethod
    def from_scores(cls, score: str, values: Iterable[float]) -> OODReference:
        """The reference of validation ``values`` (at least one, all finite)."""
        ordered = sorted(float(v) for v in values)
        if not ordered or not all(math.isfinite(v) for v in ordered):
            raise ValueError("an OOD reference needs at least one finite validation score")
        quantiles = {f"{q:g}": float(np.percentile(ordered, q)) for q in (50, 90, THRESHOLD_PERCENTILE)}
        return cls(
            score=score,
            definition=DEFINITIONS[score],
            n=len(ordered),
            scores=ordered,
            quantiles=quantiles,
            threshold=quantiles[f"{THRESHOLD_PERCENTILE:g}"] * THRESHOLD_MARGIN,
            threshold_rule=f"{THRESHOLD_MARGIN:g} x the {THRESHOLD_PERCENTILE:g}th percentile of the validation scores",
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OODReference:
        """Read back :meth:`to_dict` (ValueError when a field is missing or of the wrong kind)."""
        try:
            reference = cls(
                score=str(data["score"]),
                definition=str(data["definition"]),
                n=int(data["n"]),
                scores=[float(v) for v in data["scores"]],
                quantiles={str(k): float(v) for k, v in data["quantiles"].items()},
                threshold=float(data["threshold"]),
                threshold_rule=str(data["threshold_rule"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"not an OOD reference: {err!r}") from err
        if reference.score not in DEFINITIONS or not reference.scores:
            raise ValueError(f"not an OOD reference: score {reference.score!r}, {reference.n} scores")
        return reference

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def percentile(self, value: float) -> float:
        """Percent of validation slices scoring at most ``value`` (0-100)."""
        return 100.0 * float(np.searchsorted(self.scores, value, side="right")) / self.n


def write_reference(reference: OODReference, ckpt_path: str | Path) -> Path:
    """``ood.json`` beside the checkpoint ``ckpt_path`` (atomically)."""
    return write_json_atomic(Path(ckpt_path).parent / OOD_FILE, reference.to_dict())


def read_reference(models_dir: str | Path) -> OODReference | None:
    """``<models_dir>/ood.json`` read as data; None when there is none (ValueError when damaged)."""
    path = Path(models_dir) / OOD_FILE
    if not path.is_file():
        return None
    try:
        return OODReference.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as err:
        raise ValueError(f"{path} cannot be read: {err}") from err


class OODReferenceHandler:
    """At the end of training, record the validation OOD scores of the best weights (ood.json).

    Args:
        data_loader: the validation loader; batches are dicts with ``image`` (B, 1, S, S) in [0, 1].
        ckpt_path: the best checkpoint (``<ckpt_dir>/model.pt``); ood.json is written beside it.
            Nothing is written when it does not exist (no validated epoch) or on a rank other than 0.

    Attach it to the trainer (a ``train#handlers`` entry). The score is
    :data:`RECONSTRUCTION` when the method trains the image auto-encoder, else :data:`ENTROPY`.
    """

    def __init__(self, data_loader: Iterable[Any], ckpt_path: str | Path) -> None:
        self.data_loader = data_loader
        self.ckpt_path = Path(ckpt_path)

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.COMPLETED, self)

    def __call__(self, trainer: Any) -> None:
        import ignite.distributed as idist

        if idist.get_rank() != 0 or not self.ckpt_path.is_file():
            return
        # The best weights from model.pt, in a copy: the trainer's own network is restored to
        # them by StagedEarlyStopping, whose handler may run after this one.
        network = copy.deepcopy(trainer.network)
        network.load_state_dict(torch.load(self.ckpt_path, map_location="cpu", weights_only=True))
        network.eval()
        score = RECONSTRUCTION if reconstructs_images(network, trainer.stages) else ENTROPY
        device = next(network.parameters()).device
        values: list[float] = []
        for batch in self.data_loader:
            images = torch.as_tensor(batch[Keys.IMAGE]).float().to(device)
            values += slice_scores(network, images, score).cpu().tolist()
        if values:
            write_reference(OODReference.from_scores(score, values), self.ckpt_path)
