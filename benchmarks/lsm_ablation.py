"""Which setting gives LSM its gain: the issue-10 ablation on SIT at a fixed budget.

Every run trains ``bundles/lsm_sit`` for exactly ``--epochs`` epochs (no early stopping; the
best-validation weights are tested), ngf 8, critic ndf 8, batch 16, Adam 1e-4, lambdas rec 1,
sup 10, reverse 10, lat 1, adv 1 - the budget at which the authors' code shows LSM +0.06 over
basic (``lsm_method.md``). Variants switch one objective option at a time (``OPTIONS`` in
``lsmseg.bundle``), then all of them together. Each run is one child process
(``python -m lsmseg.experiments.run``); finished runs (``result.json``) are skipped, so an
interrupted ablation resumes.

    python benchmarks/lsm_ablation.py --jobs 2            # 3 seeds, p = 1 and 0.2, embedded SIT
    python benchmarks/lsm_ablation.py --variants basic,lsm --seeds 0 --proportions 1

Writes ``benchmarks/results/lsm_ablation/{results.csv,summary.md}``: the test metric (per-image
ring IoU on the 100 test images), the best validation metric and its epoch, the floor
(the best input-independent mask) and seconds per run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lsmseg.bundle.overlays import objective, read_overlay

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "lsm_ablation"

SIT = ROOT / "bundles" / "lsm_sit"

# The objective as the paper's text has it (the bundles' defaults before this ablation): every
# variant is this plus its changes, so a variant means the same whatever the bundle defaults are.
PAPER = objective(read_overlay(SIT / "configs" / "paper.json"))
# Everything the reference code does differently, as bundle overrides (lsm_method.md).
REFERENCE = objective(read_overlay(SIT / "configs" / "reference.json"))
VARIANTS: dict[str, tuple[str, dict]] = {
    "basic": ("basic", {}),
    "basic+epoch": ("basic", {"sampling": "epoch"}),
    "basic+reference_ce": ("basic", {"sup_loss": "reference"}),
    "lsm": ("lsm", {}),
    "lsm+reference_ce": ("lsm", {"sup_loss": "reference"}),
    "lsm+minimax": ("lsm", {"adversarial": "minimax"}),
    "lsm+adv_all": ("lsm", {"adversarial_rows": "all"}),
    "lsm+epoch": ("lsm", {"sampling": "epoch"}),
    "lsm+shared": ("lsm", {"unpaired": "shared"}),
    "lsm+reference_all": ("lsm", REFERENCE),
    # the reference's behaviour without its double softmax: adversarial, rows and sampling only
    "lsm+reference_but_ce": ("lsm", {**REFERENCE, "sup_loss": "ce"}),
    "lsm+adv_all_minimax": ("lsm", {"adversarial": "minimax", "adversarial_rows": "all"}),
    # the reference's balance in logits-CE units (lsm_method.md: sup ~0.6-0.9, mask rec ~0.06-0.09)
    "lsm+reference_but_ce_sup0.75": (
        "lsm",
        {
            **REFERENCE,
            "sup_loss": "ce",
            "lambdas": {"rec": 1.0, "sup": 0.75, "reverse": 10.0, "lat": 1.0, "adv": 1.0},
        },
    ),
    "lsm+reference_but_ce_sup0.75_rec0.1": (
        "lsm",
        {
            **REFERENCE,
            "sup_loss": "ce",
            "lambdas": {"rec": 0.1, "sup": 0.75, "reverse": 10.0, "lat": 1.0, "adv": 1.0},
        },
    ),
    "basic+reference_all": ("basic", REFERENCE),
    # what a clinical researcher would pick instead, at the same budget
    "unet": ("unet", {}),
    "meanteacher": ("meanteacher", {}),
}
# A setting that only changes unpaired rows changes nothing at p = 1: not run there.
UNPAIRED_ONLY = {"lsm+shared"}


def budget(epochs: int, image_size: int, dataset_dir: str) -> dict:
    """The fixed budget of every run (bundle overrides)."""
    return {
        "dataset_dir": dataset_dir,
        "image_size": image_size,
        "ngf": 8,
        "ndf": 8,
        "batch_size": 16,
        "learning_rate": 1e-4,
        "max_epochs": epochs,
        "patience": 10 * epochs,  # never stops early
        "lambdas": {"rec": 1.0, "sup": 10.0, "reverse": 10.0, "lat": 1.0, "adv": 1.0},
        "resume": False,
        "overwrite": True,
    }


def plan(variants: list[str], proportions: list[float], seeds: list[int]) -> list[tuple[str, float, int]]:
    return [
        (v, p, s)
        for s in seeds
        for p in proportions
        for v in variants
        if not (p == 1.0 and v in UNPAIRED_ONLY)
    ]


def start(run: tuple[str, float, int], base: dict, out: Path) -> subprocess.Popen | None:
    """Start one run's child process; None when its result is already on disk."""
    variant, p, seed = run
    folder = out / "runs" / f"{variant}_p{p:g}_s{seed}"
    if (folder / "result.json").exists():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    method, options = VARIANTS[variant]
    overrides = {
        **base,
        **PAPER,
        **options,
        "method": method,
        "proportion": p,
        "seed": seed,
        "bundle_root": str(SIT),
        "ckpt_dir": str(folder / "ckpt"),
        "output_dir": str(folder / "output"),
    }
    spec = folder / "spec.json"
    spec.write_text(json.dumps({"bundle": overrides["bundle_root"], "overrides": overrides}, indent=1))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(folder / "run.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "lsmseg.experiments.run", str(spec)], stdout=log, stderr=log, env=env
        )


def collect(runs: list[tuple[str, float, int]], out: Path) -> list[dict]:
    """One row per finished run, from its result.json and metrics.json."""
    rows = []
    for variant, p, seed in runs:
        folder = out / "runs" / f"{variant}_p{p:g}_s{seed}"
        if not (folder / "result.json").exists():
            continue
        result = json.loads((folder / "result.json").read_text())
        metrics = json.loads((folder / "output" / "metrics.json").read_text())
        rows.append(
            {
                "variant": variant,
                "proportion": f"{p:g}",
                "seed": seed,
                "test_miou": round(result["metric"], 4),
                "valid_miou": round(result["valid_metric"], 4),
                "best_epoch": result["best_epoch"],
                "floor": round(metrics["floor"], 4) if "floor" in metrics else "",
                "train_seconds": result["train_seconds"],
            }
        )
    return rows


def summary(rows: list[dict], variants: list[str], proportions: list[float]) -> str:
    """Markdown: mean +- sd over seeds per variant and proportion, and the gap to basic."""

    def cell(v: str, p: float) -> list[float]:
        return [r["test_miou"] for r in rows if r["variant"] == v and r["proportion"] == f"{p:g}"]

    def fmt(xs: list[float]) -> str:
        if not xs:
            return "-"
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{statistics.mean(xs):.3f} +- {sd:.3f} (n={len(xs)})"

    head = "| variant | " + " | ".join(f"p={p:g} | gap vs basic" for p in proportions) + " | best epoch |"
    lines = [head, "|---" * (2 * len(proportions) + 2) + "|"]
    for v in variants:
        cells = []
        for p in proportions:
            xs, base = cell(v, p), cell("basic", p)
            gap = f"{statistics.mean(xs) - statistics.mean(base):+.3f}" if xs and base else "-"
            cells += [fmt(xs), gap]
        epochs = [r["best_epoch"] for r in rows if r["variant"] == v]
        lines.append(
            f"| {v} | " + " | ".join(cells) + f" | {statistics.mean(epochs):.1f} |" if epochs else ""
        )
    floor = []
    for p in proportions:
        values = [r["floor"] for r in rows if r["proportion"] == f"{p:g}" and r["floor"] != ""]
        floor += [f"{statistics.mean(values):.3f}" if values else "-", ""]
    lines.append("| floor (best input-independent mask) | " + " | ".join(floor) + " | |")
    return "\n".join(line for line in lines if line) + "\n"


def plot(rows: list[dict], variants: list[str], proportions: list[float], path: Path) -> None:
    """Bars: mean test IoU per variant (+- sd over seeds) at each proportion, the floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(proportions), figsize=(6 * len(proportions), 0.4 * len(variants) + 1.5))
    for ax, p in zip(list(getattr(axes, "flat", [axes])), proportions, strict=True):
        cells = [
            [r["test_miou"] for r in rows if r["variant"] == v and r["proportion"] == f"{p:g}"]
            for v in variants
        ]
        means = [statistics.mean(c) if c else float("nan") for c in cells]
        sds = [statistics.stdev(c) if len(c) > 1 else 0.0 for c in cells]
        ax.barh(range(len(variants)), means, xerr=sds, color="tab:blue", alpha=0.7)
        floors = [r["floor"] for r in rows if r["proportion"] == f"{p:g}" and r["floor"] != ""]
        if floors:
            ax.axvline(statistics.mean(floors), color="grey", ls="--", label="floor (input-independent)")
            ax.legend(loc="best", fontsize=8)
        ax.set_yticks(range(len(variants)), variants)
        ax.invert_yaxis()
        ax.set_xlabel("test ring IoU")
        ax.set_title(f"{p:.0%} paired")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--proportions", default="1,0.2")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--dataset-dir", default=None, help="a SIT folder; default the embedded set at 64 px")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-run", action="store_true", help="only collect finished runs into the tables")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    proportions = [float(p) for p in args.proportions.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.dataset_dir is None and not args.no_run:
        from lsmseg.experiments.grid import sit_folder

        args.dataset_dir = sit_folder(args.image_size)
    base = budget(args.epochs, args.image_size, args.dataset_dir)
    runs = plan(variants, proportions, seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    t0, queue, running = time.time(), [] if args.no_run else list(runs), []
    while queue or running:
        while queue and len(running) < args.jobs:
            proc = start(queue.pop(0), base, args.out)
            if proc is not None:
                running.append(proc)
        time.sleep(1)
        for proc in [p for p in running if p.poll() is not None]:
            running.remove(proc)
            if proc.returncode:
                print(f"a run failed ({proc.args[-1]}): see its run.log", file=sys.stderr)
    rows = collect(runs, args.out)
    with open(args.out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["variant"])
        writer.writeheader()
        writer.writerows(rows)
    text = summary(rows, variants, proportions)
    (args.out / "summary.md").write_text(text)
    if rows:
        plot(rows, variants, proportions, args.out / "ablation.png")
    print(text)
    print(f"{len(rows)} runs, {time.time() - t0:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
