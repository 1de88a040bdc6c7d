"""The model record: what a trained ``model.pt`` is, written beside it as ``model.json``.

Training writes the record whenever it saves the best weights, so inference, evaluation and
``lsmseg segment`` build the very network the weights belong to (``--ngf 8 --image_size 64``
included) and can judge the model before trusting its output.

File format (JSON, ``format`` 1)::

    {
      "format": 1,
      "network": {"name": "LatentSpaceMapping", "args": {...}},   # lsmseg.methods.registry
      "preprocessing": {"image_size": 128, "hu_range": [-250, 250]},  # what the network was fed
      "class_names": ["background", "sat", "vat", "muscle"],        # output channels, in order
      "training": {                                                 # filled in by training
        "method": "lsm", "proportion": 1.0, "seed": 0, "n_train": 42, "n_valid": 6,
        "metric": "val_mean_iou", "mode": "max",
        "best_metric": 0.73, "best_epoch": 12, "epochs_run": 20, "max_epochs": 1000,
        "finished": false                                           # true once the run ended normally
      }
    }
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lsmseg.io.atomic import atomic_write

MODEL_RECORD = "model.json"  # beside models/model.pt
RECORD_FORMAT = 1


class RecordError(ValueError):
    """A model record that is missing, unreadable or of another format."""


@dataclass
class ModelRecord:
    """What a trained network is. See the module docstring for the file format."""

    network: dict[str, Any]
    preprocessing: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    format: int = RECORD_FORMAT

    def __post_init__(self) -> None:
        if not isinstance(self.network, Mapping) or "name" not in self.network:
            raise RecordError("model record: 'network' must be {'name': ..., 'args': {...}}")
        self.network = {"name": str(self.network["name"]), "args": dict(self.network.get("args") or {})}

    @property
    def network_name(self) -> str:
        return str(self.network["name"])

    @property
    def network_args(self) -> dict[str, Any]:
        return dict(self.network["args"])

    def build(self) -> Any:
        """The (untrained) network this record describes."""
        from lsmseg.methods.registry import build_network

        return build_network(self.network_name, self.network_args)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_path(ckpt: str | Path) -> Path:
    """``model.json`` beside a ``model.pt`` (``ckpt``), or inside a checkpoint folder."""
    path = Path(ckpt)
    return path / MODEL_RECORD if path.suffix != ".pt" else path.with_name(MODEL_RECORD)


def write_model_record(record: ModelRecord | Mapping[str, Any], ckpt: str | Path) -> Path:
    """Write the record beside ``ckpt`` (a ``model.pt`` path or its folder), atomically."""
    data = record.as_dict() if isinstance(record, ModelRecord) else dict(record)
    path = record_path(ckpt)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return path


def read_model_record(ckpt: str | Path) -> ModelRecord:
    """Read the record beside ``ckpt`` (a ``model.pt`` path or its folder).

    Raises:
        RecordError: no record (weights trained before records existed, or copied alone),
            unreadable JSON, or another format version.
    """
    path = record_path(ckpt)
    if not path.is_file():
        raise RecordError(
            f"{path} is missing: the weights do not say which network they belong to "
            "(retrain the bundle, which writes it beside model.pt)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path} cannot be read: {err}") from err
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise RecordError(
            f"{path}: format {data.get('format') if isinstance(data, dict) else '?'}, expected {RECORD_FORMAT}"
        )
    try:
        return ModelRecord(
            network=data["network"],
            preprocessing=dict(data.get("preprocessing") or {}),
            class_names=[str(c) for c in data.get("class_names") or []],
            training=dict(data.get("training") or {}),
        )
    except (KeyError, TypeError) as err:
        raise RecordError(f"{path}: {err}") from err


def _json_default(value: Any) -> Any:
    """Tuples, paths, numpy and torch scalars as JSON."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")
