"""What the sub-commands' parsers share: argument types (argparse ``type=`` callables), the
sub-parser scaffolding and the option blocks several commands offer alike.

Nothing here imports torch, so ``--help`` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from lsmseg.keys import VAT_HU_DEFAULT as DEFAULT_VAT_HU  # lsmseg.keys imports only enum

DEFAULT_CUTOFFS = "prado2008,martin2013,derstine2018"
_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)"  # a decimal number


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


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1, else a usage error."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """A whole number >= 0, else a usage error."""
    return _whole_number(text, 0)


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)``, VALUE read as JSON when it parses (``ngf=4`` -> 4)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def hu_range(text: str) -> tuple[float, float]:
    """``"-150,-50"`` -> (-150.0, -50.0); argparse shows the message as a usage error."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX in HU (e.g. -150,-50), got {text!r}") from None
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"MIN must be below MAX, got {text!r}")
    return lo, hi


def cutoff_names(text: str) -> str:
    """Check cut-off set names early (no torch needed); the error lists the valid names."""
    from lsmseg.readout.cutoffs import get_cutoff_sets

    try:
        get_cutoff_sets(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def command(
    sub: argparse._SubParsersAction, name: str, help: str, description: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    """The parser of sub-command ``name``: ``help`` is its line in ``lsmseg --help``; the
    description and the epilog (outputs, examples) print with their line breaks as written."""
    return sub.add_parser(  # type: ignore[no-any-return]
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_run_settings(p: argparse.ArgumentParser, preset_help: str, set_example: str) -> None:
    """``--preset``, ``--max-epochs``, ``--patience``, ``--set``: the bundle settings of each
    training run of ``sweep`` and ``tune`` (read back with :func:`run_overrides`)."""
    p.add_argument("--preset", choices=("paper", "cpu"), default="paper", help=preset_help)
    p.add_argument("--max-epochs", type=positive_int, metavar="E", help="epoch budget of each stage")
    p.add_argument("--patience", type=positive_int, metavar="P", help="validations without improvement")
    p.add_argument(
        "--set",
        dest="overrides",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"any other bundle override (VALUE read as JSON when it parses), e.g. --set {set_example}",
    )


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The bundle overrides of :func:`add_run_settings`' options: ``--set`` pairs, then
    ``--max-epochs`` and ``--patience`` when given."""
    overrides = dict(args.overrides)
    if args.max_epochs is not None:
        overrides["max_epochs"] = args.max_epochs
    if args.patience is not None:
        overrides["patience"] = args.patience
    return overrides


def add_measurement_options(
    p: argparse.ArgumentParser, vat_hu_help: str, cutoffs_help: str, refine_help: str
) -> None:
    """``--patients``, ``--vat-hu``, ``--cutoffs``, ``--no-refine``: how ``segment`` and
    ``measure`` turn masks into areas, SMI and verdicts (the help texts are each command's)."""
    # `--vat-hu -190,-30` must read as a value, not as an unknown option: extend argparse's test
    # for negative numbers (it has no public hook) to comma-separated pairs of numbers.
    p._negative_number_matcher = re.compile(rf"^{_NUMBER}(?:,\s*{_NUMBER})?$")
    p.add_argument("--patients", metavar="CSV", help="patients table: height, weight, sex, L3 slice per case")
    p.add_argument("--vat-hu", metavar="MIN,MAX", type=hu_range, default=DEFAULT_VAT_HU, help=vat_hu_help)
    p.add_argument(
        "--cutoffs", metavar="NAMES", type=cutoff_names, default=DEFAULT_CUTOFFS, help=cutoffs_help
    )
    p.add_argument("--no-refine", dest="refine", action="store_false", help=refine_help)
