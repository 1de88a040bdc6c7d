"""The glue bundle configs call: locating a bundle, the trained model's record, up-front checks."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lsmseg.bundle.card import write_model_card as write_model_card
from lsmseg.bundle.export import exportable as exportable
from lsmseg.bundle.overlays import OPTIONS as OPTIONS
from lsmseg.bundle.runs import prune_runs as prune_runs
from lsmseg.bundle.runs import run_dir as run_dir
from lsmseg.data.split import check_proportion
from lsmseg.engines.record import ModelRecord, RecordError, read_model_record
from lsmseg.errors import UsageError, check_choice
from lsmseg.errors import fail as fail
from lsmseg.methods.registry import check_method_domains
from lsmseg.methods.terms import Lambdas, check_adversarial, method_stages


def _search_path(name: str) -> list[Path]:
    """Where a bundle called ``name`` is looked for, in order."""
    candidates = []
    if os.environ.get("LSMSEG_BUNDLES"):
        candidates.append(Path(os.environ["LSMSEG_BUNDLES"]) / name)
    cwd = Path.cwd()
    candidates += [cwd / "bundles" / name, cwd, Path(__file__).resolve().parents[2] / "bundles" / name]
    return candidates


def find_bundle(bundle: str | os.PathLike[str]) -> Path:
    """A bundle folder from a path (an existing folder) or a name.

    A name is looked up in ``$LSMSEG_BUNDLES/<name>``, ``./bundles/<name>``, ``.`` when the
    working directory is the bundle itself, and the source checkout's ``bundles/<name>``.

    Raises:
        UsageError: no such folder, naming where it looked and how to point at one.
    """
    path = Path(bundle)
    if path.is_dir() and (path / "configs").is_dir():
        return path
    if len(path.parts) > 1 or path.is_absolute():
        raise UsageError(f"bundle folder {path} does not exist or has no configs/ folder")
    name = str(bundle)
    candidates = _search_path(name)
    for c in candidates:
        if (c / "configs" / "train.json").is_file() and c.resolve().name == name:
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise UsageError(
        f"cannot find bundle {name!r} (looked in {looked}): pass a bundle folder, "
        "--bundle_root DIR, or set LSMSEG_BUNDLES to the folder holding it"
    )


_EXPORTERS = ("ckpt_export", "onnx_export", "trt_export")  # MONAI bundle scripts


def running_bundle() -> Path | None:
    """Folder of the bundle whose config MONAI's ``ConfigWorkflow`` is running, if any.

    ``python -m monai.bundle run --config_file B/configs/train.json`` (and ``lsmseg sweep``) run
    a ``ConfigWorkflow``, which knows the folder of its first config file; its parent (when the
    folder is ``configs/``) is the bundle. Found on the call stack, since MONAI does not hand it
    to config expressions. ``ckpt_export`` (and the ONNX / TensorRT exports) parse their config
    without a workflow; their first config file names the bundle the same way.
    """
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    while frame is not None:
        workflow = frame.f_locals.get("self")
        configs: Path | None = None
        if isinstance(workflow, ConfigWorkflow):
            configs = Path(workflow.config_root_path)
        elif frame.f_code.co_name in _EXPORTERS and frame.f_locals.get("config_file_"):
            first = frame.f_locals["config_file_"]  # ckpt_export parses its config without a workflow
            configs = Path(first if isinstance(first, str) else first[0]).parent
        if configs is not None:
            return configs.parent if configs.name == "configs" else configs
        frame = frame.f_back
    return None


def root(name: str | None = None) -> str:
    """Folder of the bundle for bundle configs: the one the running config file lives in (so a
    copied or renamed folder works), else the bundle called ``name`` (see :func:`find_bundle`),
    else the working directory when it is a bundle.

    Anything else ends the run with one line. Override with ``--bundle_root DIR``.
    """
    here = running_bundle()
    if here is not None:
        return str(here)
    try:
        return str(find_bundle(name or Path.cwd()))
    except UsageError as err:
        fail(str(err))


def model_record(ckpt_dir: str | os.PathLike) -> ModelRecord:
    """The record of the trained model in ``ckpt_dir`` (``model.json`` beside ``model.pt``).

    Inference and evaluation build the network and preprocessing from it, so a bundle trained
    with other settings (``--ngf 8 --image_size 64``) needs no edited config. A missing or
    unreadable record ends the run with one line.
    """
    try:
        return read_model_record(Path(ckpt_dir))
    except RecordError as err:
        fail(str(err))


def check_dataset_dir(dataset_dir: str | os.PathLike) -> str:
    """The data folder must exist and hold files."""
    path = Path(dataset_dir)
    if not path.is_dir():
        fail(f"dataset_dir {path} does not exist (omit --dataset_dir to use the embedded data set)")
    if not any(path.iterdir()):
        fail(f"dataset_dir {path} is empty (omit --dataset_dir to use the embedded data set)")
    return str(path)


def check_settings(
    method: str,
    proportion: float,
    dataset_dir: str | os.PathLike,
    adversarial: str = "confusion",
    lambdas: Mapping[str, float] | None = None,
    choices: Mapping[str, str] | None = None,
    domains: Sequence[Mapping[str, Any]] | None = None,
    **positive: Any,
) -> bool:
    """Validate a training run's top-level settings before any work starts.

    Every problem ends the run with one line naming the valid choices. ``choices`` holds the
    objective's named options (``adversarial_rows``, ``sup_loss``, ``sampling``, ``unpaired``:
    :data:`OPTIONS`); ``domains`` the bundle's domains as its network record lists them (a
    method that cannot train on them, e.g. ``unet`` on landmarks, is refused); ``positive``
    settings that must be positive integers (``max_epochs``, ``batch_size``, ``ngf`` ...).
    """
    try:
        check_proportion(proportion)
        check_adversarial(adversarial)
        for key, value in (choices or {}).items():
            if key not in OPTIONS:
                raise ValueError(f"unknown option {key!r}; valid: {', '.join(OPTIONS)}")
            check_choice(key.replace("_", " "), value, OPTIONS[key])
        method_stages(method, ["x", "y"], Lambdas.from_dict(dict(lambdas or {})))
        if domains is not None:
            check_method_domains(method, domains)
        for key, value in positive.items():
            if int(value) < 1 or int(value) != float(value):
                raise ValueError(f"{key} must be a positive integer, got {value}")
    except ValueError as e:
        fail(str(e))
    check_dataset_dir(dataset_dir)
    return True


def check_checkpoint(path: str | os.PathLike) -> str:
    """The trained weights must exist before evaluation or inference."""
    if not Path(path).is_file():
        fail(f"no trained model at {path}: run the bundle's training first (or pass --ckpt_dir DIR)")
    return str(path)
