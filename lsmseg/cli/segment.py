"""``lsmseg segment``: not available yet in this build."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("segment", help="(not available yet)")


def run(args: argparse.Namespace) -> int:
    raise ValueError("'lsmseg segment' is not available in this build yet")
