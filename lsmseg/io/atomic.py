"""All-or-nothing file writes: results already written stay intact when a write fails."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PathLike = str | os.PathLike[str]

# The process umask, read once (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_write(path: PathLike) -> Iterator[Path]:
    """Write ``path`` all-or-nothing.

    Yields a temporary path in the same folder (same file-name ending, so libraries that pick
    the format from the extension, e.g. ``.nii.gz``, still work). When the block exits normally
    the temporary file is flushed to disk and moved over ``path`` with ``os.replace`` (atomic on
    one file system); when it raises, the temporary file is removed and ``path`` is untouched.
    Parent folders are created.

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
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
