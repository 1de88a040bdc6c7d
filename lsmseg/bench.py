"""Old import path of the step benchmark: the code lives in :mod:`lsmseg.experiments.bench`,
:mod:`lsmseg.experiments.flops` and :mod:`lsmseg.experiments.profiling`."""

from lsmseg.experiments.bench import (
    BENCH_COLUMNS,
    BENCH_METHODS,
    BenchSettings,
    Measurement,
    check_methods,
    measure_method,
    run_bench,
    step_flops,
    synthetic_batch,
    to_row,
    write_csv,
)
from lsmseg.experiments.flops import count_flops, machine_peak_gflops, matmul_peak_gflops
from lsmseg.experiments.profiling import profile_step

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
