"""``lsmseg bench``: training-step throughput, FLOPs, peak fraction and inference latency per method.

A thin shell over :func:`lsmseg.experiments.bench.run_bench`; options are parsed without importing torch.
"""

from __future__ import annotations

import argparse

from lsmseg.cli.args import command, csv_list, non_negative_int, positive_int

EPILOG = """\
what is measured (one CSV row per method):
  samples_per_s, step_ms   SemiSupervisedTrainer._iteration on a fixed synthetic SIT batch
                           (median of --steps timed steps after --warmup untimed ones; with
                           --rounds R, the fastest of R such rounds)
  step_cpu_ms, cpu_util    process CPU time of a step, and CPU / (wall x threads): well below 1
                           means other processes shared the cores (wall times are upper bounds)
  gflops_per_step          conv / matmul FLOPs of the step as executed, forward + backward
                           (torch.utils.flop_counter.FlopCounterMode)
  peak_gflops, peak_fraction   fp32 torch.mm peak measured in the same run, same threads
                           (best over --peak-sizes); achieved GFLOP/s / peak
  conv_peak_gflops         fp32 3x3 convolution (64 channels, 32x32) throughput (oneDNN),
                           measured in the same run; conv_fraction = achieved GFLOP/s / it
  vs_reference             the reference step's median time / this row's (same run): the
                           speed-up over method 'reference', the authors' LSM step (two full
                           forwards per batch, the critic's backward through the generators,
                           every term computed on every row and masked)
  infer_ms_per_slice       network(x) -> y logits at batch 1 under inference_mode
                           (infer_ms_per_slice_batched: per slice at --batch-size)
IODA is measured in its fine-tune stage (--all-stages adds its pre-training stages).

examples:
  lsmseg bench --methods lsm --ngf 16 --image-size 128 --batch-size 16 --out bench.csv
  lsmseg bench --ngf 32 --out bench.csv --append --profile profiles/
  lsmseg bench --device cuda --ngf 64 --amp --channels-last --out bench_gpu.csv
"""


def _sizes(text: str) -> list[int]:
    return [positive_int(t) for t in csv_list(text)]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "bench",
        help="measure training-step throughput, FLOPs and inference latency of each method",
        description=(
            "Benchmark the training step of basic, SOP, IODA and LSM, and the authors' LSM step "
            "beside them, on synthetic SIT batches."
        ),
        epilog=EPILOG,
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default cpu)")
    p.add_argument(
        "--methods",
        type=csv_list,
        default=["basic", "sop", "ioda", "lsm", "reference"],
        metavar="M,...",
        help="methods, and 'reference' for the authors' LSM step (default basic,sop,ioda,lsm,reference)",
    )
    p.add_argument("--ngf", type=positive_int, default=64, help="generator width (default 64)")
    p.add_argument("--ndf", type=positive_int, default=64, help="latent critic width (default 64)")
    p.add_argument("--image-size", type=positive_int, default=128, metavar="S", help="pixels (default 128)")
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="B", help="(default 16)")
    p.add_argument("--steps", type=positive_int, default=10, metavar="K", help="timed steps (default 10)")
    p.add_argument(
        "--warmup", type=non_negative_int, default=3, metavar="W", help="untimed steps (default 3)"
    )
    p.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        metavar="R",
        help="time every method R times, keep each one's fastest round (shared machines; default 1)",
    )
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true", help="NHWC tensors and weights")
    p.add_argument("--compile", action="store_true", help="torch.compile the generators")
    p.add_argument(
        "--nhwc-head", action="store_true", help="decoders' 7x7 output convolutions in NHWC (CPU option)"
    )
    p.add_argument("--threads", type=positive_int, metavar="T", help="torch threads (default: torch's)")
    p.add_argument(
        "--peak-sizes",
        type=_sizes,
        default=[512, 1024, 2048],
        metavar="N,...",
        help="sides of the fp32 matrices of the matmul peak, best kept (default 512,1024,2048)",
    )
    p.add_argument("--all-stages", action="store_true", help="one row per IODA stage")
    p.add_argument(
        "--profile", metavar="DIR", help="also write DIR/profile_<method>.txt (top ops, self time)"
    )
    p.add_argument("--append", action="store_true", help="keep the rows already in --out")
    p.add_argument("--out", required=True, metavar="CSV", help="CSV file to write")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from lsmseg.engines.device import resolve_device
    from lsmseg.experiments.bench import BenchSettings, check_methods, run_bench, write_csv
    from lsmseg.experiments.profiling import profile_step

    check_methods(args.methods)
    resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = BenchSettings(
        device=args.device,
        ngf=args.ngf,
        ndf=args.ndf,
        image_size=args.image_size,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
        nhwc_head=args.nhwc_head,
    )
    rows = run_bench(
        settings,
        args.methods,
        all_stages=args.all_stages,
        log=print,
        peak_sizes=args.peak_sizes,
        rounds=args.rounds,
    )
    path = write_csv(rows, args.out, append=args.append)
    print(f"results: {path}")
    if args.profile:
        folder = Path(args.profile)
        folder.mkdir(parents=True, exist_ok=True)
        for method in [m for m in args.methods if m != "reference"]:
            table = profile_step(settings, method)
            target = folder / f"profile_{method}_ngf{args.ngf}_{args.image_size}px.txt"
            target.write_text(table)
            print(f"profile: {target}")
    return 0
