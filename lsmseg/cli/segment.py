"""``lsmseg segment INPUT... --out DIR``: L3 body composition and sarcopenia for a CT cohort.

A thin shell over :func:`lsmseg.clinical.segment_cohort`: options are checked here without
importing torch (so ``--help`` and usage errors answer at once), the work happens in the library,
and the end is a short table on stdout plus the paths of the full results.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lsmseg.cli.args import DEFAULT_CUTOFFS, add_measurement_options, command, positive_int

if TYPE_CHECKING:
    from lsmseg.clinical import SegmentReport

EPILOG = """\
outputs (in --out DIR):
  results.csv, results.json   one row per case: areas (cm2), muscle HU, SMI (cm2/m2), cut-off
                              verdicts, status and error; results.json adds the provenance
  cases/<case_id>/            mask.nii.gz, overlay.png, seg.dcm (DICOM input)

patients CSV columns: case_id (or patient_id), height_m, weight_kg, sex, l3_slice
  Height, weight and sex come from the DICOM header first (PatientSize, PatientWeight,
  PatientSex), then from the CSV. A multi-slice series needs l3_slice (InstanceNumber).

gates: slices that are not an abdomen (head, chest, legs, no fat) and implausible measurements
  (areas, HU, pixel spacing outside documented ranges) become error rows; borderline values and
  an unconfirmed L3 level give status ok with quality "warning: ...". A bundle folder is code:
  segment reads models/model.json as data and never evaluates configs (see --trust-bundle).

exit status: 0 all cases measured, 1 some cases failed (the others are written), 2 usage error

examples:
  lsmseg segment scans/ --out results/ --patients patients.csv
  lsmseg segment a.dcm b.nii.gz --out results/ --vat-hu -190,-30 --cutoffs martin2013
  lsmseg segment scans/ --out results/ --resume      # finish an interrupted run
  lsmseg segment scans/ --out results/ --shard $SLURM_ARRAY_TASK_ID/8   # sbatch --array=0-7
  lsmseg merge results/                              # after all 8 shards: results.csv/json
  torchrun --nproc_per_node=4 -m lsmseg.cli.main segment scans/ --out results/
                                                     # one GPU per rank, rank 0 writes results
"""


def _add_options(p: argparse.ArgumentParser) -> None:
    """Where to write, which bundle and patients table, how to measure, how to run."""
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument(
        "--bundle",
        metavar="DIR",
        help="trained bundle folder or name, with models/model.pt and models/model.json "
        "(default: lsm_sss in $LSMSEG_BUNDLES or ./bundles)",
    )
    add_measurement_options(
        p,
        vat_hu_help="visceral fat HU range (default -150,-50; some tools use -190,-30)",
        cutoffs_help=f"comma-separated sarcopenia cut-off sets, or 'all' (default {DEFAULT_CUTOFFS})",
        refine_help="report the raw predicted compartments (no HU ranges; IMAT not measured)",
    )
    _add_run_options(p)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Where the network runs, resuming, batching, worker threads, sharding, trust in the bundle."""
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where the network runs (default auto)",
    )
    p.add_argument("--resume", action="store_true", help="keep the finished cases of an earlier run in DIR")
    p.add_argument(
        "--batch-size", type=positive_int, default=8, metavar="N", help="slices per network call (default 8)"
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=2,
        metavar="N",
        help=(
            "threads reading slices, and case-file writers beside the network: threads, "
            "or processes from 16 cases on (default 2)"
        ),
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="process only shard K (0-based) of N: the cases at sorted-case-id index K mod N; writes "
        "results.shard-K-of-N.csv/json, combine them with `lsmseg merge` (under torchrun the "
        "ranks shard by themselves)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument(
        "--allow-weak-model",
        action="store_true",
        help="measure with a bundle below the quality floor (validation mIoU < 0.5, or training "
        "interrupted before 5 epochs); its verdicts are unreliable",
    )
    p.add_argument(
        "--trust-bundle",
        action="store_true",
        help="let a bundle without models/model.json build its network by evaluating "
        "configs/inference.json: a bundle folder is code (monai.bundle run executes its configs by "
        "design); use only for bundles from a source you trust",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "segment",
        help="measure L3 muscle and fat, SMI and sarcopenia from CT slices (DICOM, NIfTI)",
        description=(
            "Segment SAT, VAT and skeletal muscle on axial L3 CT slices with a trained bundle,\n"
            "measure areas (cm2, Alberta HU ranges), muscle attenuation and SMI, judge sarcopenia\n"
            "by named cut-off sets, and write masks, overlays, DICOM SEG and a results table."
        ),
        epilog=EPILOG,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="DICOM files, DICOM folders (searched recursively) or NIfTI files; one case = one L3 slice",
    )
    _add_options(p)
    # SUPPRESS: absent here, the top-level `lsmseg --debug segment ...` value is kept
    p.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show full tracebacks, also of failed cases",
    )


def _number(value: Any, fmt: str) -> str:
    if value is None or value == "":
        return "-"
    try:
        return f"{float(value):{fmt}}"
    except (TypeError, ValueError):
        return str(value)


def _flags(row: Mapping[str, Any]) -> str:
    """Cut-off verdicts in a few words: which sets call the case sarcopenic (or cannot judge)."""
    sets = [k.removeprefix("sarcopenia_") for k in row if k.startswith("sarcopenia_")]
    if not sets:
        return ""
    low = [s for s in sets if row.get(f"sarcopenia_{s}") is True]
    unknown = [s for s in sets if row.get(f"sarcopenia_{s}") is None]
    parts = []
    if low:
        parts.append("sarcopenia: " + ", ".join(low))
    myo = [k.removeprefix("myosteatosis_") for k in row if k.startswith("myosteatosis_") and row[k] is True]
    if myo:
        parts.append("myosteatosis: " + ", ".join(myo))
    if unknown:
        parts.append("not judged: " + ", ".join(unknown))
    return "; ".join(parts) or "none"


def format_summary(report: SegmentReport) -> str:
    """The end-of-run text: a table of case_id, muscle cm2, SMI and flags, then the failures and paths."""
    header = ("case_id", "status", "muscle cm2", "SMI", "flags")
    lines: list[Sequence[str]] = [header]
    for row in report.rows:
        ok = row.get("status") == "ok"
        lines.append(
            (
                str(row.get("case_id")),
                str(row.get("status")),
                _number(row.get("muscle_area_cm2"), ".1f") if ok else "-",
                _number(row.get("smi_cm2_m2"), ".1f") if ok else "-",
                _flags(row) if ok else "",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    table = [
        "  ".join(cell.ljust(w) for cell, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    ]
    out = [line.rstrip() for line in table]
    failed = [r for r in report.rows if r.get("status") != "ok"]
    if failed:
        out.append("")
        out.append(f"{len(failed)} case(s) failed:")
        out += [f"  {r.get('case_id')}: {r.get('error')}" for r in failed]
    warned = [r for r in report.rows if str(r.get("quality") or "").startswith("warning")]
    if warned:
        out.append("")
        out.append(f"{len(warned)} case(s) measured with a warning (check their overlays):")
        out += [f"  {r.get('case_id')}: {str(r.get('quality')).removeprefix('warning: ')}" for r in warned]
    total = report.timings_s.get("total", 0.0)
    done = len(report.processed)
    speed = f", {total / done:.2f} s/slice" if done else ""
    out.append("")
    resumed = f", {len(report.resumed)} kept from the earlier run" if report.resumed else ""
    out.append(
        f"{report.n_ok} of {len(report.rows)} cases measured{resumed} with {report.model} on "
        f"{report.device} in {total:.1f} s{speed}"
    )
    out.append(f"model validation: {report.validation}")
    if report.caveat:
        out.append(f"caveat: {report.caveat}")
    out.append(f"results: {report.results_csv}")
    out.append(f"         {report.results_json}")
    out.append(f"masks, overlays, DICOM SEG: {report.out_dir / 'cases'}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    import logging

    from lsmseg.clinical import segment_cohort

    if getattr(args, "debug", False):
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("lsmseg").setLevel(logging.DEBUG)
    try:
        report = segment_cohort(
            args.inputs,
            args.out,
            bundle_dir=args.bundle,
            patients_csv=args.patients,
            vat_hu=args.vat_hu,
            cutoffs=args.cutoffs,
            device=args.device,
            refine=args.refine,
            resume=args.resume,
            batch_size=args.batch_size,
            progress=args.progress,
            allow_weak_model=args.allow_weak_model,
            trust_bundle=args.trust_bundle,
            shard=args.shard,
            workers=args.workers,
        )
    except KeyboardInterrupt:
        print(
            f"\nlsmseg segment: interrupted; the finished cases are in {args.out}/results.csv - "
            "rerun the same command with --resume to finish",
            file=sys.stderr,
        )
        return 130
    if os.environ.get("RANK", "0") == "0":  # under torchrun rank 0 speaks for the cohort
        print(format_summary(report))
    return report.exit_status
