"""Per-run log folders: ``<output_dir>/runs/<timestamp>``, with no empty run left behind."""

from __future__ import annotations

import atexit
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path


def _records(path: Path) -> int:
    """Records in a TensorBoard event file (TFRecord framing: u64 length, u32 crc, data, u32 crc)."""
    n = 0
    with path.open("rb") as f:
        while header := f.read(12):
            if len(header) < 12:
                break
            (length,) = struct.unpack("<Q", header[:8])
            f.seek(length + 4, os.SEEK_CUR)
            n += 1
    return n


def is_empty_run(folder: Path) -> bool:
    """True when a run folder holds nothing but event files without a summary (only the version)."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return all(p.name.startswith("events.out.tfevents") and _records(p) <= 1 for p in files)


def prune_runs(output_dir: str | os.PathLike[str]) -> None:
    """Remove the run folders under ``<output_dir>/runs`` that logged nothing (interrupted early).

    Only rank 0 of a torchrun job prunes: the other ranks log nothing, and a rank that finished
    first would otherwise delete rank 0's run folder before its first summary was written.
    """
    runs = Path(output_dir) / "runs"
    if os.environ.get("RANK", "0") != "0":
        return
    if runs.is_dir():
        for folder in runs.iterdir():
            if folder.is_dir() and is_empty_run(folder):
                shutil.rmtree(folder, ignore_errors=True)


def run_dir(output_dir: str | os.PathLike[str]) -> str:
    """``<output_dir>/runs/<YYYYmmdd-HHMMSS>`` of a new run (TensorBoard events, logs).

    Runs that logged nothing are removed (earlier ones now, this one when the process exits,
    also after an interrupt), so successive runs neither mix in one folder nor leave empty
    event files behind.
    """
    rank = os.environ.get("RANK", "0")
    if rank != "0":
        # Other torchrun ranks log nothing (their handlers are dropped), but the handlers are
        # built before that: a private folder keeps their writers out of rank 0's runs/, where
        # rank 0's pruning could delete a folder while a writer is creating its file.
        private = tempfile.mkdtemp(prefix=f"lsmseg-rank{rank}-runs-")
        atexit.register(shutil.rmtree, private, True)
        return private
    prune_runs(output_dir)
    atexit.register(prune_runs, output_dir)
    return str(Path(output_dir) / "runs" / time.strftime("%Y%m%d-%H%M%S"))
