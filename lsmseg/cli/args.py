"""Argument types shared by the sub-commands (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def csv_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; an empty list is a usage error."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def proportion(text: str) -> float:
    """A paired fraction in (0, 1], else a usage error."""
    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"proportion {text!r} is not a number") from None
    if not 0.0 < p <= 1.0:
        raise argparse.ArgumentTypeError(f"proportion {text!r} is not in (0, 1] (1 = all pairs)")
    return p


def positive_int(text: str) -> int:
    """A whole number >= 1, else a usage error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)``, VALUE read as JSON when it parses (``ngf=4`` -> 4)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
