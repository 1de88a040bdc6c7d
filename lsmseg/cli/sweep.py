"""``lsmseg sweep``: the paper's comparison, method x proportion x seed, on a bundle.

A thin shell over :func:`lsmseg.experiments.sweep.run_sweep`: options are parsed here without importing
torch, the work happens in the library (one child process per run), and the end is the
summary table on stdout plus the paths of the results.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from lsmseg.cli.args import add_run_settings, command, csv_list, positive_int, proportion, run_overrides

EPILOG = """\
outputs (in --out DIR):
  results.csv    method, proportion, seed, metric, best_epoch, seconds (+ metric_name,
                 valid_metric, epochs, threads, load_1m, floor); rewritten after each run
  sweep.png      test metric vs proportion (log x), mean and min-max band per method,
                 the floor dashed
  summary.md     mean +- std (min-max) per method x proportion, the floor per proportion;
                 * marks a mean that does not clear the floor
  floor          the test score of the best input-independent prediction (mean training mask,
                 threshold tuned on validation; mean training landmarks for NRMSE)
  runs/<method>_p<p>_s<seed>/   run.log, commands.sh (the equivalent monai.bundle commands),
                 ckpt/{model.pt,best.json}, output/metrics.json

presets:
  paper   the bundle's defaults (ngf 64, 128 px, 1000 epochs, patience 100)
  cpu     ngf 8, ndf 16, batch 16, 30 epochs per stage, patience 8, learning rate 1e-3;
          SIT bundles at 64 px (all 500 pairs); one single-threaded run per core at a time
          (the 24-run grid of 4 methods x 3 proportions x 2 seeds fits an hour on 2 cores)

A second invocation with the same --out resumes: finished runs (rows of results.csv) are kept.
exit status: 0 all runs finished, 1 some failed (the others are written), 2 usage error

examples:
  lsmseg sweep --bundle bundles/lsm_sit --methods basic,sop,ioda,lsm --proportions 1,0.2,0.05 \\
      --seeds 2 --preset cpu --out benchmarks/results/sit_sweep
  lsmseg sweep --bundle bundles/lsm_sit --methods lsm,lsm0000 --proportions 1,0.6,0.2,0.05,0.03,0.01 \\
      --seeds 3 --out sweeps/sit_paper                 # the paper's budget (GPU)
"""


def _proportions(text: str) -> list[float]:
    return [proportion(item) for item in csv_list(text)]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "sweep",
        help="train and test a bundle for each method x proportion x seed (the paper's comparison)",
        description=(
            "Train a bundle (configs/train.json) and test it (train.json + evaluate.json) for each "
            "method, paired proportion and seed; write results.csv and a plot of the test metric "
            "against the proportion."
        ),
        epilog=EPILOG,
    )
    p.add_argument("--bundle", required=True, metavar="DIR", help="bundle folder, e.g. bundles/lsm_sit")
    p.add_argument(
        "--methods", required=True, type=csv_list, metavar="M,...", help="basic, sop, ioda, lsm, lsmABCD"
    )
    p.add_argument(
        "--proportions", required=True, type=_proportions, metavar="P,...", help="paired fractions in (0, 1]"
    )
    p.add_argument("--seeds", required=True, type=positive_int, metavar="N", help="seeds 0 .. N-1")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (resumed when it exists)")
    add_run_settings(p, preset_help="(default paper)", set_example="adversarial=bce")
    p.add_argument(
        "--jobs",
        type=positive_int,
        metavar="J",
        help="runs at a time (default: one per CPU core with --preset cpu, else 1)",
    )
    p.add_argument(
        "--threads", type=positive_int, metavar="T", help="torch threads per run (default: CPUs / jobs)"
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from lsmseg.experiments.sweep import run_sweep

    overrides = run_overrides(args)
    # A sweep started in the background ignores Ctrl-C's SIGINT; SIGTERM must stop its runs too.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = run_sweep(
            args.bundle,
            args.methods,
            args.proportions,
            list(range(args.seeds)),
            args.out,
            preset=args.preset,
            overrides=overrides,
            jobs=args.jobs,
            threads=args.threads,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished runs are in {args.out}/results.csv; the same command resumes the sweep",
            file=sys.stderr,
        )
        return 130
    if report.rows:
        from lsmseg.experiments.tables import markdown_table

        print()
        print(markdown_table(report.rows, args.methods))
    print(f"{len(report.ran) - len(report.failed)} run(s) done in {report.seconds / 60:.1f} min")
    print(f"results: {report.results_csv}")
    if report.plot_png:
        print(f"plot:    {report.plot_png}")
    for spec, log in report.failed:
        print(f"failed:  {spec.name} (log: {log})")
    return 1 if report.failed else 0
