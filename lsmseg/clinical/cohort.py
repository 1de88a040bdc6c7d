"""``segment_cohort``: the library behind ``lsmseg segment`` (DESIGN.md "Command line").

    check the request -> discover_cases -> load_bundle -> provenance (+ resume) -> this
    shard's cases -> pipeline (:mod:`lsmseg.clinical.pipeline`: ingest workers -> network on
    batches -> writer workers) -> results.csv / results.json rewritten every few seconds

Problems with the run itself (no inputs, a bundle without weights, an unknown cut-off set) raise
:class:`lsmseg.errors.UsageError` before any work starts; a case that fails becomes an error row.

Crash guarantee: every file is written to a temporary name and renamed, so no file under its
final name is ever half-written. A case's files are flushed to disk together
(:func:`lsmseg.io.atomic.batched_commit`) before its row can reach results.json, and
results.json is flushed before it replaces the old one; so after a kill, a crash of the machine
or a power loss, every case results.json lists as ok has all its files, complete, and
``resume=True`` redoes the rest (cases finished in the last few seconds, :data:`PUBLISH_EVERY_S`,
may be done again).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsmseg.clinical.case import CaseRunner, Timer
from lsmseg.clinical.merge import merge_shards
from lsmseg.clinical.model import SegmentationModel, load_bundle
from lsmseg.clinical.ood import describe_reference, load_reference
from lsmseg.clinical.patients import PatientRecord, PatientTable
from lsmseg.clinical.pipeline import PROCESS_MIN_CASES, CohortPipeline
from lsmseg.clinical.results import (
    CASES_DIR,
    RESULTS_CSV,
    RESULTS_JSON,
    SegmentReport,
    build_provenance,
    reconcile_results,
    resumable_rows,
    write_results,
)
from lsmseg.clinical.shard import RankGroup, Shard, parse_shard, rank_device, rank_shard
from lsmseg.engines.ood import OODReference
from lsmseg.errors import UsageError
from lsmseg.io import CaseSource, discover_cases
from lsmseg.io.atomic import remove_stale_temps
from lsmseg.keys import VAT_HU_DEFAULT
from lsmseg.readout import CutoffSet, get_cutoff_sets

logger = logging.getLogger(__name__)

# results.csv / results.json are rewritten at most this often (and at the end): each rewrite
# holds every row so far, so rewriting after every batch would cost O(n^2) over a large cohort.
PUBLISH_EVERY_S = 5.0
DEFAULT_CUTOFFS: tuple[str, ...] = ("prado2008", "martin2013", "derstine2018")
CT_HU_RANGE = (-1024.0, 3071.0)  # what a 12-bit CT stores, HU


def parse_hu_range(name: str, hu_range: Sequence[float]) -> tuple[float, float]:
    """A user's (min, max) HU range: two finite numbers, min < max, within the CT range.

    Raises:
        UsageError: naming the option (``name``) and what is wrong.
    """
    try:
        lo, hi = (float(v) for v in hu_range)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be two numbers MIN,MAX in HU, got {hu_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise UsageError(f"{name} must be MIN,MAX in HU with MIN < MAX, got {lo:g},{hi:g}")
    if lo < CT_HU_RANGE[0] or hi > CT_HU_RANGE[1]:
        raise UsageError(f"{name} {lo:g},{hi:g} is outside the CT range -1024..3071 HU")
    return lo, hi


@dataclass(frozen=True)
class Request:
    """A checked :func:`segment_cohort` call: what to read, where to write, how to measure."""

    inputs: list[Path]
    out: Path
    vat_hu: tuple[float, float]
    cutoff_sets: list[CutoffSet]
    refine: bool
    batch_size: int
    patients: PatientTable | None
    shard: Shard | None = None  # only this shard of the cohort (None: all of it)


def check_request(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    patients_csv: str | os.PathLike[str] | None,
    vat_hu: Sequence[float],
    cutoffs: str | Sequence[str],
    refine: bool,
    batch_size: int,
) -> Request:
    """Check every option and input before any work starts (UsageError on the first problem)."""
    vat = parse_hu_range("the VAT HU range", vat_hu)
    try:
        cutoff_sets = get_cutoff_sets(cutoffs)
    except ValueError as err:
        raise UsageError(str(err)) from err
    if int(batch_size) < 1:
        raise UsageError(f"batch size must be a whole number >= 1, got {batch_size}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if not inputs:
        raise UsageError("no input given: name DICOM files, DICOM folders or NIfTI files")
    missing = [str(p) for p in inputs if not Path(p).exists()]
    if missing:
        raise UsageError(f"input not found: {', '.join(missing)}")
    patients = PatientTable(patients_csv) if patients_csv is not None else None
    return Request([Path(p) for p in inputs], out, vat, list(cutoff_sets), refine, int(batch_size), patients)


def find_cases(inputs: Sequence[Path], out: Path | None = None) -> list[CaseSource]:
    """The cases in ``inputs``, never from ``out`` (UsageError when there is none)."""
    cases = discover_cases(list(inputs), exclude=[out] if out is not None else [])
    if not cases:
        raise UsageError(
            f"no DICOM or NIfTI slices found in {', '.join(str(p) for p in inputs)} "
            "(DICOM folders are searched recursively; NIfTI files end in .nii or .nii.gz)"
        )
    return cases


@dataclass
class Plan:
    """What a run will do: the cases (of this shard), the model, each case's patient row, the
    provenance (of the whole cohort) and the rows kept from an earlier run (``resume``)."""

    cases: list[CaseSource]
    model: SegmentationModel
    records: dict[str, PatientRecord | None]
    provenance: dict[str, Any]
    kept: dict[str, dict[str, Any]]
    ood: OODReference | None = None


def results_names(shard: Shard | None) -> tuple[str, str]:
    """The run's results.csv / results.json names: the cohort's, or a shard's."""
    return (RESULTS_CSV, RESULTS_JSON) if shard is None else (shard.results_csv, shard.results_json)


def plan_run(
    request: Request, bundle_dir: Any, device: str, resume: bool, timer: Timer, **trust: bool
) -> Plan:
    """Find the cases, load the model once (``trust``: allow_weak_model, trust_bundle of
    :func:`load_bundle`), and decide which cases an earlier run completed. The provenance names
    every case of the cohort, also in a shard (so shards merge into the single run's files)."""
    t = time.perf_counter()
    cases = find_cases(request.inputs, request.out)
    timer.add("ingest", time.perf_counter() - t)
    t = time.perf_counter()
    model = load_bundle(bundle_dir, device, **trust)
    timer.add("load_model", time.perf_counter() - t)
    patients = request.patients
    records = {c.case_id: patients.lookup(c) if patients else None for c in cases}
    case_inputs = {
        case_id: {"source": c.source, "patients_csv": r.as_dict() if r else None}
        for c, (case_id, r) in zip(cases, records.items(), strict=True)
    }
    provenance = build_provenance(
        model.provenance(),
        request.cutoff_sets,
        request.vat_hu,
        request.refine,
        patients.path if patients else None,
        case_inputs,
    )
    ood = load_reference(model)
    provenance["ood_reference"] = describe_reference(ood)
    shard = request.shard
    if shard is not None:
        provenance["shard"] = {"index": shard.index, "count": shard.count}
        cases = shard.select(cases)
    prepare_out(request.out, resume, shard, [c.case_id for c in cases])
    kept = resumable_rows(request.out, provenance, case_inputs) if resume else {}
    if resume and shard is not None:  # a shard resumes from a finished run's results and its own
        kept.update(resumable_rows(request.out, provenance, case_inputs, shard.results_json))
    mine = {c.case_id for c in cases}
    return Plan(cases, model, records, provenance, {k: v for k, v in kept.items() if k in mine}, ood)


def prepare_out(out: Path, resume: bool, shard: Shard | None = None, case_ids: Sequence[str] = ()) -> None:
    """Create ``out``, remove the temporary files a killed run left there (results files and
    ``cases/``; nothing else of a folder the user chose), and, to resume, make the results pair
    agree again (:func:`reconcile_results`). A shard touches only its own results files and
    case folders (``case_ids``): other shards may be writing in ``out`` at the same time."""
    out.mkdir(parents=True, exist_ok=True)
    if shard is None:
        stale = remove_stale_temps(out, recursive=False) + remove_stale_temps(out / CASES_DIR)
    else:
        stale = [p for p in out.glob(f".results.{shard.name}.*.tmp*") if p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        for case_id in case_ids:
            stale += remove_stale_temps(out / CASES_DIR / case_id, recursive=False)
    if stale:
        logger.info("removed %d temporary files left by an interrupted run in %s", len(stale), out)
    note = reconcile_results(out, *results_names(shard)) if resume else None
    if note is not None:
        logger.warning("%s", note)


def new_report(out: Path, plan: Plan, timer: Timer, shard: Shard | None) -> SegmentReport:
    """The report of a run before any case is done (the kept cases listed as resumed)."""
    csv_name, json_name = results_names(shard)
    return SegmentReport(
        rows=[],
        out_dir=out,
        results_csv=out / csv_name,
        results_json=out / json_name,
        resumed=[c.case_id for c in plan.cases if c.case_id in plan.kept],
        model=plan.model.label,
        device=plan.model.describe_device(),
        timings_s=timer.seconds,
        validation=plan.model.validation,
        caveat=plan.model.caveat,
    )


def publish(
    report: SegmentReport,
    rows: Mapping[str, dict[str, Any]],
    plan: Plan,
    cutoff_sets: Sequence[CutoffSet],
    timer: Timer,
) -> None:
    """Put the rows known so far in input order into ``report`` and rewrite the results files."""
    t = time.perf_counter()
    report.rows = [rows[c.case_id] for c in plan.cases if c.case_id in rows]
    write_results(
        report.rows, report.results_csv, report.results_json, plan.provenance, cutoff_sets=cutoff_sets
    )
    timer.add("results", time.perf_counter() - t)


def segment_cohort(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    bundle_dir: str | os.PathLike[str] | None = None,
    patients_csv: str | os.PathLike[str] | None = None,
    vat_hu: Sequence[float] = VAT_HU_DEFAULT,
    cutoffs: str | Sequence[str] = DEFAULT_CUTOFFS,
    device: str = "auto",
    refine: bool = True,
    resume: bool = False,
    batch_size: int = 8,
    progress: bool = True,
    allow_weak_model: bool = False,
    trust_bundle: bool = False,
    shard: str | Shard | None = None,
    workers: int = 2,
) -> SegmentReport:
    """Measure L3 body composition for every slice found in ``inputs``; write masks and reports.

    Args:
        inputs: DICOM files, folders (searched recursively, grouped by series), NIfTI files; one
            case = one L3 slice (a multi-slice series needs ``l3_slice`` in the patients CSV).
        out_dir: gets results.csv, results.json and ``cases/<case_id>/`` (mask.nii.gz on the
            source grid, overlay.png, and seg.dcm for DICOM input).
        bundle_dir: bundle folder or name (None: ``lsm_sss``); patients_csv: see
            :class:`PatientTable` (DICOM PatientSize / Weight / Sex come first).
        vat_hu: visceral fat HU range; cutoffs: cut-off set names or "all"; device: auto, cpu,
            cuda; refine: apply the Alberta HU ranges inside the predicted compartments.
        resume: keep the complete cases of an earlier run in ``out_dir`` (same inputs, settings).
        batch_size: slices per network call; progress: a progress bar on a terminal's stderr.
        allow_weak_model: measure with a model below the quality floor; trust_bundle: let a
            bundle without models/model.json evaluate its configs/inference.json (code).
        shard: ``"K/N"``: only shard K (0-based) of N, to ``results.shard-K-of-N.{csv,json}``
            (:func:`merge_shards` combines them); None under torchrun: by rank (:func:`segment_ranks`).
        workers: threads reading slices, and case-file writers (processes from 16 cases on).

    Returns:
        The :class:`SegmentReport`; ``exit_status`` is 0 when every case succeeded, else 1.

    Raises:
        UsageError: before any case is processed (see :func:`check_request`, :func:`load_bundle`,
            :func:`lsmseg.clinical.results.previous_run`, :func:`parse_shard`).
    """
    options: dict[str, Any] = {
        "bundle_dir": bundle_dir,
        "patients_csv": patients_csv,
        "vat_hu": vat_hu,
        "cutoffs": cutoffs,
        "device": device,
        "refine": refine,
        "resume": resume,
        "batch_size": batch_size,
        "progress": progress,
        "trust": {"allow_weak_model": allow_weak_model, "trust_bundle": trust_bundle},
        "workers": workers,
    }
    ranks = rank_shard() if shard is None else None
    if ranks is not None:
        return segment_ranks(inputs, out_dir, ranks, options)
    return run_cohort(inputs, out_dir, parse_shard(shard) if isinstance(shard, str) else shard, options)


def segment_ranks(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    ranks: tuple[Shard, int],
    options: dict[str, Any],
) -> SegmentReport:
    """One torchrun rank: its shard on its device, then (rank 0) the cohort's results files.

    Every rank writes its case folders and shard results; after a barrier rank 0 merges the
    shard files into results.csv / results.json (atomically) and removes them. Its report then
    holds every rank's rows; the other ranks' reports hold their own.
    """
    shard, local_rank = ranks
    options = {**options, "device": rank_device(options["device"], local_rank)}
    options["progress"] = options["progress"] and shard.index == 0
    group = RankGroup()
    try:
        report = run_cohort(inputs, out_dir, shard, options)
        group.barrier()
        if shard.index == 0:
            out = Path(out_dir)
            report.results_csv, report.results_json, report.rows = merge_shards([out], out, shard.count)
            for k in range(shard.count):
                for name in results_names(Shard(k, shard.count)):
                    (out / name).unlink(missing_ok=True)
        return report
    finally:
        group.close()


def run_cohort(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    shard: Shard | None,
    options: dict[str, Any],
) -> SegmentReport:
    """:func:`segment_cohort` in one process (the whole cohort, or one shard)."""
    from tqdm.auto import tqdm

    started, timer = time.perf_counter(), Timer()
    o = options
    request = check_request(
        inputs, out_dir, o["patients_csv"], o["vat_hu"], o["cutoffs"], o["refine"], o["batch_size"]
    )
    request = dataclasses.replace(request, shard=shard)
    plan = plan_run(request, o["bundle_dir"], o["device"], o["resume"], timer, **o["trust"])
    rows = dict(plan.kept)
    todo = [c for c in plan.cases if c.case_id not in rows]
    report = new_report(request.out, plan, timer, shard)
    runner = CaseRunner(request.out, plan.model, request.cutoff_sets, request.vat_hu, request.refine, timer)
    workers = max(1, int(o["workers"]))
    processes = len(todo) >= PROCESS_MIN_CASES  # else a process start costs more than it saves
    pipeline = CohortPipeline(runner, plan.records, plan.ood, request.batch_size, workers, processes)
    last = time.perf_counter()

    def done(batch: Sequence[CaseSource], batch_rows: dict[str, dict[str, Any]]) -> None:
        nonlocal last
        rows.update(batch_rows)
        report.processed += [c.case_id for c in batch]
        bar.update(len(batch))
        if time.perf_counter() - last >= PUBLISH_EVERY_S:
            publish(report, rows, plan, request.cutoff_sets, timer)
            last = time.perf_counter()

    disable = None if o["progress"] else True  # None: only on a terminal
    with tqdm(total=len(todo), disable=disable, unit="slice", desc="lsmseg segment", leave=False) as bar:
        try:
            pipeline.run(todo, done)
        finally:  # also on Ctrl-C: the finished cases are kept for --resume
            publish(report, rows, plan, request.cutoff_sets, timer)
    timer.add("total", time.perf_counter() - started)
    return report
