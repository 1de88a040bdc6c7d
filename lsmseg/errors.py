"""Errors in the user's terms, shared by every layer (the lowest module: imports nothing of lsmseg)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn


class UsageError(ValueError):
    """A setting or input the user must change; its message says what and how."""


def fail(message: str) -> NoReturn:
    """Stop a run with one line in the user's terms (``lsmseg: error: ...``), no traceback.

    Raises ``SystemExit``, which ``python -m monai.bundle run`` and the ``lsmseg`` command both
    turn into that line and a non-zero exit status.
    """
    raise SystemExit(f"lsmseg: error: {message}")


def check_choice(name: str, value: str, valid: Sequence[str]) -> str:
    """``value`` if it is one of ``valid``; else ValueError naming the setting and the valid values."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
    return value
