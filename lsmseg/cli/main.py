"""The ``lsmseg`` command: a thin shell over library functions.

Each sub-command lives in its own module exposing ``add_parser(subparsers)`` and
``run(args) -> int``; heavy libraries (torch, MONAI) are imported inside ``run`` so that
``lsmseg --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("segment", "merge", "measure", "phantom", "sweep", "tune", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsmseg",
        description="Latent Space Mapping segmentation toolkit: L3 body composition from CT, and the LSM methods.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"lsmseg.cli.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit status 0 success, 1 some cases failed, 2 usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f"lsmseg.cli.{args.command}")
    try:
        return int(module.run(args))
    except (ValueError, FileNotFoundError, SystemExit) as e:
        if isinstance(e, SystemExit):
            raise
        if args.debug:
            raise
        print(f"lsmseg {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
