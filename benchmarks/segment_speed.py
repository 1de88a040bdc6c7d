"""Seconds per slice of ``lsmseg segment``, end to end (DICOM in, CSV out), with a stage breakdown.

A synthetic cohort of N phantom DICOM slices (512x512) is segmented once per network setting with
:func:`lsmseg.clinical.segment_cohort`, the model loaded once per run, exactly as the command does.
The stages come from the run's own clock (``SegmentReport.timings_s``):

    ingest      discovery (header scan) + DICOM read, HU conversion and the quality gate
    preprocess  body crop, HU window, resize to the network's S x S
    network     batched forward pass + softmax
    readout     probabilities back to the native grid (inverse_mask) + areas, HU statistics, SMI
    writers     mask.nii.gz, mask_model.nii.gz, labels.json, overlay.png, seg.dcm, sr.dcm per case
    results     results.csv / results.json (rewritten every few seconds and at the end)

``s_per_slice`` is wall time (model load and discovery included), ``cpu_s_per_slice`` the
process's CPU time (all threads) for the same run plus the writer processes' CPU time on its
cases (``writer_cpu``, which each writer process clocks per case; on a cohort of 16 slices or
more the writers are processes, forked from a forkserver that imported lsmseg once). segment is
a pipeline (ingest and writer workers beside the network), so the stage columns sum the seconds
of every worker and together exceed the wall time. Weights are untrained (timing does not depend
on them; a case whose random mask has no muscle is still written, without its DICOM SEG -
``n_ok`` says how many had one). The machine's load
average is recorded next to the numbers: on a shared machine the wall times are upper bounds,
and the CPU time is the steadier figure.

    python benchmarks/segment_speed.py                       # ngf 64 / 128 px and ngf 8 / 128 px
    python benchmarks/segment_speed.py --n 20 --settings 8:128 --out /tmp/speed.csv
    python benchmarks/segment_speed.py --n 1000 --settings 8:128 --append   # add a row

``peak_rss_mb`` is the process's peak resident memory (cohort writing included); run one setting
per process to read it as that run's peak (the writer processes' own memory is not in it).
``workers`` is the ingest threads and the writers of the pipeline.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ("ingest", "preprocess", "network", "readout", "writers", "results")
COLUMNS = (
    "date",
    "ngf",
    "image_size",
    "batch_size",
    "n_slices",
    "n_ok",
    "device",
    "torch_threads",
    "load_avg_1min",
    "s_per_slice",
    "cpu_s_per_slice",
    *(f"{s}_s_per_slice" for s in STAGES),
    "load_model_s",
    "total_s",
    "torch",
    "lsmseg",
    "cpu",
    "workers",
    "peak_rss_mb",
)


def write_bundle(folder: Path, ngf: int, image_size: int) -> Path:
    """A trained-looking bundle (models/model.pt with random weights, models/model.json, metadata)."""
    import torch

    from lsmseg.engines.record import ModelRecord, write_model_record
    from lsmseg.methods.registry import build_network

    args = {
        "domains": [
            {"name": "image", "kind": "image", "channels": 1},
            {"name": "label", "kind": "mask", "channels": 4},
        ],
        "ngf": ngf,
        "ndf": ngf,
        "image_size": image_size,
    }
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)
    (folder / "configs" / "metadata.json").write_text(json.dumps({"name": "untrained", "version": "0"}))
    torch.manual_seed(0)
    torch.save(build_network("LatentSpaceMapping", args).state_dict(), folder / "models" / "model.pt")
    record = ModelRecord(
        network={"name": "LatentSpaceMapping", "args": args},
        preprocessing={"image_size": image_size, "hu_range": [-250, 250]},
        class_names=["background", "sat", "vat", "muscle"],
    )
    write_model_record(record, folder / "models" / "model.pt")
    return folder


def run(
    n: int, settings: list[tuple[int, int]], batch_size: int, device: str, work: Path, workers: int
) -> list[dict]:
    """Segment an n-slice phantom cohort once per (ngf, image_size); one result row each."""
    import resource

    import torch

    import lsmseg
    from lsmseg.clinical import segment_cohort
    from lsmseg.data.phantom import write_cohort
    from lsmseg.experiments.flops import device_name

    cohort = work / "cohort"
    print(f"writing {n} phantom DICOM slices (512x512) ...", flush=True)
    write_cohort(cohort, n, fmt="dicom", seed=2024)
    rows = []
    for ngf, image_size in settings:
        bundle = write_bundle(work / f"bundle_ngf{ngf}_s{image_size}", ngf, image_size)
        out = work / f"out_ngf{ngf}_s{image_size}"
        print(f"segmenting with ngf {ngf}, {image_size} px, batch {batch_size} on {device} ...", flush=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        report = segment_cohort(
            [cohort / "images"],
            out,
            bundle,
            patients_csv=cohort / "patients.csv",
            device=device,
            batch_size=batch_size,
            progress=False,
            workers=workers,
        )
        t = report.timings_s
        total = time.perf_counter() - start
        cpu = time.process_time() - cpu_start + t.get("writer_cpu", 0.0)
        with_seg = sum(1 for r in report.rows if r.get("seg_file"))
        row = {
            "date": datetime.date.today().isoformat(),
            "ngf": ngf,
            "image_size": image_size,
            "batch_size": batch_size,
            "n_slices": len(report.rows),
            "n_ok": with_seg,
            "device": report.device,
            "torch_threads": torch.get_num_threads(),
            "load_avg_1min": round(os.getloadavg()[0], 2),
            "s_per_slice": round(total / n, 4),
            "cpu_s_per_slice": round(cpu / n, 4),
            **{f"{s}_s_per_slice": round(t.get(s, 0.0) / n, 4) for s in STAGES},
            "load_model_s": round(t.get("load_model", 0.0), 3),
            "total_s": round(total, 2),
            "torch": torch.__version__,
            "lsmseg": lsmseg.__version__,
            "cpu": device_name("cpu"),
            "workers": workers,
            # the process's peak so far (Linux: KiB); with one setting per run, this run's peak
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        print(
            "  "
            + ", ".join(
                f"{k} {row[k]}"
                for k in (
                    "s_per_slice",
                    "cpu_s_per_slice",
                    *(f"{s}_s_per_slice" for s in STAGES),
                    "peak_rss_mb",
                )
            )
        )
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="slices in the cohort (default 100)")
    parser.add_argument(
        "--settings",
        default="64:128,8:128",
        help="comma-separated NGF:IMAGE_SIZE network settings (default 64:128,8:128; lsm_sss is 64:128)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="slices per network call (default 8)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--workers", type=int, default=2, help="threads per pipeline pool (default 2)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "segment_speed.csv")
    parser.add_argument("--append", action="store_true", help="add the rows to --out instead of replacing it")
    args = parser.parse_args()
    settings = [(int(a), int(b)) for a, b in (s.split(":") for s in args.settings.split(","))]
    with tempfile.TemporaryDirectory(prefix="lsmseg-segment-speed-") as work:
        rows = run(args.n, settings, args.batch_size, args.device, Path(work), args.workers)
    from lsmseg.io.atomic import write_csv_atomic

    if args.append and args.out.is_file():
        with args.out.open(newline="", encoding="utf-8") as f:
            rows = [*csv.DictReader(f), *rows]
    write_csv_atomic(args.out, COLUMNS, rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
