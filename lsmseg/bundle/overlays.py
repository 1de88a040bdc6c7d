"""The objective overlays a bundle ships (``configs/paper.json``, ``reference.json``,
``reference_balance.json``), read as data: the one source of their settings for the code that
runs a bundle with them (benchmarks, tests) instead of copies of their values.

An overlay is merged on top of ``train.json`` (``--config_file "['train.json','paper.json']"``);
it sets the objective's options (:data:`OBJECTIVE`, ``lsm_method.md`` "Reference code vs paper")
and the lambdas.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lsmseg.data.split import SAMPLINGS, UNPAIRED_PROTOCOLS
from lsmseg.methods.domains import MASK_LOSSES
from lsmseg.methods.terms import ADVERSARIAL_ROWS

# The objective's named options and their values (``lsm_method.md``, "Reference code vs paper").
OPTIONS: dict[str, tuple[str, ...]] = {
    "adversarial_rows": ADVERSARIAL_ROWS,
    "sup_loss": MASK_LOSSES,
    "sampling": SAMPLINGS,
    "unpaired": UNPAIRED_PROTOCOLS,
}
# Every objective setting an overlay sets besides the lambdas: the latent adversarial loss and OPTIONS.
OBJECTIVE: tuple[str, ...] = ("adversarial", *OPTIONS)


def read_overlay(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings an overlay file sets, as bundle overrides: its ids, ``_comment`` (every id
    starting with ``_``) left out.

    Raises:
        ValueError: the file is not a JSON object (or not there), naming it.
    """
    try:
        settings = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read the overlay {path}: {err}") from err
    if not isinstance(settings, dict):
        raise ValueError(f"the overlay {path} is not a JSON object of settings")
    return {k: v for k, v in settings.items() if not k.startswith("_")}


def objective(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The objective options (:data:`OBJECTIVE`) among ``settings``, lambdas and the rest left out."""
    return {k: settings[k] for k in OBJECTIVE if k in settings}
