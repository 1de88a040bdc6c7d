"""The parser pieces the sub-commands share: types, the option blocks and what they parse to."""

from __future__ import annotations

import argparse

import pytest

from lsmseg.cli.args import (
    DEFAULT_CUTOFFS,
    DEFAULT_VAT_HU,
    add_measurement_options,
    add_run_settings,
    command,
    hu_range,
    non_negative_int,
    positive_int,
    run_overrides,
)


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    top = argparse.ArgumentParser(prog="lsmseg")
    p = command(top.add_subparsers(dest="command"), "x", help="h", description="line 1\n  line 2")
    return top, p


def test_run_settings_become_bundle_overrides_the_flags_last() -> None:
    top, p = _parser()
    add_run_settings(p, preset_help="(default paper)", set_example="ngf=8")
    args = top.parse_args(
        ["x", "--set", "ngf=8", "--set", "max_epochs=9", "--max-epochs", "3", "--preset", "cpu"]
    )
    assert args.preset == "cpu"
    assert run_overrides(args) == {"ngf": 8, "max_epochs": 3}  # --max-epochs wins over --set
    assert run_overrides(top.parse_args(["x"])) == {}


def test_measurement_options_read_negative_hu_pairs_and_keep_the_defaults() -> None:
    top, p = _parser()
    add_measurement_options(p, vat_hu_help="v", cutoffs_help="c", refine_help="r")
    args = top.parse_args(["x"])
    assert (args.vat_hu, args.cutoffs, args.refine, args.patients) == (
        DEFAULT_VAT_HU,
        DEFAULT_CUTOFFS,
        True,
        None,
    )
    args = top.parse_args(["x", "--vat-hu", "-190,-30", "--no-refine"])
    assert (args.vat_hu, args.refine) == ((-190.0, -30.0), False)


@pytest.mark.parametrize(
    ("text", "message"), [("-30,-190", "MIN must be below MAX"), ("1", "expected MIN,MAX")]
)
def test_a_bad_hu_range_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        hu_range(text)


def test_a_command_prints_its_description_as_written() -> None:
    _, p = _parser()
    assert "line 1\n  line 2" in p.format_help()


def test_whole_numbers_have_their_floor_in_the_message() -> None:
    assert (positive_int("3"), non_negative_int("0")) == (3, 0)
    for parse, text, floor in [
        (positive_int, "0", 1),
        (non_negative_int, "-1", 0),
        (non_negative_int, "x", 0),
    ]:
        with pytest.raises(
            argparse.ArgumentTypeError, match=f"expected a whole number >= {floor}, got '{text}'"
        ):
            parse(text)
