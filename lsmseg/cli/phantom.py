"""``lsmseg phantom DIR --n N [--format dicom|nifti] [--seed S]``: a synthetic L3 cohort with truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from lsmseg.errors import UsageError

FORMATS = ("dicom", "nifti")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "phantom",
        help="write a synthetic L3 CT cohort with masks, patients.csv and truth.csv",
        description="Write DIR/images, DIR/masks, DIR/patients.csv and DIR/truth.csv (true areas in cm2).",
    )
    p.add_argument("out_dir", metavar="DIR")
    p.add_argument("--n", type=int, default=20, help="number of cases (default 20)")
    p.add_argument("--format", choices=FORMATS, default="dicom", help="image format (default dicom)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def phantom_cli(out_dir: str | Path, n: int, fmt: str = "dicom", seed: int = 0) -> str:
    """Write the cohort (:func:`lsmseg.data.phantom.write_cohort`) and return a one-line summary.

    Raises:
        UsageError: an unknown format or n < 1 (the message is for the user).
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown phantom format {fmt!r}: use 'dicom' or 'nifti'")
    if n < 1:
        raise UsageError(f"the phantom cohort needs n >= 1 cases, got {n}")
    from lsmseg.data.phantom import write_cohort  # lazy: `lsmseg --help` stays instant

    ids = write_cohort(out_dir, n, fmt=fmt, seed=seed)  # type: ignore[arg-type]
    return (
        f"wrote {len(ids)} synthetic L3 slices ({fmt}) to {out_dir}: images/, masks/, "
        f"patients.csv, truth.csv ({ids[0]} .. {ids[-1]})"
    )


def run(args: argparse.Namespace) -> int:
    print(phantom_cli(args.out_dir, args.n, args.format, args.seed))
    return 0
