"""``segment_cohort``: the library behind ``lsmseg segment`` (DESIGN.md "Command line").

    check the request -> discover_cases -> load_bundle -> provenance (+ resume) ->
    for each batch: prepare (ingest, quality gate, preprocess) -> one network call ->
    finish (native mask, readout, case files) -> results.csv / results.json rewritten

Problems with the run itself (no inputs, a bundle without weights, an unknown cut-off set) raise
:class:`lsmseg.errors.UsageError` before any work starts; a case that fails becomes an error row.
Results are rewritten after every batch, every file atomically, so an interrupted run keeps what
it finished and ``resume=True`` completes the rest.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lsmseg.clinical.case import CaseRunner, Prepared, Timer
from lsmseg.clinical.gates import gate_after, gate_before
from lsmseg.clinical.model import SegmentationModel, load_bundle
from lsmseg.clinical.ood import batch_scores, describe_reference, load_reference, ood_columns
from lsmseg.clinical.patients import PatientRecord, PatientTable
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
from lsmseg.engines.ood import OODReference
from lsmseg.errors import UsageError
from lsmseg.io import CaseSource, discover_cases
from lsmseg.io.atomic import remove_stale_temps
from lsmseg.keys import VAT_HU_DEFAULT
from lsmseg.readout import CutoffSet, get_cutoff_sets

logger = logging.getLogger(__name__)

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


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def predict_batch(model: SegmentationModel, prepared: Sequence[Prepared]) -> list[np.ndarray | Exception]:
    """(C, S, S) probabilities per case from one network call; should it fail (e.g. out of GPU
    memory), one call per case, so only the cases that cannot be run fail (their error instead)."""
    try:
        return list(model.predict(np.stack([p.image for p in prepared])))  # (B, C, S, S)
    except Exception as err:
        if len(prepared) == 1:
            return [err]
        logger.debug("batch of %d failed in the network; retrying case by case", len(prepared), exc_info=err)
    outputs: list[np.ndarray | Exception] = []
    for p in prepared:
        try:
            outputs.append(model.predict(p.image[None])[0])
        except Exception as err:
            outputs.append(err)
    return outputs


def ood_batch(
    model: SegmentationModel,
    reference: OODReference | None,
    prepared: Sequence[Prepared],
    outputs: Sequence[np.ndarray | Exception],
) -> list[tuple[dict[str, Any], list[str]]]:
    """Per prepared case: its ``ood_score`` / ``ood_percentile`` columns and OOD warning
    (:mod:`lsmseg.clinical.ood`); empty without a reference or a network output."""
    empty: list[tuple[dict[str, Any], list[str]]] = [({}, []) for _ in prepared]
    done = [i for i, o in enumerate(outputs) if isinstance(o, np.ndarray)]
    if reference is None or not done:
        return empty
    try:
        images = np.stack([prepared[i].image for i in done])  # (B', 1, S, S)
        probs = [o for o in outputs if isinstance(o, np.ndarray)]  # (C, S, S) each, same order
        scores = batch_scores(model, reference, images, probs)
    except Exception as err:  # the score is a caveat on top of the measurement, never a reason to lose it
        logger.warning("out-of-distribution score failed for this batch: %s", err, exc_info=err)
        return empty
    for i, score in zip(done, scores, strict=True):
        empty[i] = ood_columns(reference, score)
    return empty


def run_batch(
    runner: CaseRunner,
    batch: Sequence[CaseSource],
    records: Mapping[str, PatientRecord | None],
    ood: OODReference | None = None,
) -> dict[str, dict[str, Any]]:
    """The results rows of one batch of cases, by case id, in the order they were done
    (``ood``: the bundle's OOD reference, for the ``ood_*`` columns and warning)."""
    rows: dict[str, dict[str, Any]] = {}
    prepared: list[Prepared] = []
    for case in batch:
        t = time.perf_counter()
        try:
            p = runner.prepare(case, records[case.case_id])
            gate_before(p.ct)
            prepared.append(p)
        except Exception as err:
            rows[case.case_id] = runner.error_row(case, err, time.perf_counter() - t)
    if not prepared:
        return rows
    t = time.perf_counter()
    outputs = predict_batch(runner.model, prepared)
    network_s = (time.perf_counter() - t) / len(prepared)
    runner.timer.add("network", network_s * len(prepared))
    scored = ood_batch(runner.model, ood, prepared, outputs)
    for p, output, (ood_cols, ood_warnings) in zip(prepared, outputs, scored, strict=True):
        t = time.perf_counter()
        try:
            if isinstance(output, Exception):
                rows[p.case.case_id] = runner.error_row(p.case, output, p.seconds + network_s)
            else:
                row = {**runner.finish(p, output, network_s), **ood_cols}
                rows[p.case.case_id] = gate_after(row, p.ct, extra=ood_warnings)
        except Exception as err:
            rows[p.case.case_id] = runner.error_row(
                p.case, err, p.seconds + network_s + time.perf_counter() - t
            )
    return rows


@dataclass
class Plan:
    """What a run will do: the cases, the model, each case's patient row, the provenance and
    the rows kept from an earlier run (``resume``)."""

    cases: list[CaseSource]
    model: SegmentationModel
    records: dict[str, PatientRecord | None]
    provenance: dict[str, Any]
    kept: dict[str, dict[str, Any]]
    ood: OODReference | None = None


def plan_run(
    request: Request, bundle_dir: Any, device: str, resume: bool, timer: Timer, **trust: bool
) -> Plan:
    """Find the cases, load the model once (``trust``: allow_weak_model, trust_bundle of
    :func:`load_bundle`), and decide which cases an earlier run completed."""
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
    prepare_out(request.out, resume)
    kept = resumable_rows(request.out, provenance, case_inputs) if resume else {}
    return Plan(cases, model, records, provenance, kept, ood)


def prepare_out(out: Path, resume: bool) -> None:
    """Create ``out``, remove the temporary files a killed run left there (results files and
    ``cases/``; nothing else of a folder the user chose), and, to resume, make results.csv and
    results.json agree again (:func:`reconcile_results`)."""
    out.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temps(out, recursive=False) + remove_stale_temps(out / CASES_DIR)
    if stale:
        logger.info("removed %d temporary files left by an interrupted run in %s", len(stale), out)
    note = reconcile_results(out) if resume else None
    if note is not None:
        logger.warning("%s", note)


def new_report(out: Path, plan: Plan, timer: Timer) -> SegmentReport:
    """The report of a run before any case is done (the kept cases listed as resumed)."""
    return SegmentReport(
        rows=[],
        out_dir=out,
        results_csv=out / RESULTS_CSV,
        results_json=out / RESULTS_JSON,
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

    Returns:
        The :class:`SegmentReport`; ``exit_status`` is 0 when every case succeeded, else 1.

    Raises:
        UsageError: before any case is processed (see :func:`check_request`, :func:`load_bundle`,
            :func:`lsmseg.clinical.results.previous_run`).
    """
    from tqdm.auto import tqdm

    started, timer = time.perf_counter(), Timer()
    request = check_request(inputs, out_dir, patients_csv, vat_hu, cutoffs, refine, batch_size)
    trust = {"allow_weak_model": allow_weak_model, "trust_bundle": trust_bundle}
    plan = plan_run(request, bundle_dir, device, resume, timer, **trust)
    rows = dict(plan.kept)
    todo = [c for c in plan.cases if c.case_id not in rows]
    report = new_report(request.out, plan, timer)
    runner = CaseRunner(request.out, plan.model, request.cutoff_sets, request.vat_hu, refine, timer)
    disable = None if progress else True  # None: only on a terminal
    with tqdm(total=len(todo), disable=disable, unit="slice", desc="lsmseg segment", leave=False) as bar:
        for batch in _batches(todo, request.batch_size):
            rows.update(run_batch(runner, batch, plan.records, plan.ood))
            report.processed += [c.case_id for c in batch]
            bar.update(len(batch))
            publish(report, rows, plan, request.cutoff_sets, timer)
    if not todo:
        publish(report, rows, plan, request.cutoff_sets, timer)
    timer.add("total", time.perf_counter() - started)
    return report
