"""The bundle's own figures, written after evaluation to ``docs/model_card.md``.

The paper's numbers stay in the bundle's README as the paper's; metadata ``eval_metrics`` is
left empty in the shipped bundle rather than quoting results the bundle never produced. After
``evaluate``, this card says what *this* checkpoint scored on *this* data set's test split.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lsmseg.io.atomic import write_text_atomic

CARD = "docs/model_card.md"


def _rows(values: dict, prefix: str = "") -> list[str]:
    rows = []
    for key, value in values.items():
        if isinstance(value, dict):
            rows += _rows(value, f"{prefix}{key} ")
        elif isinstance(value, float):
            rows.append(f"| {prefix}{key} | {value:.4f} |")
        else:
            rows.append(f"| {prefix}{key} | {value} |")
    return rows


def write_model_card(
    bundle_root: str | os.PathLike[str], output_dir: str | os.PathLike[str], ckpt_dir: str | os.PathLike[str]
) -> str:
    """``<bundle_root>/docs/model_card.md`` from ``<output_dir>/metrics.json`` and ``model.json``."""
    metrics = json.loads((Path(output_dir) / "metrics.json").read_text())
    record_path = Path(ckpt_dir) / "model.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    training = record.get("training", {})
    lines = [
        "# Model card: this bundle's own figures",
        "",
        "Written by `evaluate` from this checkpoint on this data set's test split; the paper's",
        "figures are in README.md and are the paper's, not this checkpoint's.",
        "",
        "| metric | value |",
        "| --- | --- |",
        *_rows(metrics),
        "",
        "## Training",
        "",
        "| setting | value |",
        "| --- | --- |",
        *_rows(training),
        *_rows({"network": record.get("network", {}).get("name"), **record.get("preprocessing", {})}),
        "",
    ]
    path = Path(bundle_root) / CARD
    write_text_atomic(path, "\n".join(lines))
    return str(path)
