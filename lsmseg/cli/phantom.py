"""``lsmseg phantom DIR --n N [--format dicom|nifti] [--seed S]``: a synthetic L3 cohort with truth."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "phantom",
        help="write a synthetic L3 CT cohort with masks, patients.csv and truth.csv",
        description="Write DIR/images, DIR/masks, DIR/patients.csv and DIR/truth.csv (true areas in cm2).",
    )
    p.add_argument("out_dir", metavar="DIR")
    p.add_argument("--n", type=int, default=20, help="number of cases (default 20)")
    p.add_argument(
        "--format", choices=("dicom", "nifti"), default="dicom", help="image format (default dicom)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from lsmseg.data.phantom import phantom_cli

    print(phantom_cli(args.out_dir, args.n, args.format, args.seed))
    return 0
