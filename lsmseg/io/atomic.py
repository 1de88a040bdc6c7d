"""All-or-nothing file writes: results already written stay intact when a write fails."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike[str]

# The process umask, read once (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


# The (temporary, target) pairs of the innermost :func:`batched_commit` of this thread; None outside one.
_PENDING: ContextVar[list[tuple[Path, Path]] | None] = ContextVar("lsmseg_atomic_pending", default=None)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: Path, target: Path) -> None:
    """Move a flushed temporary file over ``target`` with the mode a plain open() would give."""
    # mkstemp creates 0600; give the file the mode a plain open() would have.
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_UMASK
    os.chmod(tmp, mode)
    os.replace(tmp, target)


@contextmanager
def atomic_write(path: PathLike) -> Iterator[Path]:
    """Write ``path`` all-or-nothing.

    Yields a temporary path in the same folder (same file-name ending, so libraries that pick
    the format from the extension, e.g. ``.nii.gz``, still work). When the block exits normally
    the temporary file is flushed to disk and moved over ``path`` with ``os.replace`` (atomic on
    one file system); when it raises, the temporary file is removed and ``path`` is untouched.
    Parent folders are created. Inside :func:`batched_commit` the flush and the move wait for
    the end of the batch.

    Example::

        with atomic_write(out / "notes.txt") as tmp:
            tmp.write_text("...")
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    ending = "".join(target.suffixes[-2:]) if target.name.endswith(".gz") else target.suffix
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{ending}")
    os.close(fd)
    tmp = Path(tmp_name)
    pending = _PENDING.get()
    try:
        yield tmp
        if pending is not None:
            pending.append((tmp, target))
            return
        _fsync(tmp)
        _commit(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def batched_commit() -> Iterator[None]:
    """Commit the :func:`atomic_write` files of a block together (e.g. one case folder's files).

    Each file is still written to a temporary name and renamed over its target, so no reader
    and no killed process ever sees a half-written file under its final name. What is batched:
    every temporary file is flushed (``fsync``) after the block's last write, then all are
    renamed, then each folder they went to is flushed once, so the renames themselves survive
    a power loss too (a lone :func:`atomic_write` leaves its rename to the file system's
    journal). After the block returns, every file it wrote is complete on disk under its final
    name; when the block raises, its temporary files are removed and no target is touched.
    Per thread (a ``ContextVar``): writer threads each batch their own files.
    """
    pending: list[tuple[Path, Path]] = []
    token = _PENDING.set(pending)
    try:
        yield
        for tmp, _ in pending:
            _fsync(tmp)
        for tmp, target in pending:
            _commit(tmp, target)
        for folder in dict.fromkeys(target.parent for _, target in pending):
            _fsync(folder)
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _PENDING.reset(token)


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` all-or-nothing."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: PathLike, data: Any, **dumps: Any) -> Path:
    """Write ``data`` as indented JSON (NaN refused unless ``allow_nan=True``) all-or-nothing."""
    dumps.setdefault("indent", 2)
    dumps.setdefault("allow_nan", False)
    return write_text_atomic(path, json.dumps(data, **dumps) + "\n")


# The names atomic_write gives its temporary files: "." + target name + "." + mkstemp's 8 random
# characters + ".tmp" + the target's ending.
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.[^/]*)?")


def remove_stale_temps(folder: PathLike, recursive: bool = True) -> list[Path]:
    """Remove the temporary files an interrupted :func:`atomic_write` left in ``folder`` (and,
    when ``recursive``, below it).

    Only names of the form ``.<target>.<8 random>.tmp<ending>`` are removed (never a folder or a
    file of any other name). Call it when no other writer works in ``folder``: a write in progress
    would lose its temporary file. Returns the paths removed, sorted.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    found = root.rglob(".*.tmp*") if recursive else root.glob(".*.tmp*")
    stale = sorted(p for p in found if _TEMP_NAME.fullmatch(p.name) and p.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


_NUMERIC_TEXT = re.compile(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?(\.\.[-+]?\d+(\.\d+)?)?")


def csv_cell(value: Any) -> str:
    """One CSV cell: None and NaN empty, floats in full precision, lists/dicts as JSON, and
    text that a spreadsheet would run as a formula (starting with ``= + - @``) prefixed with
    ``'`` (OWASP CSV injection); numbers keep their sign."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    text = str(value)
    if _NUMERIC_TEXT.fullmatch(text):  # a number or a range such as "-150..-50" is data, not a formula
        return text
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv_atomic(path: PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` under a header of ``columns`` (keys outside them ignored, missing ones
    empty) with :mod:`csv` quoting and :func:`csv_cell` values, all-or-nothing."""
    with atomic_write(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: csv_cell(row.get(c)) for c in columns})
    return Path(path)
