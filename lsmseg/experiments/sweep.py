"""The paper's comparison: train and test a bundle for each method x proportion x seed.

Each run is one child process (:mod:`lsmseg.experiments.run`) that trains the bundle and then
tests it. A process per run isolates global state (``set_determinism``, logging, tensorboard
writers, memory), gives each run its own log file and thread count, lets one failed run leave
the others intact, and allows runs in parallel (``jobs``). Each run folder also holds
``commands.sh``, the equivalent ``monai.bundle run`` commands.

Layout of the output folder ``DIR``::

    DIR/sweep.json                  settings shared by every run (a resumed sweep must match them)
    DIR/results.csv                 one row per finished run, rewritten atomically after each
    DIR/sweep.png                   test metric vs proportion (log x): mean and min-max band,
                                    the floor (best input-independent prediction) dashed
    DIR/summary.md                  mean +- std (min-max) per method x proportion, the floor,
                                    cells on the wrong side of the floor marked *
    DIR/runs/<method>_p<p>_s<seed>/ run.log, spec.json, commands.sh, result.json,
                                    ckpt/{model.pt, best.json}, output/metrics.json

A sweep that stops (Ctrl-C, a crash, a full disk) resumes where it stopped: runs whose row is
already in ``results.csv`` are skipped, unfinished ones start again from scratch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from lsmseg.errors import UsageError
from lsmseg.experiments.grid import (
    DEFAULT_JOBS,
    RunSpec,
    bundle_commands,
    check_bundle,
    check_preset,
    fmt_proportion,
    plan_runs,
    preset_overrides,
    run_overrides,
)
from lsmseg.experiments.tables import markdown_table, plot, read_results, write_results
from lsmseg.io.atomic import write_json_atomic, write_text_atomic

# The paper's SIT numbers (appendix ablation, 128 px, 1000 epochs), drawn for reference.
PAPER_REFERENCE: dict[str, dict[str, dict[float, float]]] = {
    "lsm_sit": {
        "lsm": {1.0: 0.732, 0.6: 0.650, 0.2: 0.494, 0.05: 0.385, 0.03: 0.375, 0.01: 0.327},
        "basic": {1.0: 0.535, 0.6: 0.425, 0.2: 0.343, 0.05: 0.293, 0.03: 0.301, 0.01: 0.269},
    }
}
# Keys of a run's result.json copied into its results.csv row.
RESULT_KEYS = ("metric", "metric_name", "valid_metric", "best_epoch", "epochs", "cpu_seconds", "floor")
POLL_S = 0.2  # how often the parent looks for finished children, seconds


@dataclass
class SweepReport:
    """What a sweep did: rows of every finished run, the runs it started and those that failed
    (with the path of their log)."""

    rows: list[dict[str, Any]]
    ran: list[RunSpec]
    failed: list[tuple[RunSpec, str]]
    seconds: float
    results_csv: Path
    plot_png: Path | None


class _Running(NamedTuple):
    proc: subprocess.Popen
    started: float  # time.perf_counter() at start
    run_dir: Path
    threads: int  # torch threads of the child


def check_settings(out: Path, settings: Mapping[str, Any]) -> None:
    """A resumed sweep must use the settings its finished runs used; write them on first use."""
    path = out / "sweep.json"
    if not path.is_file():
        write_json_atomic(path, settings)
        return
    old = json.loads(path.read_text())
    if old != json.loads(json.dumps(settings)):
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        raise UsageError(
            f"{out} holds a sweep with other settings ({', '.join(diff)} differ): "
            "use another --out, or the same options"
        )


def pending_runs(plan: Sequence[RunSpec], rows: Sequence[Mapping[str, Any]]) -> list[RunSpec]:
    """The runs of ``plan`` without a row in ``rows`` (rows as :func:`read_results` gives them)."""
    done = {(str(r["method"]), fmt_proportion(r["proportion"]), int(r["seed"])) for r in rows}
    return [s for s in plan if s.key not in done]


def _check_grid(methods: Sequence[str], proportions: Sequence[float], preset: str) -> None:
    """Usage errors before anything is written: unknown methods, proportions outside (0, 1]."""
    from lsmseg.data.split import check_proportion
    from lsmseg.methods.terms import method_stages

    for m in methods:
        method_stages(m, ["x", "y"])
    for p in proportions:
        check_proportion(p)
    check_preset(preset)


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
        preset: ``paper`` (the bundle's defaults) or ``cpu`` (see :data:`grid.PRESETS`).
        overrides: further bundle overrides (``max_epochs``, ``patience``, ...), applied last.
        jobs: runs at a time; default :data:`grid.DEFAULT_JOBS` of the preset (None = one per core).
        threads: torch threads per run; default: the CPU count divided by ``jobs``.
        log: receives one line per started / finished run.
    """
    _check_grid(methods, proportions, preset)
    cores = os.cpu_count() or 1
    jobs = jobs or DEFAULT_JOBS.get(preset) or cores
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}")
    threads = threads or max(1, cores // jobs)
    bundle_path, out_path = check_bundle(bundle), Path(out).resolve()
    base = {**preset_overrides(bundle_path, preset), **dict(overrides or {})}
    check_settings(out_path, {"bundle": str(bundle_path), "preset": preset, "overrides": base})
    results_csv = out_path / "results.csv"
    rows = read_results(results_csv)
    todo = pending_runs(plan_runs(methods, proportions, seeds), rows)
    log(
        f"sweep: {len(todo)} run(s) to do, {len(rows)} already in {results_csv} "
        f"({jobs} at a time, {threads} thread(s) each)"
    )
    t0 = time.perf_counter()

    def start(spec: RunSpec) -> _Running:
        return _start(spec, bundle_path, base, out_path, threads)

    failed = _run_all(todo, start, jobs, rows, results_csv, log)
    png = None
    if rows:
        write_text_atomic(out_path / "summary.md", markdown_table(rows, methods))
        title = f"{bundle_path.name}, preset {preset}: " + ", ".join(
            f"{k} {v}" for k, v in base.items() if k != "dataset_dir"
        )
        reference = PAPER_REFERENCE.get(bundle_path.name)
        png = plot(rows, out_path / "sweep.png", methods, reference, title)
    return SweepReport(rows, todo, failed, time.perf_counter() - t0, results_csv, png)


def _run_all(
    todo: Sequence[RunSpec],
    start: Callable[[RunSpec], _Running],
    jobs: int,
    rows: list[dict[str, Any]],
    results_csv: Path,
    log: Callable[[str], None],
) -> list[tuple[RunSpec, str]]:
    """Keep ``jobs`` children busy until ``todo`` is done; append each finished run's row to
    ``rows`` and rewrite ``results_csv``; return the failed runs. Children still running when
    this stops (an exception, Ctrl-C) are terminated and waited for."""
    failed: list[tuple[RunSpec, str]] = []
    running: dict[RunSpec, _Running] = {}
    pending = list(todo)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                spec = pending.pop(0)
                running[spec] = start(spec)
                log(f"[start] {spec.name}")
            time.sleep(POLL_S)
            for spec, run in list(running.items()):
                if run.proc.poll() is None:
                    continue
                del running[spec]
                tag = f"[{len(todo) - len(pending) - len(running)}/{len(todo)}] {spec.name}"
                row = _finished_row(spec, run, log, tag)
                if row is None:
                    failed.append((spec, str(run.run_dir / "run.log")))
                    continue
                rows.append(row)
                write_results(rows, results_csv)
    finally:
        for run in running.values():
            run.proc.terminate()
        for run in running.values():
            run.proc.wait()
    return failed


def _finished_row(spec: RunSpec, run: _Running, log: Callable[[str], None], tag: str) -> dict | None:
    """The ``results.csv`` row of a finished child, or None (logged) when it failed."""
    seconds = time.perf_counter() - run.started
    if run.proc.returncode != 0:
        log(f"{tag}: FAILED (exit {run.proc.returncode}), see {run.run_dir / 'run.log'}")
        return None
    result = json.loads((run.run_dir / "result.json").read_text())
    row = {
        "method": spec.method,
        "proportion": fmt_proportion(spec.proportion),
        "seed": spec.seed,
        "seconds": round(seconds, 1),
        "threads": run.threads,
        "load_1m": round(os.getloadavg()[0], 2),
        **{k: result.get(k) for k in RESULT_KEYS},  # a result.json from before the floor has none
    }
    log(
        f"{tag}: test {row['metric_name']} {row['metric']:.4f}, best epoch {row['best_epoch']}"
        f"/{row['epochs']}, {seconds:.0f} s ({row['cpu_seconds']:.0f} CPU s)"
    )
    return row


def child_command(spec_path: Path) -> list[str]:
    """The command line of one run's child process."""
    return [sys.executable, "-m", "lsmseg.experiments.run", str(spec_path)]


def _start(spec: RunSpec, bundle: Path, base: Mapping[str, Any], out: Path, threads: int) -> _Running:
    """Start one run's child process in a fresh run folder, with ``threads`` OpenMP/MKL threads."""
    run_dir = out / "runs" / spec.name
    shutil.rmtree(run_dir, ignore_errors=True)  # an unfinished earlier attempt starts over
    run_dir.mkdir(parents=True)
    overrides = run_overrides(spec, base, run_dir, bundle)
    spec_path = run_dir / "spec.json"
    write_json_atomic(spec_path, {"bundle": str(bundle), "overrides": overrides})
    write_text_atomic(run_dir / "commands.sh", bundle_commands(bundle, overrides))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(run_dir / "run.log", "w") as logf:
        proc = subprocess.Popen(child_command(spec_path), stdout=logf, stderr=subprocess.STDOUT, env=env)
    return _Running(proc, time.perf_counter(), run_dir, threads)
