"""Phantom mIoU of basic, SOP, IODA and LSM at 100, 20 and 5 % paired training data.

The paper's SSS comparison (table of its appendix) on the synthetic L3 phantom, at a CPU budget:
a cohort of N phantom slices (:func:`lsmseg.data.phantom.write_cohort`) is split by the paper's
protocol and each method x proportion x seed is trained and tested through the ``lsm_sss``
bundle (``train.json``, then ``train.json`` + ``evaluate.json``) with the settings below as
overrides, one child process per run (:func:`lsmseg.experiments.sweep.run_sweep`, which also makes the
benchmark resumable). The bundle's own data path is used end to end: NIfTI ingest with the
quality gate, body crop, HU window, resize, the 70/10/20 split, validation mIoU early stopping
with best-weight restore, and the test-split ``metrics.json``.

Outputs (``--out``, default ``benchmarks/results``):

    phantom_miou.csv   method, proportion, seed, miou, iou_sat, iou_vat, iou_muscle, best_epoch, seconds
    phantom_miou.png   test mIoU vs paired proportion, one line per method

The run folders (checkpoints, logs, the cohort) go to ``--work`` (default ``runs/phantom_miou``,
ignored by git). The defaults cost about 480 CPU seconds: about 5 min on 2 idle cores (two
single-threaded runs at a time), 12 min on a shared machine at load 7 (benchmarks/README.md).

    python benchmarks/phantom_miou.py
    python benchmarks/phantom_miou.py --seeds 0,1 --max-epochs 60 --image-size 128   # longer
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COLUMNS = (
    "method",
    "proportion",
    "seed",
    "miou",
    "iou_sat",
    "iou_vat",
    "iou_muscle",
    "best_epoch",
    "seconds",
)
METHODS = ("basic", "sop", "ioda", "lsm")
PROPORTIONS = (1.0, 0.2, 0.05)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="CSV and PNG folder")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "phantom_miou", help="run folders, cohort")
    p.add_argument("--bundle", type=Path, default=REPO / "bundles" / "lsm_sss")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--proportions", default=",".join(f"{x:g}" for x in PROPORTIONS))
    p.add_argument("--seeds", default="0", help="comma-separated seeds (split and initialisation)")
    p.add_argument("--n", type=int, default=100, help="phantom cases (70 %% train, 10 %% valid, 20 %% test)")
    p.add_argument("--size", type=int, default=256, help="phantom matrix size, pixels (field of view kept)")
    p.add_argument("--image-size", type=int, default=64, help="network input side, pixels (paper: 128)")
    p.add_argument("--ngf", type=int, default=8, help="generator width (paper: 64)")
    p.add_argument("--ndf", type=int, default=8, help="latent critic width (paper: 64)")
    p.add_argument("--batch-size", type=int, default=8)
    # 20x the paper's rate: the epoch budget is 25x smaller than its 1000 epochs
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--max-epochs", type=int, default=40, help="epoch budget (per stage for ioda)")
    p.add_argument("--patience", type=int, default=10, help="validations without improvement before stopping")
    p.add_argument(
        "--objective",
        type=Path,
        default=None,
        help="an objective overlay of the bundle, e.g. configs/reference_balance.json (its settings become overrides)",
    )
    # one single-threaded run per core: small convolutions gain little from a second thread
    p.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="runs at a time (default: one per core)"
    )
    return p.parse_args(argv)


def phantom_cohort(folder: Path, n: int, size: int) -> Path:
    """The benchmark's cohort (NIfTI), written once; a folder with another ``n`` is an error."""
    from lsmseg.data.phantom import write_cohort

    images = folder / "images"
    if images.is_dir():
        found = len(list(images.glob("*.nii.gz")))
        if found != n:
            raise SystemExit(f"{folder} holds {found} cases, not {n}: use another --work")
        return folder
    write_cohort(folder, n, fmt="nifti", seed=0, size=size)
    return folder


def collect(work: Path, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One output row per finished sweep run, with the per-class IoU of its ``metrics.json``."""
    from lsmseg.experiments.grid import RunSpec

    out = []
    for r in rows:
        name = RunSpec(str(r["method"]), float(r["proportion"]), int(r["seed"])).name
        metrics = json.loads((work / "runs" / name / "output" / "metrics.json").read_text())
        iou = metrics["iou"]
        out.append(
            {
                "method": r["method"],
                "proportion": r["proportion"],
                "seed": r["seed"],
                "miou": round(float(metrics["miou"]), 4),
                "iou_sat": round(float(iou["sat"]), 4),
                "iou_vat": round(float(iou["vat"]), 4),
                "iou_muscle": round(float(iou["muscle"]), 4),
                "best_epoch": r["best_epoch"],
                "seconds": r["seconds"],
            }
        )
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(out, key=lambda r: (order.get(r["method"], 99), -float(r["proportion"]), r["seed"]))


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The benchmark's CSV (:data:`COLUMNS`), written atomically."""
    from lsmseg.io.atomic import write_csv_atomic

    write_csv_atomic(path, COLUMNS, rows)


def plot(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Test mIoU vs paired proportion (log x), one line per method (mean over seeds, min-max bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    methods += sorted({str(r["method"]) for r in rows} - set(methods))
    for i, m in enumerate(methods):
        props = sorted({float(r["proportion"]) for r in rows if r["method"] == m})
        values = [
            [float(r["miou"]) for r in rows if r["method"] == m and float(r["proportion"]) == p]
            for p in props
        ]
        means = [sum(v) / len(v) for v in values]
        err = [
            [mu - min(v) for mu, v in zip(means, values, strict=True)],
            [max(v) - mu for mu, v in zip(means, values, strict=True)],
        ]
        ax.errorbar([100 * p for p in props], means, yerr=err, fmt="o-", color=f"C{i}", capsize=3, label=m)
    ticks = sorted({100 * float(r["proportion"]) for r in rows})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("paired training pairs (%)")
    ax.set_ylabel("test mIoU (SAT, VAT, muscle)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The table benchmarks/README.md shows: methods as rows, proportions as columns."""
    props = sorted({float(r["proportion"]) for r in rows}, reverse=True)
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    lines = [
        "| method | " + " | ".join(f"{100 * p:g} %" for p in props) + " |",
        "|---|" + "---|" * len(props),
    ]
    for m in methods:
        cells = []
        for p in props:
            rs = [r for r in rows if r["method"] == m and float(r["proportion"]) == p]
            if not rs:
                cells.append("-")
                continue
            miou, sat, vat, muscle = (
                sum(float(r[k]) for r in rs) / len(rs) for k in ("miou", "iou_sat", "iou_vat", "iou_muscle")
            )
            cells.append(f"{miou:.3f} ({sat:.2f} / {vat:.2f} / {muscle:.2f})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from lsmseg.bundle.overlays import read_overlay
    from lsmseg.experiments.sweep import run_sweep

    work = args.work.resolve()
    t0 = time.perf_counter()
    cohort = phantom_cohort(work / "phantom", args.n, args.size)
    overrides = {
        "dataset_dir": str(cohort),
        "image_size": args.image_size,
        "ngf": args.ngf,
        "ndf": args.ndf,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_epochs": args.max_epochs,
        "patience": args.patience,
    }
    if args.objective is not None:  # an overlay's settings, as explicit overrides of every run
        overrides |= read_overlay(args.bundle / args.objective)
    report = run_sweep(
        args.bundle,
        methods=[m.strip() for m in args.methods.split(",")],
        proportions=[float(p) for p in args.proportions.split(",")],
        seeds=[int(s) for s in args.seeds.split(",")],
        out=work / "sweep",
        preset="paper",  # every setting that departs from the paper is an explicit override above
        overrides=overrides,
        jobs=args.jobs,
        threads=1,
    )
    rows = collect(work / "sweep", report.rows)
    write_csv(rows, args.out / "phantom_miou.csv")
    settings = ", ".join(f"{k} {v}" for k, v in overrides.items() if k != "dataset_dir")
    title = f"lsm_sss on a {args.n}-case phantom ({args.size} px), {len(rows)} runs\n{settings}"
    plot(rows, args.out / "phantom_miou.png", title)
    print(markdown(rows))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{len(rows)} runs in {args.out / 'phantom_miou.csv'}; this call {time.perf_counter() - t0:.0f} s, load {load}"
    )
    failed = [f"{s.name} ({log})" for s, log in report.failed]
    if failed:
        print("failed: " + "; ".join(failed))
    return 1 if failed or any(math.isnan(float(r["miou"])) for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
