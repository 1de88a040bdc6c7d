"""A trained bundle as a segmentation model: network, weights and preprocessing, loaded once.

The network is built from the bundle's model record (``models/model.json``, written by training
beside ``models/model.pt``, see :mod:`lsmseg.engines.record`), read as data: no config expression
is evaluated, and a bundle trained with other settings (``--ngf 8 --image_size 64``) loads as it
is. The weights are read with ``torch.load(weights_only=True)``.

A bundle folder is code: ``python -m monai.bundle run`` evaluates its configs' ``$`` expressions
and ``_target_`` calls by design. ``segment`` does not: only with ``trust_bundle=True``
(``--trust-bundle``), and only for a bundle without a model record, does it build the network
from ``configs/inference.json``'s ``network_def``.

Model-quality gate: training records what the weights are (``training`` of the model record).
A model whose validation metric is below :data:`MIN_VALIDATION_MIOU`, or whose training was
interrupted before :data:`MIN_EPOCHS` epochs, is refused unless ``allow_weak_model=True``
(``--allow-weak-model``); every report states the model's validation figure, and a model not
validated on real CT carries :data:`RESEARCH_CAVEAT`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lsmseg.bundle import find_bundle
from lsmseg.engines.device import resolve_device
from lsmseg.engines.record import MODEL_RECORD, ModelRecord, RecordError, read_model_record
from lsmseg.errors import UsageError
from lsmseg.keys import TISSUE_NAMES, Tissue

if TYPE_CHECKING:
    import torch

    from lsmseg.transforms import CropWindowResize, SliceGeometry

logger = logging.getLogger(__name__)

DEFAULT_BUNDLE = "lsm_sss"
# Quality floor. A 4-class L3 model at validation mIoU 0.5 still mislabels about half of the
# muscle boundary; the lsm_sss bundle reaches about 0.8 on the phantom. An interrupted run of a
# few epochs (e.g. mIoU 0.196 after one epoch) is noise, whatever its metric.
MIN_VALIDATION_MIOU = 0.5
MIN_EPOCHS = 5
RESEARCH_CAVEAT = (
    "research use only: this model has not been validated on real patient CT "
    "(its validation figure is on the training data set); check every overlay"
)
# Set by whoever validated the weights on real CT (model.json "training", or metadata.json).
REAL_CT_KEY = "validated_on_real_ct"
WEIGHTS = Path("models") / "model.pt"
# The output channels lsmseg segment measures, in this order.
CLASS_NAMES: tuple[str, ...] = tuple(TISSUE_NAMES[t.value] for t in Tissue)


@dataclass
class SegmentationModel:
    """A bundle's network, loaded once, with the preprocessing its weights were trained with.

    Attributes:
        network: the network (eval mode, on ``device``); ``network(x)`` maps (B, 1, S, S)
            images in [0, 1] to (B, 4, S, S) logits of ``class_names``.
        transform: body crop -> HU window ``hu_range`` -> resize to (S, S), and its inverse.
        bundle_dir: the bundle folder.
        name: bundle name (its folder), version: ``configs/metadata.json`` version.
        title: the metadata's human name of the model.
        weights_sha256: SHA-256 of ``models/model.pt``.
        image_size: S, the network's input side in pixels; hu_range: the HU window.
    """

    network: Any
    transform: CropWindowResize
    device: torch.device
    bundle_dir: Path
    name: str
    version: str
    title: str
    weights_sha256: str
    image_size: int
    hu_range: tuple[float, float]
    class_names: tuple[str, ...]
    validation: str = "unknown"  # the model's validation figure in words (model_quality)
    caveat: str | None = RESEARCH_CAVEAT  # None only for a model validated on real CT

    @property
    def label(self) -> str:
        """Short identification for the ``model`` column: ``<bundle>@<version>``."""
        return f"{self.name}@{self.version}"

    def describe_device(self) -> str:
        """The device in words, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``cpu``."""
        import torch

        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return str(self.device)

    def preprocess(self, hu: np.ndarray) -> tuple[np.ndarray, SliceGeometry]:
        """(H, W) HU slice -> ((1, S, S) float32 network input in [0, 1], geometry for the way back)."""
        return self.transform.forward(hu)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(B, 1, S, S) network inputs -> (B, C, S, S) float32 class probabilities (softmax).

        Runs under ``torch.inference_mode``; on CUDA with autocast (bf16 where supported, else
        fp16) - the probabilities come back in float32.
        """
        import torch

        x = torch.as_tensor(images, dtype=torch.float32).to(self.device, non_blocking=True)
        with torch.inference_mode():
            if self.device.type == "cuda":
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
                with torch.autocast("cuda", dtype=dtype):
                    logits = self.network(x)
            else:
                logits = self.network(x)
            probs = torch.softmax(logits.float(), dim=1)
        return probs.cpu().numpy()

    def provenance(self) -> dict[str, Any]:
        """Which model made the numbers: bundle, version, weights hash, input settings, device."""
        return {
            "device": self.describe_device(),
            "model": self.title,
            "bundle": self.name,
            "bundle_version": self.version,
            "bundle_dir": str(self.bundle_dir),
            "weights": WEIGHTS.as_posix(),
            "weights_sha256": self.weights_sha256,
            "image_size": self.image_size,
            "hu_range": list(self.hu_range),
            "class_names": list(self.class_names),
            "model_validation": self.validation,
            "caveat": self.caveat,
        }


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _train_hint(bundle: Path) -> str:
    train = bundle / "configs" / "train.json"
    if train.is_file():
        return (
            f"train it first: python -m monai.bundle run --config_file {train} "
            f"(writes {bundle / WEIGHTS}), or pass --bundle DIR of a trained bundle"
        )
    return "copy the trained weights there, or pass --bundle DIR of a trained bundle"


def _unwrap_state_dict(obj: Any) -> Mapping[str, Any]:
    """A plain state dict, also from ``{"model": state_dict}`` checkpoints (MONAI CheckpointSaver)."""
    if not isinstance(obj, Mapping):
        raise UsageError(f"models/model.pt holds a {type(obj).__name__}, not a state dict of weights")
    for key in ("model", "state_dict", "network"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and not any(isinstance(v, Mapping) for v in inner.values()):
            return inner
    return obj


def read_record(bundle: Path) -> tuple[ModelRecord, int, tuple[float, float]]:
    """The bundle's model record with its input side S (px) and HU window, checked.

    Raises:
        UsageError: no or unreadable ``models/model.json`` (retrain), no image_size / hu_range,
            or output classes other than background, sat, vat, muscle.
    """
    try:
        record = read_model_record(bundle / WEIGHTS)
    except RecordError as err:
        raise UsageError(f"bundle {bundle}: {err}") from err
    try:
        image_size = int(record.preprocessing["image_size"])
        lo, hi = (float(v) for v in record.preprocessing["hu_range"])
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(
            f"bundle {bundle}: models/model.json has no usable preprocessing image_size and hu_range "
            f"({err!r}): retrain the bundle, which records them"
        ) from err
    names = tuple(str(c).lower() for c in record.class_names)
    if names != CLASS_NAMES:
        raise UsageError(
            f"bundle {bundle} predicts classes {list(names)}; lsmseg segment measures "
            f"{list(CLASS_NAMES)} (in that order)"
        )
    return record, image_size, (lo, hi)


def _load_weights(network: Any, bundle: Path) -> None:
    """Load ``models/model.pt`` (weights only) into ``network``, or say why they do not fit."""
    import torch

    try:
        state = _unwrap_state_dict(torch.load(bundle / WEIGHTS, map_location="cpu", weights_only=True))
    except UsageError as err:
        raise UsageError(f"bundle {bundle}: {err}") from err
    except Exception as err:
        raise UsageError(
            f"bundle {bundle}: models/model.pt cannot be read ({err}): {_train_hint(bundle)}"
        ) from err
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)]
    detail = [
        f"{len(keys)} {what}, e.g. {keys[0]}"
        for keys, what in ((missing, "missing"), (unexpected, "unexpected"), (reshaped, "of another shape"))
        if keys
    ]
    if detail:
        raise UsageError(
            f"bundle {bundle}: models/model.pt does not fit the network of models/model.json "
            f"(weights {'; '.join(detail)}): were model.pt and model.json copied from different runs?"
        )
    network.load_state_dict(state)


def _metadata(bundle: Path) -> dict[str, Any]:
    """``configs/metadata.json`` (empty when absent or unreadable: it only names the model)."""
    path = bundle / "configs" / "metadata.json"
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as err:
        logger.warning("bundle %s: configs/metadata.json unreadable (%s)", bundle, err)
        return {}


def model_quality(record: ModelRecord) -> tuple[str, str | None]:
    """The model's validation figure in words, and why it is below the quality floor (or None).

    A record without training statistics (written by hand, or by an older lsmseg) is not
    refused: its figure reads "unknown" and the caveat stays.
    """
    t = record.training
    metric, best = t.get("metric", "validation metric"), t.get("best_metric")
    epochs, finished = t.get("epochs_run"), t.get("finished")
    if best is None:
        return "unknown (the model record has no training statistics)", None
    state = "finished" if finished else "interrupted" if finished is False else "end unknown"
    figure = (
        f"{metric} {float(best):.3f} (best epoch {t.get('best_epoch', '?')} of {epochs if epochs is not None else '?'}, "
        f"{t.get('n_train', '?')} training slices, training {state})"
    )
    if t.get("mode", "max") == "max" and float(best) < MIN_VALIDATION_MIOU:
        return figure, f"its {metric} is {float(best):.3f}, below the quality floor {MIN_VALIDATION_MIOU}"
    if finished is False and epochs is not None and int(epochs) < MIN_EPOCHS:
        return figure, f"its training was interrupted after {epochs} epoch(s) (fewer than {MIN_EPOCHS})"
    return figure, None


def _network_from_config(bundle: Path) -> tuple[Any, ModelRecord]:
    """Network and record from ``configs/inference.json`` (``network_def``, ``image_size``,
    ``hu_range``), evaluating the config as MONAI does: only for ``--trust-bundle``."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(bundle / "configs" / "inference.json")
    try:
        if "imports" in parser:  # as a bundle workflow does: its `$import` lines first
            parser.get_parsed_content("imports")
        network = parser.get_parsed_content("network_def")
        settings = {"image_size": parser["image_size"], "hu_range": list(parser["hu_range"])}
    except Exception as err:
        raise UsageError(
            f"bundle {bundle}: configs/inference.json gives no network_def, image_size, hu_range: {err}"
        ) from err
    record = ModelRecord(
        network={"name": type(network).__name__}, preprocessing=settings, class_names=list(CLASS_NAMES)
    )
    return network, record


def _network(bundle: Path, trust_bundle: bool) -> tuple[Any, ModelRecord]:
    """The untrained network and its record: from models/model.json as data, or (trusted
    bundles without a record only) from the bundle's config."""
    if not (bundle / "models" / MODEL_RECORD).is_file() and trust_bundle:
        logger.warning("bundle %s: evaluating configs/inference.json (--trust-bundle)", bundle)
        return _network_from_config(bundle)
    try:
        record, _, _ = read_record(bundle)
    except UsageError as err:
        if (bundle / "configs" / "inference.json").is_file():
            raise UsageError(
                f"{err}; segment does not evaluate configs/inference.json, because a bundle config is "
                "code: pass --trust-bundle only for a bundle from a source you trust"
            ) from err
        raise
    try:
        return record.build(), record
    except (TypeError, ValueError) as err:
        raise UsageError(f"bundle {bundle}: models/model.json describes no buildable network: {err}") from err


def load_bundle(
    bundle_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    *,
    allow_weak_model: bool = False,
    trust_bundle: bool = False,
) -> SegmentationModel:
    """Load a bundle's network and weights once, ready for :meth:`SegmentationModel.predict`.

    Args:
        bundle_dir: a bundle folder or name (None: ``lsm_sss``, see :func:`lsmseg.bundle.find_bundle`).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        allow_weak_model: load a model below the quality floor (:func:`model_quality`).
        trust_bundle: a bundle without models/model.json may build its network by evaluating
            ``configs/inference.json`` (code).

    Raises:
        UsageError: missing folder, weights (saying how to train them) or model record, weights
            that do not fit the recorded network, other classes, a model below the quality
            floor, or a network that does not give (1, 4, S, S) for a (1, 1, S, S) input.
    """
    from lsmseg.transforms import CropWindowResize

    bundle = find_bundle(DEFAULT_BUNDLE if bundle_dir is None else bundle_dir)
    if not (bundle / WEIGHTS).is_file():
        raise UsageError(f"bundle {bundle} has no trained weights (models/model.pt): {_train_hint(bundle)}")
    network, record = _network(bundle, trust_bundle)
    validation, weak = model_quality(record)
    if weak is not None and not allow_weak_model:
        raise UsageError(
            f"bundle {bundle} is below the quality floor: {weak} ({validation}); its measurements "
            "would be noise. Train it further, or pass --allow-weak-model to measure anyway"
        )
    image_size = int(record.preprocessing["image_size"])
    hu_range = (float(record.preprocessing["hu_range"][0]), float(record.preprocessing["hu_range"][1]))
    torch_device = resolve_device(device)
    _load_weights(network, bundle)
    network.to(torch_device).eval()
    metadata = _metadata(bundle)
    model = SegmentationModel(
        network=network,
        transform=CropWindowResize(model_size=image_size, hu_range=hu_range),
        device=torch_device,
        bundle_dir=bundle.resolve(),
        name=bundle.resolve().name,
        version=str(metadata.get("version", "unknown")),
        title=str(metadata.get("name", bundle.resolve().name)),
        weights_sha256=sha256(bundle / WEIGHTS),
        image_size=image_size,
        hu_range=hu_range,
        class_names=CLASS_NAMES,
        validation=validation,
        caveat=None if record.training.get(REAL_CT_KEY) or metadata.get(REAL_CT_KEY) else RESEARCH_CAVEAT,
    )
    _dry_run(model, bundle)
    return model


def _dry_run(model: SegmentationModel, bundle: Path) -> None:
    """One zero image through the network: its output must be (1, 4, S, S)."""
    size = model.image_size
    dry = model.predict(np.zeros((1, 1, size, size), dtype=np.float32))
    if dry.shape != (1, len(CLASS_NAMES), size, size):
        raise UsageError(
            f"bundle {bundle}: the network gives output {tuple(dry.shape)} for a (1, 1, {size}, "
            f"{size}) image; expected (1, {len(CLASS_NAMES)}, {size}, {size})"
        )
