"""Shared test helpers of the command line: run ``lsmseg`` calls in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "monai", "highdicom", "matplotlib")


def probe_cli(*argvs: list[str]) -> str:
    """Run each argv through ``lsmseg.cli.main.main`` in one fresh Python process.

    Prints ``exit <code>`` for each call that exits, then ``heavy [...]``: the heavy libraries
    that got imported (an instant ``--help`` and usage error import none). Returns stdout.
    """
    code = (
        "import sys\n"
        "from lsmseg.cli.main import main\n"
        f"for argv in {[list(a) for a in argvs]!r}:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        print('exit', e.code)\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print('heavy', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr
