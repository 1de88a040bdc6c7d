"""Shared pieces of the experiments tests: sweep rows with known statistics, a stand-in for a
run's child process, and a tiny SIT data set."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SIT_BUNDLE = REPO / "bundles" / "lsm_sit"

# Test metric of each seed per (method, proportion): means 0.75, 0.4, 0.6; sample std of
# (0.3, 0.5) = 0.1414; (0.6, 0.6) has std 0.
RESULT_VALUES: dict[tuple[str, str], list[float]] = {
    ("lsm", "1"): [0.7, 0.8],
    ("lsm", "0.05"): [0.3, 0.5],
    ("basic", "1"): [0.6, 0.6],
}


def result_rows() -> list[dict[str, Any]]:
    """Six results.csv rows (2 seeds each of :data:`RESULT_VALUES`); best_epoch = 3 + seed."""
    return [
        {"method": m, "proportion": p, "seed": s, "metric": v, "best_epoch": 3 + s, "seconds": 10.0,
         "metric_name": "miou", "valid_metric": v, "epochs": 8, "threads": 1, "load_1m": 0.5}
        for (m, p), vs in RESULT_VALUES.items()
        for s, v in enumerate(vs)
    ]  # fmt: skip


# A child that trains nothing: it writes the result.json a real run would, with
# metric = proportion / 2 + seed / 100 (+ 0.1 for lsm), floor 0.3, and fails (exit 3) at proportion 0.5.
FAKE_CHILD = """
import json, sys
from pathlib import Path
spec_path = Path(sys.argv[1])
o = json.loads(spec_path.read_text())["overrides"]
if o["proportion"] == 0.5:
    sys.exit(3)
metric = o["proportion"] / 2 + o["seed"] / 100 + (0.1 if o["method"] == "lsm" else 0.0)
result = {"metric": metric, "metric_name": "miou", "valid_metric": metric, "best_epoch": 2,
          "epochs": 4, "cpu_seconds": 1.5, "floor": 0.3}
(spec_path.parent / "result.json").write_text(json.dumps(result))
"""


def fake_metric(method: str, proportion: float, seed: int) -> float:
    """The metric :data:`FAKE_CHILD` writes for a run."""
    return proportion / 2 + seed / 100 + (0.1 if method == "lsm" else 0.0)


def fake_child_command(spec_path: Path) -> list[str]:
    """Stand-in for :func:`lsmseg.experiments.sweep.child_command`."""
    return [sys.executable, "-c", FAKE_CHILD, str(spec_path)]


def write_tiny_sit(folder: Path, n: int = 30, size: int = 32) -> Path:
    """``n`` SIT pairs at ``size`` px (30 -> 21 train / 3 valid / 6 test) in the reference layout."""
    from lsmseg.data.sit import generate_sit, write_sit_folder

    write_sit_folder(folder, *generate_sit(n, size=size, seed=0))
    return folder
