"""The paper's comparison: train and test a bundle for each method x proportion x seed.

Each run is one child process (``python -m lsmseg.sweep SPEC``) that trains the bundle
(``configs/train.json``) and then tests it (``train.json`` + ``evaluate.json``) in-process
through :class:`monai.bundle.ConfigWorkflow`, with the run's settings as overrides. A process
per run isolates global state (``set_determinism``, logging, tensorboard writers, memory), gives
each run its own log file and thread count, lets one failed run leave the others intact, and
allows runs in parallel (``jobs``); training and testing in the same child halves the
interpreter and import start-up a pair of ``python -m monai.bundle run`` commands would cost.
Each run folder also holds ``commands.sh``, the equivalent ``monai.bundle run`` commands.

Layout of the output folder ``DIR``::

    DIR/sweep.json                  settings shared by every run (a resumed sweep must match them)
    DIR/results.csv                 one row per finished run, rewritten atomically after each
    DIR/sweep.png                   test metric vs proportion (log x): mean and min-max band
    DIR/summary.md                  mean +- std (min-max) per method x proportion
    DIR/runs/<method>_p<p>_s<seed>/ run.log, spec.json, commands.sh, result.json,
                                    ckpt/{model.pt, best.json}, output/metrics.json

A sweep that stops (Ctrl-C, a crash, a full disk) resumes where it stopped: runs whose row is
already in ``results.csv`` are skipped, unfinished ones start again from scratch.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
)
"""Columns of ``results.csv``: the DESIGN.md contract first (metric = test split; best_epoch =
epoch of the best validation score of the final stage, counted over all stages; seconds = wall
time of the run's process), then the metric's name, the best validation score, the epochs
trained (all stages), the CPU seconds the run's process used (user + system: what the run costs
whatever else shares the machine), its torch threads and the 1-minute load average at its end."""

LOWER_IS_BETTER = frozenset({"nrmse"})

# Settings of each preset, applied as bundle overrides (command-line values win).
PRESETS: dict[str, dict[str, Any]] = {
    # The bundle's own defaults: ngf 64, 128 px, 1000 epochs, patience 100 (the paper).
    "paper": {},
    # Widths and budgets that finish the 24-run grid (4 methods x 3 proportions x 2 seeds)
    # within an hour on 2 CPU cores: benchmarks/README.md ("SIT sweep") has the measurements.
    # The learning rate is 10x the paper's because the epoch budget is ~30x smaller.
    "cpu": {"ngf": 8, "ndf": 16, "batch_size": 16, "max_epochs": 30, "patience": 8, "learning_rate": 1e-3},
}
# Runs at a time by default: one single-threaded run per core on the CPU (small convolutions
# scale poorly over threads, and one thread per run is immune to the OpenMP barrier stalls that
# several multi-threaded processes on a shared machine suffer), one run with every core else.
DEFAULT_JOBS: dict[str, int | None] = {"cpu": None, "paper": 1}
CPU_IMAGE_SIZE = 64  # px: SIT bundles at the cpu preset use a 64 px copy of the data set
SIT_SAMPLES = 500  # pairs in the SIT data set (paper); the cpu preset keeps all of them

# The paper's SIT numbers (appendix ablation, 128 px, 1000 epochs), drawn for reference.
PAPER_REFERENCE: dict[str, dict[str, dict[float, float]]] = {
    "lsm_sit": {
        "lsm": {1.0: 0.732, 0.6: 0.650, 0.2: 0.494, 0.05: 0.385, 0.03: 0.375, 0.01: 0.327},
        "basic": {1.0: 0.535, 0.6: 0.425, 0.2: 0.343, 0.05: 0.293, 0.03: 0.301, 0.01: 0.269},
    }
}


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid."""

    method: str
    proportion: float
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.method, fmt_proportion(self.proportion), self.seed)

    @property
    def name(self) -> str:
        """Run folder name, e.g. ``lsm_p0.05_s1``."""
        return f"{self.method}_p{fmt_proportion(self.proportion)}_s{self.seed}"


def fmt_proportion(p: float | str) -> str:
    """Canonical text of a proportion (``1``, ``0.2``, ``0.05``): the key that resumes match on."""
    return f"{float(p):g}"


def plan_runs(methods: Sequence[str], proportions: Sequence[float], seeds: Sequence[int]) -> list[RunSpec]:
    """The grid, proportion-major so that partial sweeps compare methods at equal proportions."""
    return [RunSpec(m, float(p), int(s)) for s in seeds for p in proportions for m in methods]


def check_bundle(bundle: str | os.PathLike) -> Path:
    """A bundle folder with ``configs/train.json`` and ``configs/evaluate.json``."""
    path = Path(bundle).resolve()
    for name in ("train.json", "evaluate.json"):
        if not (path / "configs" / name).is_file():
            raise FileNotFoundError(f"{path} is not a bundle with configs/{name}")
    return path


def _uses_sit(bundle: Path) -> bool:
    """Whether the bundle's default data set is the generated SIT (the cpu preset can shrink it)."""
    config = json.loads((bundle / "configs" / "train.json").read_text())
    return "lsmseg.data.sit" in str(config.get("dataset_dir", ""))


def sit_folder(size: int, n: int = SIT_SAMPLES, seed: int = 0) -> str:
    """A cached SIT folder at ``size`` px (same ring parameters as the 128 px set of this seed)."""
    from lsmseg.data.sit import cache_root, generate_sit, write_sit_folder

    folder = cache_root() / f"sit-n{n}-s{seed}-{size}px-v1"
    if not folder.is_dir():
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        write_sit_folder(tmp, *generate_sit(n, size=size, seed=seed))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    return str(folder)


def preset_overrides(bundle: Path, preset: str) -> dict[str, Any]:
    """Bundle overrides of a preset; the cpu preset points SIT bundles at a 64 px data set."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    overrides = dict(PRESETS[preset])
    if preset == "cpu" and _uses_sit(bundle):
        overrides["image_size"] = CPU_IMAGE_SIZE
        overrides["dataset_dir"] = sit_folder(CPU_IMAGE_SIZE)
    return overrides


def run_overrides(spec: RunSpec, base: Mapping[str, Any], run_dir: Path, bundle: Path) -> dict[str, Any]:
    """All overrides of one run: the sweep's settings, the grid cell and the run's folders."""
    return {
        **base,
        "bundle_root": str(bundle),
        "method": spec.method,
        "proportion": spec.proportion,
        "seed": spec.seed,
        "ckpt_dir": str(run_dir / "ckpt"),
        "output_dir": str(run_dir / "output"),
    }


def bundle_commands(bundle: Path, overrides: Mapping[str, Any]) -> str:
    """The ``python -m monai.bundle run`` commands equivalent to one run (train, then test)."""
    configs = bundle / "configs"
    args = " ".join(f"--{k} {shlex.quote(_cli_value(v))}" for k, v in overrides.items())
    train = _config_list(configs / "train.json")
    both = _config_list(configs / "train.json", configs / "evaluate.json")
    return (
        "#!/usr/bin/env bash\nset -euo pipefail\n"
        f"python -m monai.bundle run --config_file {train} {args}\n"
        f"python -m monai.bundle run --config_file {both} {args}\n"
    )


def _config_list(*paths: Path) -> str:
    """A shell word holding the Python list literal ``monai.bundle run`` expects for several configs."""
    literal = "[" + ",".join(f"'{p}'" for p in paths) + "]"
    plain = not any(c in literal for c in '"$`\\')
    return f'"{literal}"' if plain else shlex.quote(literal)


def _cli_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else str(v)


# --- the child process: one run -----------------------------------------------------------------
def train_and_test(spec_path: str | os.PathLike) -> dict[str, Any]:
    """Train then test one bundle run described by ``spec.json``; write and return ``result.json``.

    ``spec.json``: ``{"bundle": DIR, "overrides": {...}}``. The best epoch is the trainer's
    ``state.best_metric_epoch`` (set by the bundle's early stopping); it is written to
    ``<ckpt_dir>/best.json`` with the best validation metric and the epochs trained.
    """
    import gc
    import resource

    from monai.bundle import ConfigWorkflow

    from lsmseg.engines.evaluation import write_json

    spec = json.loads(Path(spec_path).read_text())
    bundle, overrides = Path(spec["bundle"]), dict(spec["overrides"])
    configs = bundle / "configs"
    t0 = time.perf_counter()
    train = ConfigWorkflow(config_file=str(configs / "train.json"), workflow_type="train", **overrides)
    train.initialize()
    train.run()
    state = train.parser.get_parsed_content("train#trainer").state
    best = {
        "best_epoch": int(state.best_metric_epoch),
        "best_metric": float(state.best_metric),
        "epochs": int(state.epoch),
    }
    train.finalize()
    write_json(best, Path(overrides["ckpt_dir"]) / "best.json")
    del train, state
    gc.collect()
    t1 = time.perf_counter()
    test = ConfigWorkflow(
        config_file=[str(configs / "train.json"), str(configs / "evaluate.json")],
        workflow_type=None,
        **overrides,
    )
    test.initialize()
    test.run()
    test.finalize()
    metrics = json.loads((Path(overrides["output_dir"]) / "metrics.json").read_text())
    name = next((k for k in ("miou", "nrmse") if k in metrics), None)
    if name is None:
        raise ValueError(f"metrics.json has neither miou nor nrmse: {sorted(metrics)}")
    result = {
        "metric_name": name,
        "metric": float(metrics[name]),
        "valid_metric": best["best_metric"],
        "best_epoch": best["best_epoch"],
        "epochs": best["epochs"],
        "train_seconds": round(t1 - t0, 2),
        "test_seconds": round(time.perf_counter() - t1, 2),
        "cpu_seconds": round(_cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)), 1),
    }
    write_json(result, Path(spec_path).with_name("result.json"))
    return result


def _cpu_seconds(usage: Any) -> float:
    return float(usage.ru_utime + usage.ru_stime)


# --- results.csv ------------------------------------------------------------------------------
def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``results.csv`` (empty when the file does not exist); numbers parsed."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["proportion"] = fmt_proportion(r["proportion"])
        r["seed"] = int(r["seed"])
        for k in ("metric", "seconds", "valid_metric", "cpu_seconds", "load_1m"):
            r[k] = float(r[k]) if r.get(k) not in (None, "") else math.nan
        for k in ("best_epoch", "epochs", "threads"):
            r[k] = int(r[k]) if r.get(k) not in (None, "") else -1
    return rows


def write_results(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> None:
    """Write ``results.csv`` atomically, rows sorted by method, proportion (descending), seed."""
    ordered = sorted(rows, key=lambda r: (str(r["method"]), -float(r["proportion"]), int(r["seed"])))
    lines = [",".join(RESULT_COLUMNS)]
    for r in ordered:
        lines.append(",".join(_csv_cell(r.get(c, "")) for c in RESULT_COLUMNS))
    _write_text_atomic(Path(path), "\n".join(lines) + "\n")


def _csv_cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


# --- summary and plot ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """Statistics of one method x proportion over its seeds."""

    method: str
    proportion: float
    n: int
    mean: float
    std: float
    lo: float
    hi: float
    best_epoch: float
    seconds: float


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
            )
        )
    return cells


def markdown_table(rows: Sequence[Mapping[str, Any]], methods: Sequence[str] | None = None) -> str:
    """Methods as rows, proportions as columns: ``mean ± std (min–max)`` of the test metric."""
    cells = summarise(rows)
    if not cells:
        return "(no finished runs)\n"
    order = list(methods) if methods else sorted({c.method for c in cells})
    order += sorted({c.method for c in cells} - set(order))
    props = sorted({c.proportion for c in cells}, reverse=True)
    by = {(c.method, c.proportion): c for c in cells}
    name = str(rows[0].get("metric_name", "metric"))
    head = "| method | " + " | ".join(f"{100 * p:g} %" for p in props) + " |"
    lines = [head, "|---|" + "---|" * len(props)]
    for m in order:
        row = [
            f"{by[m, p].mean:.3f} ± {by[m, p].std:.3f} ({by[m, p].lo:.3f}–{by[m, p].hi:.3f}, n={by[m, p].n})"
            if (m, p) in by
            else "-"
            for p in props
        ]
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines.append("")
    lines.append(
        f"Test {name} ({'lower' if name in LOWER_IS_BETTER else 'higher'} is better): "
        "mean ± sample std over seeds (min–max, number of seeds)."
    )
    return "\n".join(lines) + "\n"


def plot(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    methods: Sequence[str] | None = None,
    reference: Mapping[str, Mapping[float, float]] | None = None,
    title: str = "",
) -> Path:
    """Test metric vs paired proportion (log x): the mean per method and its min-max band.

    ``reference`` adds dashed lines of published numbers (e.g. the paper's, at its own budget).
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
        color = f"C{i}"
        xs = [100 * c.proportion for c in cs]
        ax.plot(xs, [c.mean for c in cs], "o-", color=color, label=m)
        ax.fill_between(xs, [c.lo for c in cs], [c.hi for c in cs], color=color, alpha=0.2, linewidth=0)
        if reference and m in reference:
            # Only the published points within the sweep's range of proportions.
            lo, hi = min(c.proportion for c in cells), max(c.proportion for c in cells)
            ref = sorted((p, v) for p, v in reference[m].items() if lo <= p <= hi)
            ax.plot(
                [100 * p for p, _ in ref],
                [v for _, v in ref],
                "--",
                color=color,
                alpha=0.6,
                label=f"{m}, paper (128 px, 1000 epochs)",
            )
    ax.set_xscale("log")
    ticks = sorted({100 * c.proportion for c in cells})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("paired training pairs (%)")
    ax.set_ylabel(f"test {name} ({'lower' if name in LOWER_IS_BETTER else 'higher'} is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(textwrap.fill(title, 90), fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


# --- the sweep ----------------------------------------------------------------------------------
@dataclass
class SweepReport:
    """What a sweep did: rows of every finished run, the runs it started and those that failed."""

    rows: list[dict[str, Any]]
    ran: list[RunSpec]
    failed: list[tuple[RunSpec, str]]
    seconds: float
    results_csv: Path
    plot_png: Path | None


def check_settings(out: Path, settings: Mapping[str, Any]) -> None:
    """A resumed sweep must use the settings its finished runs used; write them on first use."""
    path = out / "sweep.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(settings)):
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise ValueError(
                f"{out} holds a sweep with other settings ({', '.join(diff)} differ): "
                "use another --out, or the same options"
            )
    else:
        _write_text_atomic(path, json.dumps(settings, indent=2) + "\n")


def run_sweep(
    bundle: str | os.PathLike,
    methods: Sequence[str],
    proportions: Sequence[float],
    seeds: Sequence[int],
    out: str | os.PathLike,
    preset: str = "paper",
    overrides: Mapping[str, Any] | None = None,
    jobs: int | None = None,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> SweepReport:
    """Run (or resume) the grid and write ``results.csv``, ``summary.md`` and ``sweep.png``.

    Args:
        bundle: bundle folder (``configs/train.json`` and ``configs/evaluate.json``).
        methods, proportions, seeds: the grid (``basic``, ``sop``, ``ioda``, ``lsm``, ``lsmABCD``;
            paired fractions in (0, 1]; seeds).
        out: output folder (see the module docstring).
        preset: ``paper`` (the bundle's defaults) or ``cpu`` (see :data:`PRESETS`).
        overrides: further bundle overrides (``max_epochs``, ``patience``, ...), applied last.
        jobs: runs at a time; default :data:`DEFAULT_JOBS` of the preset (None = one per CPU core).
        threads: torch threads per run; default: the CPU count divided by ``jobs``.
        log: receives one line per started / finished run.
    """
    from lsmseg.data.split import check_proportion
    from lsmseg.methods.config import method_stages

    for m in methods:
        method_stages(m, ["x", "y"])
    for p in proportions:
        check_proportion(p)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    cores = os.cpu_count() or 1
    jobs = jobs or DEFAULT_JOBS.get(preset) or cores
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    bundle_path = check_bundle(bundle)
    out_path = Path(out).resolve()
    threads = threads or max(1, cores // jobs)
    base = {**preset_overrides(bundle_path, preset), **dict(overrides or {})}
    check_settings(out_path, {"bundle": str(bundle_path), "preset": preset, "overrides": base})
    results_csv = out_path / "results.csv"
    rows = read_results(results_csv)
    done = {(r["method"], r["proportion"], r["seed"]) for r in rows}
    todo = [s for s in plan_runs(methods, proportions, seeds) if s.key not in done]
    log(
        f"sweep: {len(todo)} run(s) to do, {len(done)} already in {results_csv} "
        f"({jobs} at a time, {threads} thread(s) each)"
    )
    t0 = time.perf_counter()
    failed: list[tuple[RunSpec, str]] = []
    running: dict[RunSpec, tuple[subprocess.Popen, float, Path]] = {}
    pending = list(todo)
    finished = 0
    try:
        while pending or running:
            while pending and len(running) < jobs:
                spec = pending.pop(0)
                running[spec] = _start(spec, bundle_path, base, out_path, threads)
                log(f"[start] {spec.name}")
            time.sleep(0.2)
            for spec, (proc, started, run_dir) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[spec]
                finished += 1
                seconds = time.perf_counter() - started
                tag = f"[{finished}/{len(todo)}] {spec.name}"
                if proc.returncode != 0:
                    failed.append((spec, str(run_dir / "run.log")))
                    log(f"{tag}: FAILED (exit {proc.returncode}), see {run_dir / 'run.log'}")
                    continue
                result = json.loads((run_dir / "result.json").read_text())
                row = {
                    "method": spec.method,
                    "proportion": fmt_proportion(spec.proportion),
                    "seed": spec.seed,
                    "seconds": round(seconds, 1),
                    "threads": threads,
                    "load_1m": round(os.getloadavg()[0], 2),
                    **{
                        k: result[k]
                        for k in (
                            "metric",
                            "metric_name",
                            "valid_metric",
                            "best_epoch",
                            "epochs",
                            "cpu_seconds",
                        )
                    },
                }
                rows.append(row)
                write_results(rows, results_csv)
                log(
                    f"{tag}: test {row['metric_name']} {row['metric']:.4f}, best epoch {row['best_epoch']}"
                    f"/{row['epochs']}, {seconds:.0f} s ({row['cpu_seconds']:.0f} CPU s)"
                )
    finally:
        for proc, _, _ in running.values():
            proc.terminate()
        for proc, _, _ in running.values():
            proc.wait()
    png = None
    if rows:
        _write_text_atomic(out_path / "summary.md", markdown_table(rows, methods))
        reference = PAPER_REFERENCE.get(bundle_path.name)
        title = f"{bundle_path.name}, preset {preset}: " + ", ".join(
            f"{k} {v}" for k, v in base.items() if k != "dataset_dir"
        )
        png = plot(rows, out_path / "sweep.png", methods, reference, title)
    return SweepReport(rows, todo, failed, time.perf_counter() - t0, results_csv, png)


def _start(
    spec: RunSpec, bundle: Path, base: Mapping[str, Any], out: Path, threads: int
) -> tuple[subprocess.Popen, float, Path]:
    """Start one run's child process in a fresh run folder."""
    run_dir = out / "runs" / spec.name
    shutil.rmtree(run_dir, ignore_errors=True)  # an unfinished earlier attempt starts over
    run_dir.mkdir(parents=True)
    overrides = run_overrides(spec, base, run_dir, bundle)
    spec_path = run_dir / "spec.json"
    spec_path.write_text(json.dumps({"bundle": str(bundle), "overrides": overrides}, indent=2))
    (run_dir / "commands.sh").write_text(bundle_commands(bundle, overrides))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(run_dir / "run.log", "w") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lsmseg.sweep", str(spec_path)],
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return proc, time.perf_counter(), run_dir


def main(argv: Sequence[str] | None = None) -> int:
    """Child entry point: ``python -m lsmseg.sweep RUN_DIR/spec.json``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m lsmseg.sweep RUN_DIR/spec.json", file=sys.stderr)
        return 2
    result = train_and_test(args[0])
    print(f"result: {json.dumps(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
