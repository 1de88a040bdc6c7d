"""``results.csv`` of a sweep: read, write, summarise per method x proportion, tabulate and plot."""

from __future__ import annotations

import csv
import math
import os
import statistics
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsmseg.experiments.grid import fmt_proportion
from lsmseg.io.atomic import atomic_write, write_csv_atomic

RESULT_COLUMNS: tuple[str, ...] = (
    "method",
    "proportion",
    "seed",
    "metric",
    "best_epoch",
    "seconds",
    "metric_name",
    "valid_metric",
    "epochs",
    "cpu_seconds",
    "threads",
    "load_1m",
    "floor",
)
"""Columns of ``results.csv``: the DESIGN.md contract first (metric = test split; best_epoch =
epoch of the best validation score of the final stage, counted over all stages; seconds = wall
time of the run's process), then the metric's name, the best validation score, the epochs
trained (all stages), the CPU seconds the run's process used (user + system: what the run costs
whatever else shares the machine), its torch threads, the 1-minute load average at its end and
the floor: the test score of the best input-independent prediction of the run's split
(:mod:`lsmseg.engines.floor`)."""

FLOAT_COLUMNS = ("metric", "seconds", "valid_metric", "cpu_seconds", "load_1m", "floor")  # empty -> NaN
INT_COLUMNS = ("best_epoch", "epochs", "threads")  # empty -> -1
LOWER_IS_BETTER = frozenset({"nrmse"})


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``results.csv`` (empty when the file does not exist); numbers parsed, the
    proportion in its canonical text (:func:`fmt_proportion`)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows: list[dict[str, Any]] = list(csv.DictReader(f))
    for r in rows:
        r["proportion"] = fmt_proportion(r["proportion"])
        r["seed"] = int(r["seed"])
        for k in FLOAT_COLUMNS:
            r[k] = float(r[k]) if r.get(k) not in (None, "") else math.nan
        for k in INT_COLUMNS:
            r[k] = int(r[k]) if r.get(k) not in (None, "") else -1
    return rows


def write_results(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Write ``results.csv`` atomically, rows sorted by method, proportion (descending), seed."""
    ordered = sorted(rows, key=lambda r: (str(r["method"]), -float(r["proportion"]), int(r["seed"])))
    return write_csv_atomic(path, RESULT_COLUMNS, ordered)


@dataclass(frozen=True)
class Cell:
    """Statistics of the test metric of one method x proportion over its seeds (n runs)."""

    method: str
    proportion: float
    n: int
    mean: float
    std: float  # sample standard deviation, 0 for one seed
    lo: float
    hi: float
    best_epoch: float  # mean over seeds
    seconds: float  # mean wall seconds per run
    floor: float  # mean over seeds of the floor (NaN when the runs report none)

    def below_floor(self, lower_is_better: bool = False) -> bool:
        """Whether the mean is on the wrong side of the floor (below it; above it for NRMSE)."""
        if not math.isfinite(self.floor):
            return False
        return self.mean > self.floor if lower_is_better else self.mean < self.floor


def summarise(rows: Sequence[Mapping[str, Any]]) -> list[Cell]:
    """Mean, sample std (0 for one seed), min and max of the test metric per method x proportion."""
    groups: dict[tuple[str, float], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((str(r["method"]), float(r["proportion"])), []).append(r)
    cells = []
    for (method, p), rs in groups.items():
        values = [float(r["metric"]) for r in rs]
        cells.append(
            Cell(
                method,
                p,
                len(values),
                statistics.fmean(values),
                statistics.stdev(values) if len(values) > 1 else 0.0,
                min(values),
                max(values),
                statistics.fmean(float(r["best_epoch"]) for r in rs),
                statistics.fmean(float(r["seconds"]) for r in rs),
                _mean_finite(r.get("floor") for r in rs),
            )
        )
    return cells


def _mean_finite(values: Iterable[Any]) -> float:
    """Mean of the finite numbers among ``values`` (None, empty and NaN skipped); NaN if none."""
    finite = [float(v) for v in values if v not in (None, "") and math.isfinite(float(v))]
    return statistics.fmean(finite) if finite else math.nan


def floors(cells: Sequence[Cell]) -> dict[float, float]:
    """The floor per proportion: mean over the cells (methods) that report one; the floor
    depends only on the split (proportion and seed), not on the method."""
    by: dict[float, list[float]] = {}
    for c in cells:
        if math.isfinite(c.floor):
            by.setdefault(c.proportion, []).append(c.floor)
    return {p: statistics.fmean(v) for p, v in by.items()}


def _direction(name: str) -> str:
    return "lower" if name in LOWER_IS_BETTER else "higher"


def _cell_text(c: Cell | None, lower: bool) -> str:
    """``mean ± std (min–max, n=seeds)``, with a trailing ``*`` when the mean is past the floor."""
    if c is None:
        return "-"
    mark = " *" if c.below_floor(lower) else ""
    return f"{c.mean:.3f} ± {c.std:.3f} ({c.lo:.3f}–{c.hi:.3f}, n={c.n}){mark}"


def markdown_table(rows: Sequence[Mapping[str, Any]], methods: Sequence[str] | None = None) -> str:
    """Methods as rows, proportions as columns: ``mean ± std (min–max, n=seeds)`` of the test
    metric; a last row with the floor per proportion, and ``*`` on cells whose mean does not
    clear it (below it, or above it when lower is better)."""
    cells = summarise(rows)
    if not cells:
        return "(no finished runs)\n"
    order = list(methods) if methods else sorted({c.method for c in cells})
    order += sorted({c.method for c in cells} - set(order))
    props = sorted({c.proportion for c in cells}, reverse=True)
    by = {(c.method, c.proportion): c for c in cells}
    name = str(rows[0].get("metric_name", "metric"))
    lower = name in LOWER_IS_BETTER
    lines = [
        "| method | " + " | ".join(f"{100 * p:g} %" for p in props) + " |",
        "|---|" + "---|" * len(props),
    ]
    for m in order:
        lines.append(f"| {m} | " + " | ".join(_cell_text(by.get((m, p)), lower) for p in props) + " |")
    floor = floors(cells)
    if floor:
        lines.append(
            "| floor | " + " | ".join(f"{floor[p]:.3f}" if p in floor else "-" for p in props) + " |"
        )
    lines.append("")
    lines.append(
        f"Test {name} ({_direction(name)} is better): mean ± sample std over seeds (min–max, number of seeds)."
    )
    if floor:
        side = "above" if lower else "below"
        lines.append(
            "floor: test score of the best input-independent prediction (mean training "
            + ("landmarks" if lower else "mask, threshold tuned on validation")
            + f"), mean over seeds; * = mean {side} the floor (learnt nothing usable from the image)."
        )
    return "\n".join(lines) + "\n"


def plot(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    methods: Sequence[str] | None = None,
    reference: Mapping[str, Mapping[float, float]] | None = None,
    title: str = "",
) -> Path:
    """Test metric vs paired proportion (log x): the mean per method and its min-max band, and
    the floor per proportion as a grey dashed line (when the runs report it).

    ``reference`` adds dashed lines of published numbers (e.g. the paper's, at its own budget),
    drawn only within the sweep's range of proportions.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = summarise(rows)
    order = list(methods) if methods else sorted({c.method for c in cells})
    name = str(rows[0].get("metric_name", "metric")) if rows else "metric"
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for i, m in enumerate(order):
        cs = sorted((c for c in cells if c.method == m), key=lambda c: c.proportion)
        if not cs:
            continue
        xs = [100 * c.proportion for c in cs]
        ax.plot(xs, [c.mean for c in cs], "o-", color=f"C{i}", label=m)
        ax.fill_between(xs, [c.lo for c in cs], [c.hi for c in cs], color=f"C{i}", alpha=0.2, linewidth=0)
        if reference and m in reference:
            lo, hi = min(c.proportion for c in cells), max(c.proportion for c in cells)
            ref = sorted((p, v) for p, v in reference[m].items() if lo <= p <= hi)
            label = f"{m}, paper (128 px, 1000 epochs)"
            ax.plot(
                [100 * p for p, _ in ref], [v for _, v in ref], "--", color=f"C{i}", alpha=0.6, label=label
            )
    floor = sorted(floors(cells).items())
    if floor:
        ax.plot([100 * p for p, _ in floor], [v for _, v in floor], "--", color="0.3", label="floor")
    ticks = sorted({100 * c.proportion for c in cells})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("paired training pairs (%)")
    ax.set_ylabel(f"test {name} ({_direction(name)} is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(textwrap.fill(title, 90), fontsize=8)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp)  # the temporary name keeps the .png ending that picks the format
    plt.close(fig)
    return Path(path)
