"""``lsmseg merge DIR... [--out DIR]``: combine ``segment --shard K/N`` outputs into one run's results.

A thin shell over :func:`lsmseg.clinical.merge.merge_shards`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lsmseg.cli.args import command

EPILOG = """\
Each DIR is a --out folder of `lsmseg segment --shard K/N` holding results.shard-K-of-N.json
(one folder for all shards, or one per shard). The result is results.csv and results.json in
--out (default: the one DIR), the same rows, order and provenance as one `lsmseg segment` run
over the whole cohort; case folders of shards in other folders are copied to --out/cases.
Refused, with the reason: shards of another model or other settings, a missing shard, a shard
that did not finish (rerun it with --resume), shard files of runs with different N.

examples:
  lsmseg merge results/                               # shards written to one shared folder
  lsmseg merge node0/ node1/ node2/ --out results/    # one folder per shard
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "merge",
        help="combine the results of `lsmseg segment --shard K/N` runs into results.csv/json",
        description="Combine the shard results of `lsmseg segment --shard K/N` into one run's results.",
        epilog=EPILOG,
    )
    p.add_argument("folders", nargs="+", metavar="DIR", help="--out folders of the shard runs")
    p.add_argument("--out", metavar="DIR", help="where results.csv/json go (default: the one DIR given)")


def run(args: argparse.Namespace) -> int:
    from lsmseg.clinical.merge import merge_shards
    from lsmseg.clinical.results import STATUS_OK
    from lsmseg.errors import UsageError

    folders = [Path(f) for f in args.folders]
    if args.out is None and len(folders) > 1:
        raise UsageError("several shard folders: name the merged folder with --out DIR")
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise UsageError(f"not a folder: {', '.join(missing)}")
    out = Path(args.out) if args.out is not None else folders[0]
    csv_path, json_path, rows = merge_shards(folders, out)
    failed = sum(r.get("status") != STATUS_OK for r in rows)
    print(f"{len(rows) - failed} of {len(rows)} cases measured ({failed} failed)")
    print(f"results: {csv_path}")
    print(f"         {json_path}")
    return 0 if failed == 0 else 1
