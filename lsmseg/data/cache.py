"""Where generated and derived data live, and how a folder is made once, atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    """Where embedded data sets and caches go: ``$LSMSEG_DATA`` or ``~/.cache/lsmseg``."""
    return Path(os.environ.get("LSMSEG_DATA", Path.home() / ".cache" / "lsmseg"))


def generated_folder(name: str, build: Callable[[Path], object], root: Path | None = None) -> Path:
    """``<root>/<name>``, built by ``build(tmp_folder)`` on first use.

    The folder appears whole or not at all: ``build`` fills a temporary sibling that is renamed
    into place, so concurrent first runs (DDP ranks, parallel sweeps) never see a half-written
    data set; the loser of a race discards its copy. A failed build leaves nothing behind.
    """
    folder = (root or cache_root()) / name
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}-"))
    try:
        build(tmp)
        os.replace(tmp, folder)
    except OSError:
        if not folder.is_dir():  # not a lost race: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
