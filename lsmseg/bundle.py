"""Helpers the bundle configs call: locating a bundle and checking a run's settings up front."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from lsmseg.data.split import check_proportion
from lsmseg.methods.config import Lambdas, check_adversarial, method_stages


def root(name: str) -> str:
    """Folder of the bundle ``name``: ``$LSMSEG_BUNDLES/<name>``, ``./bundles/<name>``, ``.`` when
    the working directory is the bundle itself, or the repository's ``bundles/<name>``.

    Override with ``--bundle_root DIR`` on the command line.
    """
    candidates = []
    if os.environ.get("LSMSEG_BUNDLES"):
        candidates.append(Path(os.environ["LSMSEG_BUNDLES"]) / name)
    cwd = Path.cwd()
    candidates += [cwd / "bundles" / name, cwd, Path(__file__).resolve().parents[1] / "bundles" / name]
    for c in candidates:
        if (c / "configs" / "train.json").is_file() and c.name == name:
            return str(c)
    raise SystemExit(f"lsmseg: cannot find bundle {name!r}; pass --bundle_root DIR or set LSMSEG_BUNDLES")


def fail(message: str) -> NoReturn:
    """Stop a bundle run with a one-line message in the user's terms (no traceback)."""
    raise SystemExit(f"lsmseg: error: {message}")


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
    **positive: Any,
) -> bool:
    """Validate a training run's top-level settings before any work starts.

    Every problem ends the run with one line naming the valid choices. ``positive`` holds
    settings that must be positive integers (``max_epochs``, ``batch_size``, ``ngf`` ...).
    """
    try:
        check_proportion(proportion)
        check_adversarial(adversarial)
        method_stages(method, ["x", "y"], Lambdas.from_dict(dict(lambdas or {})))
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
