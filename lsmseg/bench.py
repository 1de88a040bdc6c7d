"""Old import path of the step benchmark: the code lives in :mod:`lsmseg.experiments.bench` and
:mod:`lsmseg.experiments.flops`."""

from lsmseg.experiments.bench import (
    BENCH_COLUMNS,
    BENCH_METHODS,
    BenchSettings,
    Measurement,
    check_methods,
    measure_method,
    profile_step,
    run_bench,
    step_flops,
    synthetic_batch,
    to_row,
    write_csv,
)
from lsmseg.experiments.flops import count_flops, machine_peak_gflops, matmul_peak_gflops

__all__ = [
    "BENCH_COLUMNS",
    "BENCH_METHODS",
    "BenchSettings",
    "Measurement",
    "check_methods",
    "count_flops",
    "machine_peak_gflops",
    "matmul_peak_gflops",
    "measure_method",
    "profile_step",
    "run_bench",
    "step_flops",
    "synthetic_batch",
    "to_row",
    "write_csv",
]
