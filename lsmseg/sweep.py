"""Old import path of the sweep: the code lives in :mod:`lsmseg.experiments` (grid, run, sweep,
tables); ``benchmarks/phantom_miou.py`` and user scripts import ``lsmseg.sweep.run_sweep``."""

from lsmseg.experiments.grid import PRESETS, RunSpec, bundle_commands, fmt_proportion, plan_runs
from lsmseg.experiments.run import train_and_test
from lsmseg.experiments.sweep import SweepReport, check_settings, run_sweep
from lsmseg.experiments.tables import (
    RESULT_COLUMNS,
    Cell,
    markdown_table,
    plot,
    read_results,
    summarise,
    write_results,
)

__all__ = [
    "PRESETS",
    "RESULT_COLUMNS",
    "Cell",
    "RunSpec",
    "SweepReport",
    "bundle_commands",
    "check_settings",
    "fmt_proportion",
    "markdown_table",
    "plan_runs",
    "plot",
    "read_results",
    "run_sweep",
    "summarise",
    "train_and_test",
    "write_results",
]
