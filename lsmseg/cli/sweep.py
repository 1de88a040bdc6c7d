"""``lsmseg sweep``: not available yet in this build."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("sweep", help="(not available yet)")


def run(args: argparse.Namespace) -> int:
    raise ValueError("'lsmseg sweep' is not available in this build yet")
